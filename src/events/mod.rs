//! The Kubernetes Events (events.k8s.io/v1) the operator publishes: one [`Publisher`] per
//! component, which creates an Event the first time and continues its series ([`series`]) when
//! the same Event about the same object happens again within six minutes.

pub mod series;

use std::sync::Mutex;

use k8s_openapi::{
    api::{
        core::v1::ObjectReference,
        events::v1::{Event, EventSeries},
    },
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
    core::ObjectMeta,
};

use series::{Key, Next, Series};

/// One Event: what happened (`reason`, `action`) and a message for people. The message names
/// objects, revisions and times, never a secret or a hash.
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

    fn type_(&self) -> &'static str {
        if self.warning { "Warning" } else { "Normal" }
    }
}

/// Publishes Events as one reporting controller and instance.
pub struct Publisher {
    client: Client,
    controller: String,
    instance: String,
    series: Mutex<Series>,
}

impl Publisher {
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        Self {
            client,
            controller: controller.to_owned(),
            instance: instance.to_owned(),
            series: Mutex::default(),
        }
    }

    /// Publishes `note` about `regarding` (cluster-scoped objects' Events go to `default`).
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        note: &Note,
    ) -> Result<(), kube::Error> {
        let key = key(regarding, note);
        let now = Timestamp::now();
        let next = self.lock().next(&key, now);
        if let Next::Continue {
            namespace,
            name,
            count,
        } = next
        {
            let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
            let patch = serde_json::json!({
                "series": EventSeries { count, last_observed_time: MicroTime(now) },
            });
            match events
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.lock().continued(&key, count, now);
                    return Ok(());
                }
                // Gone (expired or deleted): start again with a new Event.
                Err(kube::Error::Api(s)) if s.code == 404 => self.lock().forget(&key),
                Err(e) => return Err(e),
            }
        }
        let event = self.event(regarding, note, now);
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let created = events.create(&PostParams::default(), &event).await?;
        let name = created.metadata.name.unwrap_or_default();
        self.lock().created(key, &namespace, &name, now);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn event(&self, regarding: &ObjectReference, note: &Note, now: Timestamp) -> Event {
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let object = regarding.name.as_deref().unwrap_or(&self.controller);
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(note.action.to_owned()),
            reason: Some(note.reason.clone()),
            note: Some(note.message.clone()),
            type_: Some(note.type_().to_owned()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        }
    }
}

/// What makes two Events the same: the object (kind, namespace, name, uid), type, reason,
/// action and note, each length-prefixed.
fn key(regarding: &ObjectReference, note: &Note) -> Key {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in [
        regarding.kind.as_deref().unwrap_or_default(),
        regarding.namespace.as_deref().unwrap_or_default(),
        regarding.name.as_deref().unwrap_or_default(),
        regarding.uid.as_deref().unwrap_or_default(),
        note.type_(),
        &note.reason,
        note.action,
        &note.message,
    ] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let mut key = [0; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(uid: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("M2MApp".into()),
            namespace: Some("tenant".into()),
            name: Some("agent".into()),
            uid: Some(uid.into()),
            ..ObjectReference::default()
        }
    }

    #[test]
    fn events_differing_in_their_message_or_object_are_not_one_series() {
        let failed = |m: &str| Note::warning("SecretWriteFailed", "WriteSecret", m.into());
        let a = key(&app("u1"), &failed("quota exceeded"));
        assert_eq!(a, key(&app("u1"), &failed("quota exceeded")));
        assert_ne!(a, key(&app("u1"), &failed("forbidden")), "another message");
        assert_ne!(
            a,
            key(&app("u2"), &failed("quota exceeded")),
            "a recreated app"
        );
        let normal = Note::normal("SecretWriteFailed", "WriteSecret", "quota exceeded".into());
        assert_ne!(a, key(&app("u1"), &normal), "another type");
        // Length prefixes: moving a boundary between fields changes the key.
        let mut shifted = app("u1");
        shifted.name = Some("agen".into());
        shifted.uid = Some("tu1".into());
        assert_ne!(a, key(&shifted, &failed("quota exceeded")));
    }
}
