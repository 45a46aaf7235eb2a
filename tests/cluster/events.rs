//! The Event publisher against the real API server: the same Event about the same object
//! continues its series (one Event, count 2), a different message is an Event of its own, and a
//! series whose Event was deleted starts again.

use k8s_openapi::api::{core::v1::ConfigMap, events::v1::Event};
use kube::{
    Api, Resource,
    api::{DeleteParams, ListParams, PostParams},
};
use m2m_operator::events::{Note, Publisher};

use crate::common::{self, TestNamespace};

async fn events_about(client: &kube::Client, ns: &str, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let mut events = api
        .list(&ListParams::default().fields(&format!("regarding.name={name}")))
        .await
        .unwrap()
        .items;
    events.sort_by_key(|e| e.metadata.name.clone());
    events
}

#[tokio::test]
async fn repeated_events_continue_one_series_and_a_new_message_is_a_new_event() {
    let client = common::client().await;
    let ns = TestNamespace::new(&client, "m2m-events").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("subject".into());
    let cm = cms.create(&PostParams::default(), &cm).await.unwrap();
    let regarding = cm.object_ref(&());
    let publisher = Publisher::new(client.clone(), "m2m-operator", "events-test");
    let failed = |m: &str| Note::warning("SecretWriteFailed", "WriteSecret", m.into());

    publisher
        .publish(&regarding, &failed("refused: quota"))
        .await
        .unwrap();
    publisher
        .publish(&regarding, &failed("refused: quota"))
        .await
        .unwrap();
    let events = events_about(&client, &ns.name, "subject").await;
    assert_eq!(
        events.len(),
        1,
        "one Event for the same message: {events:?}"
    );
    assert_eq!(events[0].series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(events[0].note.as_deref(), Some("refused: quota"));
    assert_eq!(events[0].reporting_instance.as_deref(), Some("events-test"));

    publisher
        .publish(&regarding, &failed("refused: forbidden"))
        .await
        .unwrap();
    let events = events_about(&client, &ns.name, "subject").await;
    let mut notes: Vec<_> = events.iter().filter_map(|e| e.note.clone()).collect();
    notes.sort();
    assert_eq!(
        notes,
        ["refused: forbidden", "refused: quota"],
        "a new message is not folded into the old Event"
    );

    // The first Event deleted (its TTL, or by hand): the next occurrence creates a new one.
    let api: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let quota = events
        .iter()
        .find(|e| e.note.as_deref() == Some("refused: quota"))
        .unwrap();
    api.delete(
        quota.metadata.name.as_deref().unwrap(),
        &DeleteParams::default(),
    )
    .await
    .unwrap();
    publisher
        .publish(&regarding, &failed("refused: quota"))
        .await
        .unwrap();
    let events = events_about(&client, &ns.name, "subject").await;
    let again: Vec<_> = events
        .iter()
        .filter(|e| e.note.as_deref() == Some("refused: quota"))
        .collect();
    assert_eq!(again.len(), 1, "{events:?}");
    assert_ne!(again[0].metadata.name, quota.metadata.name, "a new Event");
    assert!(again[0].series.is_none(), "a new series");
    ns.delete().await;
}
