//! Secret rotation against the real API server with a running operator.

use std::time::Duration;

use kube::{
    Api,
    api::{Patch, PatchParams},
};
use m2m_operator::api::M2MApp;
use serde_json::json;

use crate::{
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    http,
    operator::Operator,
};

async fn annotate(client: &kube::Client, ns: &str, name: &str, key: &str, value: &str) {
    let api: Api<M2MApp> = Api::namespaced(client.clone(), ns);
    let patch = json!({"metadata": {"annotations": {key: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate");
}

async fn status_of(op: &Operator, id: &str, secret: &str) -> u16 {
    http::token(&op.url(), id, secret, &[]).await.0
}

/// Waits until a token request with `secret` gets HTTP `expected`.
async fn wait_token_status(
    op: &Operator,
    id: &str,
    secret: &str,
    expected: u16,
    what: &str,
    seconds: u64,
) {
    wait_for(what, Duration::from_secs(seconds), || async {
        match status_of(op, id, secret).await {
            s if s == expected => Ok(()),
            s => Err(s.to_string()),
        }
    })
    .await;
}

async fn revision(client: &kube::Client, ns: &str, name: &str) -> i64 {
    get_app(client, ns, name)
        .await
        .status
        .and_then(|s| s.rotation)
        .map_or(0, |r| r.revision)
}

/// Long on purpose: one scenario against one set of objects, in the order a user lives it;
/// its steps share what earlier steps saw, so they read top to bottom.
#[tokio::test]
async fn rotate_annotation_new_secret_at_once_old_until_grace_ends() {
    let client = common::client().await;
    let op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-rotate").await;
    apply_app(
        &client,
        &ns.name,
        "agent",
        json!({"audiences": ["api"], "rotation": {"gracePeriod": "8s"}}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    let (id, old) = credentials(&client, &ns.name, "agent").await;
    assert_eq!(status_of(&op, &id, &old).await, 200);

    annotate(&client, &ns.name, "agent", "m2m.dev/rotate", "1").await;
    let new = wait_for(
        "a new secret in the Secret",
        Duration::from_secs(20),
        || async {
            let (_, s) = credentials(&client, &ns.name, "agent").await;
            if s != old {
                Ok(s)
            } else {
                Err("unchanged".to_owned())
            }
        },
    )
    .await;
    wait_token_status(&op, &id, &new, 200, "the new secret to get tokens", 10).await;
    let before = op.metrics().await;
    assert_eq!(
        status_of(&op, &id, &old).await,
        200,
        "the old secret works during the grace period"
    );
    let after = op.metrics().await;
    let previous_uses = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("m2m_tokens_issued_with_previous_secret_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(
        previous_uses(&after) > previous_uses(&before),
        "previous-secret use is counted"
    );

    let app = wait_for("status revision 2", Duration::from_secs(10), || async {
        let app = get_app(&client, &ns.name, "agent").await;
        let r = app
            .status
            .as_ref()
            .and_then(|s| s.rotation.clone())
            .unwrap_or_default();
        if r.revision == 2 && r.last_handled_rotate_request.as_deref() == Some("1") {
            Ok(app)
        } else {
            Err(format!("{r:?}"))
        }
    })
    .await;
    let rotation = app.status.unwrap().rotation.unwrap();
    assert!(rotation.previous_secret_expires_at.is_some());
    assert!(rotation.last_rotation_time.is_some());
    let secret = get_secret(&client, &ns.name, "agent-credentials")
        .await
        .unwrap();
    assert_eq!(
        secret.metadata.annotations.unwrap()["m2m.dev/revision"],
        "2"
    );
    wait_event(&client, &ns.name, "agent", "SecretRotated").await;

    // The same value again does nothing.
    annotate(&client, &ns.name, "agent", "m2m.dev/rotate", "1").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(revision(&client, &ns.name, "agent").await, 2);
    assert_eq!(credentials(&client, &ns.name, "agent").await.1, new);

    // After the grace period the old secret is refused.
    wait_token_status(
        &op,
        &id,
        &old,
        401,
        "the old secret to be refused after the grace period",
        20,
    )
    .await;
    assert_eq!(status_of(&op, &id, &new).await, 200);

    // A new value rotates again.
    annotate(&client, &ns.name, "agent", "m2m.dev/rotate", "2").await;
    wait_for("revision 3", Duration::from_secs(20), || async {
        match revision(&client, &ns.name, "agent").await {
            3 => Ok(()),
            r => Err(r.to_string()),
        }
    })
    .await;
    ns.delete().await;
}

#[tokio::test]
async fn revoke_previous_ends_the_grace_period_at_once() {
    let client = common::client().await;
    let op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-revoke").await;
    apply_app(
        &client,
        &ns.name,
        "agent",
        json!({"audiences": ["api"], "rotation": {"gracePeriod": "1h"}}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    let (id, old) = credentials(&client, &ns.name, "agent").await;
    assert_eq!(status_of(&op, &id, &old).await, 200);
    annotate(&client, &ns.name, "agent", "m2m.dev/rotate", "leak").await;
    let new = wait_for("rotation", Duration::from_secs(20), || async {
        let (_, s) = credentials(&client, &ns.name, "agent").await;
        if s != old {
            Ok(s)
        } else {
            Err("unchanged".to_owned())
        }
    })
    .await;
    wait_for(
        "both secrets work during grace",
        Duration::from_secs(10),
        || async {
            let (a, b) = (
                status_of(&op, &id, &old).await,
                status_of(&op, &id, &new).await,
            );
            if (a, b) == (200, 200) {
                Ok(())
            } else {
                Err(format!("{a} {b}"))
            }
        },
    )
    .await;
    annotate(
        &client,
        &ns.name,
        "agent",
        "m2m.dev/revoke-previous",
        "leak",
    )
    .await;
    wait_token_status(&op, &id, &old, 401, "the old secret to be refused", 10).await;
    assert_eq!(status_of(&op, &id, &new).await, 200);
    let app = get_app(&client, &ns.name, "agent").await;
    let rotation = app.status.unwrap().rotation.unwrap();
    assert_eq!(
        rotation.last_handled_revoke_request.as_deref(),
        Some("leak")
    );
    assert!(rotation.previous_secret_expires_at.is_none());
    ns.delete().await;
}

#[tokio::test]
async fn scheduled_rotation_happens_and_is_visible_in_status() {
    let client = common::client().await;
    let op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-every").await;
    apply_app(
        &client,
        &ns.name,
        "agent",
        json!({"audiences": ["api"], "rotation": {"every": "1m", "gracePeriod": "0s"}}),
    )
    .await;
    let app = wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    let rotation = app.status.unwrap().rotation.unwrap();
    let last = rotation.last_rotation_time.unwrap().0;
    let next = rotation.next_rotation_time.expect("nextRotationTime").0;
    assert_eq!(next.as_second() - last.as_second(), 60);
    let (id, old) = credentials(&client, &ns.name, "agent").await;
    wait_for(
        "the scheduled rotation",
        Duration::from_secs(100),
        || async {
            match revision(&client, &ns.name, "agent").await {
                2 => Ok(()),
                r => Err(r.to_string()),
            }
        },
    )
    .await;
    let (_, new) = credentials(&client, &ns.name, "agent").await;
    assert_ne!(new, old);
    assert_eq!(status_of(&op, &id, &new).await, 200);
    assert_eq!(
        status_of(&op, &id, &old).await,
        401,
        "gracePeriod 0s: the old secret stops at once"
    );
    ns.delete().await;
}

/// Kills the operator (SIGKILL) at random moments during 50 rotations of 5 apps; afterwards every
/// app's revision is 1 + the rotate values it was given, its current secret and the one before
/// (grace 1h) get tokens, and every secret seen in a Secret got a token when it was seen.
///
/// Long on purpose: one scenario against one set of objects, in the order a user lives it;
/// its steps share what earlier steps saw, so they read top to bottom.
#[tokio::test]
async fn rotations_survive_the_operator_being_killed_at_random_moments() {
    use rand::Rng;
    let client = common::client().await;
    let mut op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-crash").await;
    let apps: Vec<String> = (0..5).map(|i| format!("app-{i}")).collect();
    for app in &apps {
        apply_app(
            &client,
            &ns.name,
            app,
            json!({"audiences": ["api"], "rotation": {"gracePeriod": "1h"}}),
        )
        .await;
    }
    for app in &apps {
        wait_app_reason(&client, &ns.name, app, "True", "CredentialsIssued").await;
    }
    let mut seen: Vec<Vec<String>> = Vec::new();
    for app in &apps {
        seen.push(vec![credentials(&client, &ns.name, app).await.1]);
    }
    let mut kills = 0;
    for k in 0..50 {
        let i = k % apps.len();
        annotate(
            &client,
            &ns.name,
            &apps[i],
            "m2m.dev/rotate",
            &format!("r{k}"),
        )
        .await;
        if k % 5 == 4 {
            let delay = rand::rng().random_range(0..400);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            op.kill();
            kills += 1;
            op = Operator::start(&client).await;
        }
        let expected = 1 + (k / apps.len()) as i64 + 1;
        wait_for(
            &format!("{} at revision {expected}", apps[i]),
            Duration::from_secs(60),
            || async {
                match revision(&client, &ns.name, &apps[i]).await {
                    r if r == expected => Ok(()),
                    r => Err(r.to_string()),
                }
            },
        )
        .await;
        let (id, secret) = credentials(&client, &ns.name, &apps[i]).await;
        wait_token_status(
            &op,
            &id,
            &secret,
            200,
            "the Secret's secret to get a token",
            10,
        )
        .await;
        if seen[i].last() != Some(&secret) {
            seen[i].push(secret);
        }
    }
    assert!(kills >= 10, "only {kills} kills");
    for (i, app) in apps.iter().enumerate() {
        assert_eq!(
            revision(&client, &ns.name, app).await,
            11,
            "{app}: 1 + 10 distinct rotate values"
        );
        let (id, current) = credentials(&client, &ns.name, app).await;
        assert_eq!(seen[i].last(), Some(&current));
        assert_eq!(
            status_of(&op, &id, &current).await,
            200,
            "{app}: current secret"
        );
        let previous = &seen[i][seen[i].len() - 2];
        assert_eq!(
            status_of(&op, &id, previous).await,
            200,
            "{app}: the previous secret, in its grace period"
        );
        assert_eq!(
            seen[i].len(),
            11,
            "{app}: every rotation produced one new secret: {}",
            seen[i].len()
        );
    }
    ns.delete().await;
}
