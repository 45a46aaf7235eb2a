//! The Kubernetes Events the controllers publish, through one helper for both kinds.

use kube::{
    Resource,
    runtime::events::{Event, EventType},
};

use super::Context;

/// One Event about an object: what happened (`reason`, `action`) and a message for people. The
/// message names objects, revisions and times, never a secret or a hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: String,
    pub action: &'static str,
    pub message: String,
}

impl Note {
    pub fn normal(reason: &str, action: &'static str, message: String) -> Self {
        Self {
            warning: false,
            reason: reason.to_owned(),
            action,
            message,
        }
    }

    pub fn warning(reason: &str, action: &'static str, message: String) -> Self {
        Self {
            warning: true,
            ..Self::normal(reason, action, message)
        }
    }
}

/// Publishes `note` about `obj`. A failure is logged, never fatal: Events are best effort.
pub async fn publish<K: Resource<DynamicType = ()>>(ctx: &Context, obj: &K, note: Note) {
    let event = Event {
        type_: if note.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: note.reason,
        note: Some(note.message),
        action: note.action.to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, reason = %event.reason, "publishing an Event failed");
    }
}
