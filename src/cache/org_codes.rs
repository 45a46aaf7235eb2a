//! Organizations grouped by their effective code, for one-lookup duplicate checks.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use kube::runtime::reflector::Store;

use crate::api::Organization;

/// The Organizations grouped by their effective code, so the token endpoint (on every request)
/// and the controllers (on every reconcile) learn which Organizations share a code with one map
/// lookup instead of a scan of every Organization. Rebuilt from the store on the first use
/// after any Organization changed.
#[derive(Default)]
pub struct OrgCodes {
    /// Bumped after each Organization event has reached the store.
    changes: AtomicU64,
    built: RwLock<BuiltCodes>,
}

/// Organizations sharing one code (shared: a lookup clones one `Arc`, allocates nothing).
pub type SameCode = Arc<[Arc<Organization>]>;

#[derive(Default)]
struct BuiltCodes {
    /// The `changes` count read before the store was read; `None` until first built.
    at: Option<u64>,
    by_code: HashMap<String, SameCode>,
}

impl OrgCodes {
    /// Records that the Organization store changed (the watch calls this; so must whoever
    /// writes a detached cache's Organizations).
    pub fn changed(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// Every Organization in `store` whose effective code is `code` (ignoring ASCII case: codes
    /// are unique case-insensitively), as of a snapshot taken after the last [`Self::changed`].
    pub fn sharing(&self, code: &str, store: &Store<Organization>) -> SameCode {
        let code = code.to_ascii_lowercase();
        let code = code.as_str();
        // Read the count before the store: a change landing in between makes the next call
        // rebuild again, never keeps a snapshot older than its label.
        let seen = self.changes.load(Ordering::Acquire);
        if let Ok(built) = self.built.read()
            && built.at == Some(seen)
        {
            return built
                .by_code
                .get(code)
                .cloned()
                .unwrap_or_else(|| Arc::new([]));
        }
        let mut grouped: HashMap<String, Vec<Arc<Organization>>> = HashMap::new();
        for org in store.state() {
            grouped
                .entry(org.effective_code().to_ascii_lowercase())
                .or_default()
                .push(org);
        }
        let by_code: HashMap<String, SameCode> = grouped
            .into_iter()
            .map(|(code, orgs)| (code, orgs.into()))
            .collect();
        let found = by_code.get(code).cloned().unwrap_or_else(|| Arc::new([]));
        if let Ok(mut built) = self.built.write() {
            *built = BuiltCodes {
                at: Some(seen),
                by_code,
            };
        }
        found
    }
}
