//! The cluster tests' harness, also used by the scale benchmarks: a client for the real control
//! plane (`common`), the objects tests create and read (`fixtures`), the operator binary as a
//! process under its real identity (`operator`), HTTP as users send it (`http`), and a proxy that
//! records or stalls the operator's API requests (`api_proxy`), and many tenants at once for the
//! scale benchmarks (`tenants`).

pub mod api_proxy;
pub mod common;
pub mod fixtures;
pub mod http;
pub mod operator;
pub mod tenants;
