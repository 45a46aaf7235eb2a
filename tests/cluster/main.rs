//! Cluster tests: run against the real control plane started by `hack/cluster.sh up`
//! (the README's test command does that and sets KUBECONFIG). They fail loudly without it.

// Test helpers panic on purpose: a panic is how a test reports the failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The harness (test kit): every test names these as `crate::common`, `crate::fixtures`, ...
pub use m2m_operator_testkit::cluster::{api_proxy, common, fixtures, http, operator};

mod admission;
mod attacks;
mod attacks_token;
mod chaos;
mod controller;
mod crd_limits;
mod crds;
mod events;
mod fencing;
mod ha;
mod keyless;
mod keyless_sa;
mod keyless_sa_reviews;
mod load;
mod quotas;
mod rbac;
// Shared by quotas and usage.
mod replicas;
mod robustness;
// Named to run before the tests after it, which so show that its CRD skew is undone.
mod robustness_unreadable;
mod rotation;
mod signing_keys;
mod tokens;
mod usage;
