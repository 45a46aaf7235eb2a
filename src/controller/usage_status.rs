//! What status shows of the replicas' usage reports (pure): an app's or organization's quota
//! and when it was last exceeded, and the previous secret's last use and use count. Only the
//! leader writes status; the figures come from every replica's report
//! ([`crate::usage::report`]).
//!
//! Status writes stay few: the first report of an exceeded quota or of a previous secret's use
//! is written at once; later changes at most once per [`REFRESH`] per object.

use std::time::Duration;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

use crate::{
    api::{QuotaSpec, QuotaStatus},
    controller::conditions::api_time,
    usage::report::PreviousUse,
};

/// How often at most an object's usage figures in status are brought up to date.
pub const REFRESH: Duration = Duration::from_secs(60);
/// A quota exceeded within this long counts as exceeded recently.
pub const RECENT: Duration = Duration::from_secs(600);

fn secs(t: &Time) -> u64 {
    u64::try_from(t.0.as_second()).unwrap_or(0)
}

fn time(secs: u64) -> Option<Time> {
    Timestamp::from_second(i64::try_from(secs).ok()?)
        .ok()
        .map(api_time)
}

/// The quota part of the status: `spec` in effect, the last time any replica reported it
/// exceeded (`reported`), and whether that is recent at `now`; with when to look again.
pub fn quota(
    spec: Option<&QuotaSpec>,
    shown: Option<&QuotaStatus>,
    reported: Option<u64>,
    now: u64,
) -> (Option<QuotaStatus>, Option<Duration>) {
    let Some(spec) = spec else {
        return (None, None);
    };
    let shown_at = shown.and_then(|s| s.last_exceeded_at.as_ref()).map(secs);
    let latest = shown_at.max(reported);
    // A later report replaces what is shown once REFRESH has passed since (the first at once).
    let (show, pending) = match (shown_at, reported) {
        (None, Some(r)) => (Some(r), None),
        (Some(s), Some(r))
            if r > s && (r - s >= REFRESH.as_secs() || now >= s + REFRESH.as_secs()) =>
        {
            (Some(r), None)
        }
        (Some(s), Some(r)) if r > s => (Some(s), Some(s + REFRESH.as_secs())),
        (s, _) => (s, None),
    };
    let recent_until = latest.map(|t| t + RECENT.as_secs());
    let status = QuotaStatus {
        tokens_per_minute: spec.tokens_per_minute,
        tokens_per_day: spec.tokens_per_day,
        mode: Some(spec.mode),
        last_exceeded_at: show.and_then(time),
        exceeded_recently: recent_until.is_some_and(|until| now < until),
    };
    let wake = [pending, recent_until.filter(|u| now < *u)]
        .into_iter()
        .flatten()
        .min()
        .map(|at| Duration::from_secs(at.saturating_sub(now)));
    (Some(status), wake)
}

/// Whether the quota turned exceeded-recently with this status (the Event's moment).
pub fn newly_exceeded(shown: Option<&QuotaStatus>, desired: Option<&QuotaStatus>) -> bool {
    desired.is_some_and(|d| d.exceeded_recently) && !shown.is_some_and(|s| s.exceeded_recently)
}

/// The Warning Event of a quota that turned exceeded-recently.
pub fn exceeded_note(quota: Option<&QuotaStatus>) -> crate::controller::events::Note {
    let limits: Vec<String> = quota
        .into_iter()
        .flat_map(|q| {
            let minute = q
                .tokens_per_minute
                .map(|n| format!("{n} tokens per minute"));
            let day = q.tokens_per_day.map(|n| format!("{n} tokens per day"));
            minute.into_iter().chain(day)
        })
        .collect();
    let mode = quota.and_then(|q| q.mode).unwrap_or_default();
    let effect = match mode {
        crate::api::QuotaMode::Enforce => "requests over it get 429 until the window ends",
        crate::api::QuotaMode::Observe => "observe mode: the tokens were issued anyway",
    };
    crate::controller::events::Note::warning(
        QUOTA_EXCEEDED,
        "CountTokens",
        format!(
            "the token quota ({}) was exceeded; {effect}",
            limits.join(", ")
        ),
    )
}

/// The reason of the Event of an exceeded quota.
pub const QUOTA_EXCEEDED: &str = "QuotaExceeded";

/// The previous secret's uses to show for the current `revision` at `now`: what the replicas
/// report together (never less than what is shown: a replica that restarted forgot its
/// counts), the first use at once, later changes at most once per [`REFRESH`]; with when to
/// look again. `shown` is what status holds: `(revision, last used, uses)`.
pub fn previous_use(
    revision: i64,
    shown: Option<(i64, Option<&Time>, Option<i64>)>,
    reported: Option<PreviousUse>,
    now: u64,
) -> (Option<Time>, Option<i64>, Option<Duration>) {
    let shown = shown
        .filter(|(r, _, _)| *r == revision)
        .and_then(|(_, at, uses)| Some((secs(at?), uses.unwrap_or(0))));
    let reported = reported.map(|p| (p.last_used_at, i64::try_from(p.uses).unwrap_or(i64::MAX)));
    let (at, uses, wake) = match (shown, reported) {
        (None, None) => return (None, None, None),
        (Some(s), None) => (s.0, s.1, None),
        (None, Some(r)) => (r.0, r.1, None),
        (Some(s), Some(r)) => {
            let merged = (s.0.max(r.0), s.1.max(r.1));
            if merged == s {
                (s.0, s.1, None)
            } else if now >= s.0 + REFRESH.as_secs() {
                (merged.0, merged.1, None)
            } else {
                let wake = Duration::from_secs(s.0 + REFRESH.as_secs() - now);
                (s.0, s.1, Some(wake))
            }
        }
    };
    (time(at), Some(uses), wake)
}

/// What an M2MApp's status shows of the reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppUsage {
    pub quota: Option<QuotaStatus>,
    pub previous_used_at: Option<Time>,
    pub previous_uses: Option<i64>,
    /// When to look again.
    pub wake: Option<Duration>,
}

/// The usage figures of `app` (its `record` after this reconcile) to show at `now`: the
/// quota, the previous secret's last use and uses (after a rotation only).
pub fn app(
    app: &crate::api::M2MApp,
    record: Option<&crate::credentials::record::ClientRecord>,
    quota_reported: Option<u64>,
    previous_reported: Option<PreviousUse>,
    now: Timestamp,
) -> AppUsage {
    let shown = app.status.as_ref();
    let now = u64::try_from(now.as_second()).unwrap_or(0);
    let (quota, quota_wake) = self::quota(
        app.spec.quota.as_deref(),
        shown.and_then(|s| s.quota.as_deref()),
        quota_reported,
        now,
    );
    let (previous_used_at, previous_uses, use_wake) = match record.filter(|r| r.revision > 1) {
        Some(record) => {
            let shown = shown.and_then(|s| s.rotation.as_ref()).map(|r| {
                (
                    r.revision,
                    r.previous_secret_last_used_at.as_ref(),
                    r.previous_secret_uses,
                )
            });
            previous_use(record.revision, shown, previous_reported, now)
        }
        None => (None, None, None),
    };
    // While a used previous secret still works, or a quota was exceeded recently, look again
    // every refresh: later report changes do not all trigger a reconcile.
    let in_grace = record.is_some_and(|r| r.previous.is_some());
    let busy = (in_grace && previous_used_at.is_some())
        || quota.as_ref().is_some_and(|q| q.exceeded_recently);
    let periodic = busy.then_some(REFRESH);
    AppUsage {
        quota,
        previous_used_at,
        previous_uses,
        wake: quota_wake.into_iter().chain(use_wake).chain(periodic).min(),
    }
}

/// Which UIDs of a report change to reconcile: every first event, other changes at most once
/// per [`REFRESH`] per UID.
#[derive(Debug, Default)]
pub struct Limiter {
    last: std::collections::HashMap<String, std::time::Instant>,
}

impl Limiter {
    pub fn admit(
        &mut self,
        changes: &crate::usage::publish::Changes,
        now: std::time::Instant,
    ) -> std::collections::HashSet<String> {
        if self.last.len() > 4 * crate::usage::MAX_APPS {
            self.last.retain(|_, at| now.duration_since(*at) < REFRESH);
        }
        let mut admitted = changes.fresh.clone();
        for uid in &changes.updated {
            let due = self
                .last
                .get(uid)
                .is_none_or(|at| now.duration_since(*at) >= REFRESH);
            if due {
                admitted.insert(uid.clone());
            }
        }
        for uid in &admitted {
            self.last.insert(uid.clone(), now);
        }
        admitted
    }
}

#[cfg(test)]
mod tests;
