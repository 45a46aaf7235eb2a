//! Errors of the reconcilers. Each variant names the action that failed; [`Error::category`] is a
//! bounded label for metrics.

use crate::credentials::{generate::RandomError, hash::HashError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the object has no namespace, name or uid")]
    MissingObjectKey,

    #[error("reading Secret {namespace}/{name}: {source}")]
    GetSecret {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error("writing Secret {namespace}/{name}: {source}")]
    WriteSecret {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },

    /// A Secret write the API server answered with an error other than a conflict with another
    /// writer (no answer at all is a [`Error::WriteSecret`]). `message` is what it said, with the Secret's secret removed should the server
    /// have echoed it, so it is safe for logs, the condition and the Event.
    #[error("writing Secret {namespace}/{name}: {message}")]
    SecretRefused {
        namespace: String,
        name: String,
        message: String,
    },

    #[error("reading client record {name}: {source}")]
    GetRecord {
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error("writing client record {name}: {source}")]
    WriteRecord {
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error("deleting client record {name}: {source}")]
    DeleteRecord {
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error("serializing client record: {0}")]
    SerializeRecord(#[source] serde_json::Error),

    #[error("updating the status of {kind} {name}: {source}")]
    PatchStatus {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error(transparent)]
    Random(#[from] RandomError),

    #[error(transparent)]
    Hash(#[from] HashError),

    #[error("a blocking hashing task failed: {0}")]
    Blocking(#[source] tokio::task::JoinError),

    /// The client record this reconcile wrote did not reach this replica's cache in time (the
    /// watch of the records is behind, as after an API server restart): the token endpoint
    /// here would refuse what the status would call issued, so the status waits.
    #[error(
        "client record {name}: the version written is not in this replica's cache after {waited:?} (its watch is behind); the status is written once it is"
    )]
    CacheBehind {
        name: String,
        waited: std::time::Duration,
    },

    /// What was read changed under the reconcile (it retries with fresh reads).
    #[error("inconsistent state: {0}")]
    Inconsistent(&'static str),
}

impl Error {
    /// A bounded label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Error::MissingObjectKey => "invalid_object",
            Error::GetSecret { .. } | Error::GetRecord { .. } => "api_read",
            Error::WriteSecret { source, .. }
            | Error::WriteRecord { source, .. }
            | Error::DeleteRecord { source, .. }
            | Error::PatchStatus { source, .. } => {
                if is_conflict(source) {
                    "api_conflict"
                } else {
                    "api_write"
                }
            }
            Error::SecretRefused { .. } => "api_write",
            Error::SerializeRecord(_) => "serialize",
            Error::Random(_) | Error::Hash(_) | Error::Blocking(_) => "crypto",
            Error::Inconsistent(_) => "inconsistent",
            Error::CacheBehind { .. } => "cache_behind",
        }
    }

    /// Whether retrying cannot help until the object changes.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::MissingObjectKey)
    }
}

/// Whether the API answered 409 Conflict (a write raced another writer).
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 409)
}
