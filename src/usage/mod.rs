//! What the token endpoint of every replica tells the leader, who alone writes status: when an
//! app's or organization's quota was last found used up, and how often and when an app's
//! previous (grace-period) secret got a token.
//!
//! Each replica keeps its figures in a [`Recorder`] and publishes them as one small ConfigMap of
//! its own in the operator's namespace ([`publish`]), written only when something changed and at
//! most once per `--usage-report-interval` (the first change after a quiet interval at once).
//! The leader reads every replica's report ([`Reports`]) and merges them ([`report::merge`]).

pub mod publish;
pub mod report;

use std::{collections::HashMap, sync::Mutex};

use tokio::sync::Notify;

use self::report::{AppUsage, PreviousUse, Report};
use crate::{
    api::{M2MApp, Organization},
    token::quota::window::{Exceeded, Scope},
};

/// Most apps one report holds (about 75 bytes each: 10,000 take ~750 KB of a ConfigMap's 1 MiB);
/// beyond, the apps whose last event is oldest are left out (the leader still has what it
/// showed in status for them).
pub const MAX_APPS: usize = 10_000;

/// How long an entry stays in a report after its last event: a quota exceeded is "recent" for
/// 10 minutes; a previous secret lives at most 720h (the longest grace period).
const QUOTA_KEEP_SECS: u64 = 3_600;
const PREVIOUS_KEEP_SECS: u64 = 721 * 3_600;

/// This replica's figures, and a wake-up for the publisher when they change.
#[derive(Default)]
pub struct Recorder {
    report: Mutex<Report>,
    pub(crate) changed: Notify,
}

impl Recorder {
    /// Records that `exceeded` (the quotas of `app` and `org` a request found used up) at `now`.
    pub fn quota_exceeded(
        &self,
        app: &M2MApp,
        org: Option<&Organization>,
        exceeded: &[Exceeded],
        now: u64,
    ) {
        let Ok(mut report) = self.report.lock() else {
            return;
        };
        for e in exceeded {
            let uid = match e.scope {
                Scope::App => app.metadata.uid.as_ref(),
                Scope::Organization => org.and_then(|o| o.metadata.uid.as_ref()),
            };
            let Some(uid) = uid else { continue };
            match e.scope {
                Scope::App => {
                    report
                        .apps
                        .entry(uid.clone())
                        .or_default()
                        .quota_exceeded_at = Some(now);
                }
                Scope::Organization => {
                    report
                        .organizations
                        .entry(uid.clone())
                        .or_default()
                        .quota_exceeded_at = Some(now);
                }
            }
        }
        drop(report);
        self.changed.notify_one();
    }

    /// Records that `app_uid`'s previous secret, the one replaced by the rotation to `revision`,
    /// got a token at `now`.
    pub fn previous_secret_used(&self, app_uid: &str, revision: i64, now: u64) {
        let Ok(mut report) = self.report.lock() else {
            return;
        };
        let entry = report.apps.entry(app_uid.to_owned()).or_default();
        entry.previous_secret = Some(match entry.previous_secret {
            Some(p) if p.revision == revision => PreviousUse {
                revision,
                uses: p.uses.saturating_add(1),
                last_used_at: now.max(p.last_used_at),
            },
            _ => PreviousUse {
                revision,
                uses: 1,
                last_used_at: now,
            },
        });
        drop(report);
        self.changed.notify_one();
    }

    /// The report to publish at `now`, without entries past their keep time and bounded to
    /// [`MAX_APPS`] apps.
    pub fn snapshot(&self, now: u64) -> Report {
        let Ok(mut report) = self.report.lock() else {
            return Report::default();
        };
        prune(&mut report, now);
        report.clone()
    }

    /// Waits until something was recorded since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

fn prune(report: &mut Report, now: u64) {
    let live = |at: Option<u64>, keep: u64| at.is_some_and(|t| now.saturating_sub(t) < keep);
    report.apps.retain(|_, a| {
        if !live(
            a.previous_secret.map(|p| p.last_used_at),
            PREVIOUS_KEEP_SECS,
        ) {
            a.previous_secret = None;
        }
        if !live(a.quota_exceeded_at, QUOTA_KEEP_SECS) {
            a.quota_exceeded_at = None;
        }
        *a != AppUsage::default()
    });
    report
        .organizations
        .retain(|_, o| live(o.quota_exceeded_at, QUOTA_KEEP_SECS));
    if report.apps.len() > MAX_APPS {
        let mut by_age: Vec<(u64, String)> = report
            .apps
            .iter()
            .map(|(uid, a)| (a.last_event(), uid.clone()))
            .collect();
        by_age.sort_unstable();
        let excess = report.apps.len() - MAX_APPS;
        for (_, uid) in by_age.into_iter().take(excess) {
            report.apps.remove(&uid);
        }
    }
}

/// Every replica's latest report, by replica (the leader's view).
pub type Reports = HashMap<String, Report>;

#[cfg(test)]
mod tests;
