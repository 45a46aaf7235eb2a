//! Fixed-window token accounting for one replica's share of a quota. Pure: the caller passes
//! the time (whole seconds since the Unix epoch, wall clock, so that every replica's windows
//! start at the same UTC minute and day) and the number of replicas sharing the quota.
//!
//! A replica admits `ceil(limit / replicas)` tokens per window ([`share`]), so the replicas
//! together admit at most `limit + replicas - 1` while each sees the same replica count. The
//! windows are fixed, not sliding: a client may get a whole window's quota at the end of one
//! window and again at the start of the next.

use crate::api::QuotaMode;

/// How long a quota's window lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Period {
    Minute,
    Day,
}

impl Period {
    pub const ALL: [Period; 2] = [Period::Minute, Period::Day];

    pub fn seconds(self) -> u64 {
        match self {
            Period::Minute => 60,
            Period::Day => 86_400,
        }
    }

    /// The metric label and audit value.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Minute => "minute",
            Period::Day => "day",
        }
    }

    /// The field of `spec.quota` that sets it.
    pub fn field(self) -> &'static str {
        match self {
            Period::Minute => "tokensPerMinute",
            Period::Day => "tokensPerDay",
        }
    }

    fn index(self) -> usize {
        match self {
            Period::Minute => 0,
            Period::Day => 1,
        }
    }
}

/// Whose quota: the app's own, or its organization's (the sum of its apps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    App,
    Organization,
}

impl Scope {
    /// The metric label and audit value.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::App => "app",
            Scope::Organization => "organization",
        }
    }
}

/// One quota as the token endpoint applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Tokens per window, by [`Period`] (`None`: no limit for that period).
    pub tokens: [Option<u64>; 2],
    pub mode: QuotaMode,
}

impl Limits {
    /// The limits of a `spec.quota`.
    pub fn of(spec: &crate::api::QuotaSpec) -> Self {
        let positive = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0);
        Self {
            tokens: [
                positive(spec.tokens_per_minute),
                positive(spec.tokens_per_day),
            ],
            mode: spec.mode,
        }
    }
}

/// One replica's share of `limit` with `replicas` sharing it: rounded up, so each replica
/// admits at least one token, and at least the whole limit is admitted across the replicas.
pub fn share(limit: u64, replicas: usize) -> u64 {
    let n = u64::try_from(replicas.max(1)).unwrap_or(u64::MAX);
    limit.div_ceil(n)
}

/// Tokens counted by one replica for one quota, per period: `(window index, count)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    windows: [(u64, u64); 2],
}

/// A quota found used up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exceeded {
    pub scope: Scope,
    pub period: Period,
    pub mode: QuotaMode,
    /// The quota (not the replica's share).
    pub limit: u64,
    /// Seconds until the window ends (at least 1).
    pub retry_after: u64,
}

impl Counters {
    /// Tokens counted in the window of `period` that contains `now`.
    pub fn count(&self, period: Period, now: u64) -> u64 {
        let (window, count) = self.windows[period.index()];
        if window == now / period.seconds() {
            count
        } else {
            0
        }
    }

    /// The periods of `limits` whose share is used up at `now`.
    pub fn exceeded(
        &self,
        scope: Scope,
        limits: &Limits,
        now: u64,
        replicas: usize,
    ) -> impl Iterator<Item = Exceeded> + '_ {
        let limits = *limits;
        Period::ALL.into_iter().filter_map(move |period| {
            let limit = limits.tokens[period.index()]?;
            (self.count(period, now) >= share(limit, replicas)).then(|| Exceeded {
                scope,
                period,
                mode: limits.mode,
                limit,
                retry_after: (period.seconds() - now % period.seconds()).max(1),
            })
        })
    }

    /// Counts one token issued at `now`.
    pub fn add(&mut self, now: u64) {
        for period in Period::ALL {
            let window = now / period.seconds();
            let slot = &mut self.windows[period.index()];
            *slot = if slot.0 == window {
                (window, slot.1.saturating_add(1))
            } else {
                (window, 1)
            };
        }
    }

    /// Takes back one token counted at `issued` (one that was never handed out).
    pub fn refund(&mut self, issued: u64) {
        for period in Period::ALL {
            let slot = &mut self.windows[period.index()];
            if slot.0 == issued / period.seconds() {
                slot.1 = slot.1.saturating_sub(1);
            }
        }
    }

    /// Whether every window has ended by `now` (the entry can be forgotten).
    pub fn is_stale(&self, now: u64) -> bool {
        Period::ALL
            .into_iter()
            .all(|p| self.windows[p.index()].0 != now / p.seconds())
    }
}

#[cfg(test)]
mod tests;
