//! m2m-operator: tenant-scoped OAuth 2.0 client credentials for Kubernetes.
//!
//! `Organization` and `M2MApp` custom resources become client credentials in Secrets, and every
//! replica serves an OAuth 2.0 token endpoint that issues JWTs carrying `org_code` and `scope`.

pub mod admin;
pub mod api;
pub mod cache;
pub mod config;
pub mod controller;
pub mod crd;
pub mod crd_reference;
pub mod credentials;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod rotation;
pub mod telemetry;
pub mod tenancy;
pub mod token;
pub mod usage;
