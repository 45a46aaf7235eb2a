//! The custom resources of `m2m.dev/v1alpha1`: [`Organization`] and [`M2MApp`].
//!
//! The `///` docs on every field become the CRD's descriptions (`kubectl explain`), and the
//! validation attributes become its OpenAPI schema and CEL rules, so the API server refuses bad
//! objects before the operator ever sees them. `crds/*.yaml` is generated from these types.

mod client_auth;
pub mod conditions;
pub mod duration;
mod m2mapp;
pub mod names;
mod organization;
pub mod quota;
pub mod validation;

pub use client_auth::{AuthMethod, ClientAuthentication, Jwk, Jwks, KeyType};
pub use m2mapp::{
    M2MApp, M2MAppSpec, M2MAppStatus, OrganizationRef, RotationSpec, RotationStatus, SecretTemplate,
};
pub use organization::{Organization, OrganizationSpec, OrganizationStatus};
pub use quota::{QuotaMode, QuotaSpec, QuotaStatus};

/// API group of both kinds.
pub const GROUP: &str = "m2m.dev";
/// API version of both kinds.
pub const VERSION: &str = "v1alpha1";
