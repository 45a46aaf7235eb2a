//! Token quotas (`spec.quota` of M2MApps and Organizations), enforced across replicas: each
//! replica admits its share of a quota ([`window::share`]: the quota divided by the number of
//! ready replicas of the token Service, [`replicas`]) in fixed UTC windows ([`window`]).
//!
//! A token is counted when it is admitted, just before it is signed, with no `.await` between the
//! check, the count and the response: a request dropped while it authenticated (the only await
//! of the token handler) has counted nothing, and one dropped later cannot be (there is no later
//! suspension point). A token that is counted but not signed (no signing key) is refunded.

pub mod replicas;
pub mod window;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use self::window::{Counters, Exceeded, Limits, Scope};
use crate::api::{M2MApp, Organization, QuotaMode};

/// Whose counters: an app's or an organization's, by UID.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    App(String),
    Organization(String),
}

/// The quotas a token request is subject to: its app's and its organization's.
#[derive(Clone, Debug, Default)]
pub struct Subject {
    app: Option<(Key, Limits)>,
    org: Option<(Key, Limits)>,
}

impl Subject {
    /// The quotas of `app` (bound to `org`).
    pub fn of(app: &M2MApp, org: Option<&Organization>) -> Self {
        let limited = |uid: Option<&String>, quota: Option<&crate::api::QuotaSpec>| {
            Some((uid?.clone(), Limits::of(quota?)))
        };
        Self {
            app: limited(app.metadata.uid.as_ref(), app.spec.quota.as_deref())
                .map(|(uid, l)| (Key::App(uid), l)),
            org: org
                .and_then(|o| limited(o.metadata.uid.as_ref(), o.spec.quota.as_ref()))
                .map(|(uid, l)| (Key::Organization(uid), l)),
        }
    }

    fn scopes(&self) -> impl Iterator<Item = (Scope, &Key, &Limits)> {
        let app = self.app.iter().map(|(k, l)| (Scope::App, k, l));
        let org = self.org.iter().map(|(k, l)| (Scope::Organization, k, l));
        app.chain(org)
    }

    pub fn is_empty(&self) -> bool {
        self.app.is_none() && self.org.is_none()
    }
}

/// What a request's quotas decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Issue; `observed` lists the `Observe` quotas that are used up (the token counts anyway).
    Admit { observed: Vec<Exceeded> },
    /// Refuse: an `Enforce` quota is used up. `retry_after` is when every used-up enforced
    /// window has ended; `exceeded` lists every used-up quota.
    Refuse {
        retry_after: u64,
        exceeded: Vec<Exceeded>,
    },
}

/// The decision for one request from the counters of its quotas (pure).
fn decide<'a>(
    scopes: impl Iterator<Item = (Scope, Option<&'a Counters>, &'a Limits)>,
    now: u64,
    replicas: usize,
) -> Decision {
    let empty = Counters::default();
    let exceeded: Vec<Exceeded> = scopes
        .flat_map(|(scope, counters, limits)| {
            let counters = *counters.unwrap_or(&empty);
            counters
                .exceeded(scope, limits, now, replicas)
                .collect::<Vec<_>>()
        })
        .collect();
    let enforced = exceeded.iter().filter(|e| e.mode == QuotaMode::Enforce);
    match enforced.map(|e| e.retry_after).max() {
        Some(retry_after) => Decision::Refuse {
            retry_after,
            exceeded,
        },
        None => Decision::Admit { observed: exceeded },
    }
}

/// A token counted against its quotas, refundable until it is handed out.
pub struct Admitted {
    keys: Vec<Key>,
    at: u64,
    pub observed: Vec<Exceeded>,
}

/// One replica's quota counters.
#[derive(Default)]
pub struct Quotas {
    counters: Mutex<HashMap<Key, Counters>>,
    /// Ready replicas of the token Service (0: unknown, counted as 1).
    replicas: Arc<AtomicUsize>,
}

impl Quotas {
    /// The replica count the shares divide by (set by [`replicas::watch`]).
    pub fn replicas_handle(&self) -> Arc<AtomicUsize> {
        self.replicas.clone()
    }

    pub fn replicas(&self) -> usize {
        self.replicas.load(Ordering::Relaxed).max(1)
    }

    /// Decides a request of `subject` at `now` (Unix seconds) and, when admitted, counts it.
    pub fn admit(&self, subject: &Subject, now: u64) -> Result<Admitted, (u64, Vec<Exceeded>)> {
        let replicas = self.replicas();
        let Ok(mut counters) = self.counters.lock() else {
            // A poisoned lock: a panic while counting. Admit rather than refuse everyone.
            return Ok(Admitted {
                keys: Vec::new(),
                at: now,
                observed: Vec::new(),
            });
        };
        let decision = decide(
            subject
                .scopes()
                .map(|(scope, key, limits)| (scope, counters.get(key), limits)),
            now,
            replicas,
        );
        match decision {
            Decision::Refuse {
                retry_after,
                exceeded,
            } => Err((retry_after, exceeded)),
            Decision::Admit { observed } => {
                let keys: Vec<Key> = subject.scopes().map(|(_, k, _)| k.clone()).collect();
                for key in &keys {
                    counters.entry(key.clone()).or_default().add(now);
                }
                Ok(Admitted {
                    keys,
                    at: now,
                    observed,
                })
            }
        }
    }

    /// Takes back a token that was admitted but never handed out.
    pub fn refund(&self, admitted: Admitted) {
        if let Ok(mut counters) = self.counters.lock() {
            for key in &admitted.keys {
                if let Some(c) = counters.get_mut(key) {
                    c.refund(admitted.at);
                }
            }
        }
    }

    /// Forgets counters whose windows have all ended.
    pub fn prune(&self, now: u64) {
        if let Ok(mut counters) = self.counters.lock() {
            counters.retain(|_, c| !c.is_stale(now));
        }
    }

    /// Counters held (for tests of the bound).
    pub fn len(&self) -> usize {
        self.counters.lock().map_or(0, |c| c.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Seconds since the Unix epoch, by the wall clock (every replica's windows start together).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
