//! Settings that parse but make no sense together, refused at start (pure, on the parsed
//! configuration): a misconfigured operator should not start and fail later, silently.

use std::time::Duration;

use super::RunConfig;

/// How long verifiers may cache the JWKS: it is served with `Cache-Control: max-age=300`.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// The longest `spec.tokenLifetime` the M2MApp CRD accepts.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The clock skew a retired key's retention must cover beyond the longest token lifetime (the
/// skew introspection allows on `nbf`).
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// The Lease is kept in whole seconds; below this it is renewed about as often as it lasts.
const MIN_LEASE_DURATION: Duration = Duration::from_secs(2);
/// The longest `--resync` (kube's queue takes delays of up to ~2 years, and the controllers queue
/// an object for at most the resync).
pub const MAX_RESYNC_DAYS: u64 = 365;

/// One refused setting, naming the flag (and its variable) and what it must be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "--signing-key-publish-ahead (M2M_SIGNING_KEY_PUBLISH_AHEAD) is {got}, but verifiers cache \
         the JWKS for up to {max_age} (its max-age): a new key would sign before they could know \
         it. Use more than {max_age} (default 1h)."
    )]
    PublishAheadBelowJwksCache { got: Text, max_age: Text },
    #[error(
        "--signing-key-retention (M2M_SIGNING_KEY_RETENTION) is {got}, but a token lives up to \
         {lifetime} (the longest tokenLifetime) plus {skew} of clock skew: tokens signed by a \
         retired key would stop verifying before they expire. Use at least {min} (default 24h5m)."
    )]
    RetentionBelowTokenLifetime {
        got: Text,
        lifetime: Text,
        skew: Text,
        min: Text,
    },
    #[error(
        "--signing-key-rotation (M2M_SIGNING_KEY_ROTATION) is {got}, shorter than \
         --signing-key-publish-ahead ({ahead}): every key would be replaced before its successor \
         could be published ahead. Use at least {ahead} (default 720h)."
    )]
    RotationBelowPublishAhead { got: Text, ahead: Text },
    #[error(
        "--lease-renew-before (M2M_LEASE_RENEW_BEFORE) is {renew}, not below --lease-duration \
         (M2M_LEASE_DURATION, {duration}): the leader would renew before it holds the Lease. Use a \
         renew-before of at least 1s and below the duration (defaults 5s and 15s)."
    )]
    LeaseRenewal { renew: Text, duration: Text },
    #[error(
        "--lease-duration (M2M_LEASE_DURATION) is {got}; the Lease is kept in whole seconds and \
         must last at least {min}."
    )]
    LeaseTooShort { got: Text, min: Text },
    #[error("{flag} ({env}) is 0: {why}. Use at least 1.")]
    Zero {
        flag: &'static str,
        env: &'static str,
        why: &'static str,
    },
    #[error(
        "--resync (M2M_RESYNC) is {got}: at most {MAX_RESYNC_DAYS} days (the controllers queue no \
         object for longer)"
    )]
    ResyncTooLong { got: String },
    #[error("{flag} ({env}) is 0s: {why}.")]
    ZeroDuration {
        flag: &'static str,
        env: &'static str,
        why: &'static str,
    },
    #[error(
        "--issuer (M2M_ISSUER) is {got:?}: it must be an http:// or https:// URL (it is the iss \
         claim and the base of the discovery documents)."
    )]
    Issuer { got: String },
    #[error(
        "--token-addr (M2M_TOKEN_ADDR) and --admin-addr (M2M_ADMIN_ADDR) are both {addr}: the \
         token endpoint and /metrics need their own ports."
    )]
    SameAddress { addr: std::net::SocketAddr },
}

/// A duration as the flags spell it (`90s`, `1h5m`), for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text(String);

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn text(d: Duration) -> Text {
    let mut secs = d.as_secs();
    let millis = d.subsec_millis();
    if secs == 0 {
        return Text(if millis == 0 {
            "0s".into()
        } else {
            format!("{millis}ms")
        });
    }
    let mut out = String::new();
    for (unit, len) in [("h", 3600), ("m", 60)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    if secs > 0 || millis > 0 {
        out.push_str(&secs.to_string());
        if millis > 0 {
            out.push_str(&format!(".{millis:03}"));
        }
        out.push('s');
    }
    Text(out)
}

impl RunConfig {
    /// Every refused setting (empty: the configuration is usable).
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if !self.unsafe_key_timings {
            self.check_signing_keys(&mut problems);
        }
        self.check_lease(&mut problems);
        self.check_counts(&mut problems);
        if !(self.issuer.starts_with("https://") || self.issuer.starts_with("http://"))
            || self.issuer.len() <= "https://".len()
        {
            problems.push(ConfigError::Issuer {
                got: self.issuer.clone(),
            });
        }
        if self.token_addr == self.admin_addr {
            problems.push(ConfigError::SameAddress {
                addr: self.token_addr,
            });
        }
        problems
    }

    /// The signing-key timings `--unsafe-key-timings` lets through (to be logged as warnings).
    pub fn waived(&self) -> Vec<ConfigError> {
        let mut waived = Vec::new();
        if self.unsafe_key_timings {
            self.check_signing_keys(&mut waived);
        }
        waived
    }

    fn check_signing_keys(&self, problems: &mut Vec<ConfigError>) {
        if self.signing_key_publish_ahead <= JWKS_MAX_AGE {
            problems.push(ConfigError::PublishAheadBelowJwksCache {
                got: text(self.signing_key_publish_ahead),
                max_age: text(JWKS_MAX_AGE),
            });
        }
        let min_retention = MAX_TOKEN_LIFETIME + CLOCK_SKEW;
        if self.signing_key_retention < min_retention {
            problems.push(ConfigError::RetentionBelowTokenLifetime {
                got: text(self.signing_key_retention),
                lifetime: text(MAX_TOKEN_LIFETIME),
                skew: text(CLOCK_SKEW),
                min: text(min_retention),
            });
        }
        if self.signing_key_rotation < self.signing_key_publish_ahead {
            problems.push(ConfigError::RotationBelowPublishAhead {
                got: text(self.signing_key_rotation),
                ahead: text(self.signing_key_publish_ahead),
            });
        }
    }

    fn check_lease(&self, problems: &mut Vec<ConfigError>) {
        if self.lease_duration < MIN_LEASE_DURATION {
            problems.push(ConfigError::LeaseTooShort {
                got: text(self.lease_duration),
                min: text(MIN_LEASE_DURATION),
            });
        }
        if self.lease_renew_before < Duration::from_secs(1)
            || self.lease_renew_before >= self.lease_duration
        {
            problems.push(ConfigError::LeaseRenewal {
                renew: text(self.lease_renew_before),
                duration: text(self.lease_duration),
            });
        }
    }

    fn check_counts(&self, problems: &mut Vec<ConfigError>) {
        let counts = [
            (
                self.argon2_workers.map_or(1, |n| n as u64),
                "--argon2-workers",
                "M2M_ARGON2_WORKERS",
                "no secret could ever be verified",
            ),
            (
                self.argon2_max_in_flight as u64,
                "--argon2-max-in-flight",
                "M2M_ARGON2_MAX_IN_FLIGHT",
                "every first request of a client would get 503",
            ),
            (
                u64::from(self.max_failures_per_client),
                "--max-failures-per-client",
                "M2M_MAX_FAILURES_PER_CLIENT",
                "0 does not turn throttling off: one failed attempt would lock a client out for the whole window",
            ),
            (
                u64::from(self.max_failures_per_source),
                "--max-failures-per-source",
                "M2M_MAX_FAILURES_PER_SOURCE",
                "0 does not turn throttling off: one failed attempt would lock an address out for the whole window",
            ),
            (
                self.max_concurrent_requests as u64,
                "--max-concurrent-requests",
                "M2M_MAX_CONCURRENT_REQUESTS",
                "every token request would get 503",
            ),
        ];
        for (value, flag, env, why) in counts {
            if value == 0 {
                problems.push(ConfigError::Zero { flag, env, why });
            }
        }
        let durations = [
            (
                self.failure_window,
                "--failure-window",
                "M2M_FAILURE_WINDOW",
                "failed attempts would never be counted, so nothing would be throttled",
            ),
            (
                self.request_timeout,
                "--request-timeout",
                "M2M_REQUEST_TIMEOUT",
                "every token request would time out",
            ),
            (
                self.resync,
                "--resync",
                "M2M_RESYNC",
                "every object would be reconciled without pause",
            ),
        ];
        for (value, flag, env, why) in durations {
            if value.is_zero() {
                problems.push(ConfigError::ZeroDuration { flag, env, why });
            }
        }
        if self.resync > Duration::from_secs(MAX_RESYNC_DAYS * 86_400) {
            problems.push(ConfigError::ResyncTooLong {
                got: format!("{}s", self.resync.as_secs()),
            });
        }
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
