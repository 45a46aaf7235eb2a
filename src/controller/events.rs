//! The Kubernetes Events the controllers publish, through one helper for both kinds.

use kube::Resource;

pub use crate::events::Note;

use super::Context;

/// Publishes `note` about `obj`. A failure is logged, never fatal: Events are best effort.
pub async fn publish<K: Resource<DynamicType = ()>>(ctx: &Context, obj: &K, note: Note) {
    if let Err(e) = ctx.events.publish(&obj.object_ref(&()), &note).await {
        tracing::warn!(error = %e, reason = %note.reason, "publishing an Event failed");
    }
}
