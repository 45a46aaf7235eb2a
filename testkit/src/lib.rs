//! The test kit of m2m-operator: one harness for its tests, benchmarks and fuzz targets. Not part
//! of the operator's build (`cargo build` of the operator compiles none of it).
//!
//! - [`world`]: a filled cache and a key ring without a cluster (HTTP tests, benchmarks, fuzzing)
//! - [`token_http`]: the token endpoint's routes over such a cache, in process or on a real port
//! - [`install`]: what the operator needs in a real cluster (CRDs, namespace, RBAC, policy)
//! - [`cluster`]: the cluster tests' harness (client, objects, operator processes, HTTP)
//! - [`raw_http`]: a minimal HTTP/1.1 client on a plain socket (for timing without curl)
//! - [`fuzzing`]: the fuzz targets' bodies (`fuzz/`, and `tests/fuzz_regressions.rs`)

// Test helpers panic on purpose: a panic is how a test reports the failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cluster;
pub mod fuzzing;
pub mod install;
pub mod raw_http;
pub mod token_http;
pub mod world;
