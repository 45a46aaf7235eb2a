//! Token quotas across three replicas: each replica admits its share (the quota divided by the
//! ready endpoints of the token Service), so the replicas together admit the quota; over it, 429
//! with Retry-After; observe mode issues and counts; an organization's quota caps the sum of its
//! apps; other apps are unaffected; the leader's status and an Event show it.

use std::time::Duration;

use kube::Api;
use serde_json::{Value, json};

use crate::{
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    operator::Operator,
    replicas::{TokenService, fresh_minute, three_replicas, token_with_retry_after},
};

/// Sends `per_replica` token requests for the app to each replica; returns the statuses.
async fn burst(
    ops: &[Operator],
    id: &str,
    secret: &str,
    per_replica: usize,
) -> Vec<(u16, Option<u64>, Value)> {
    let mut out = Vec::new();
    for op in ops {
        for _ in 0..per_replica {
            out.push(token_with_retry_after(&op.url(), id, secret).await);
        }
    }
    out
}

fn issued(results: &[(u16, Option<u64>, Value)]) -> usize {
    results.iter().filter(|(s, _, _)| *s == 200).count()
}

async fn quota_metric(ops: &[Operator], series: &str) -> f64 {
    let mut total = 0.0;
    for op in ops {
        total += op.metric(series).await;
    }
    total
}

#[tokio::test]
async fn an_app_quota_holds_across_three_replicas_then_429_with_retry_after_and_others_are_unaffected()
 {
    let client = common::client().await;
    let service = TokenService::new(&client, 3).await;
    let ops = three_replicas(&client, &service).await;
    let ns = TestNamespace::new(&client, "m2m-quota").await;
    // 30 a minute over 3 replicas: 10 each, 30 in all (the bound is 30 + 3 - 1).
    apply_app(
        &client,
        &ns.name,
        "capped",
        json!({"audiences": ["api"], "quota": {"tokensPerMinute": 30}}),
    )
    .await;
    apply_app(&client, &ns.name, "free", json!({"audiences": ["api"]})).await;
    wait_app_reason(&client, &ns.name, "capped", "True", "CredentialsIssued").await;
    wait_app_reason(&client, &ns.name, "free", "True", "CredentialsIssued").await;
    let (id, secret) = credentials(&client, &ns.name, "capped").await;
    let (free_id, free_secret) = credentials(&client, &ns.name, "free").await;

    fresh_minute(30).await;
    let results = burst(&ops, &id, &secret, 15).await;
    let per_replica: Vec<usize> = results.chunks(15).map(issued).collect();
    assert_eq!(
        per_replica,
        [10, 10, 10],
        "each replica admits its share of 30 over 3"
    );
    for (status, retry_after, body) in results.iter().filter(|(s, _, _)| *s != 200) {
        assert_eq!(*status, 429, "{body}");
        assert_eq!(body["error"], "temporarily_unavailable", "{body}");
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(
            description.contains("app quota of 30 tokens per minute"),
            "{description}"
        );
        let retry_after = retry_after.expect("a Retry-After header");
        assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    }
    assert_eq!(
        issued(&burst(&ops, &free_id, &free_secret, 15).await),
        45,
        "an app without a quota is unaffected"
    );
    let refused = quota_metric(
        &ops,
        "m2m_token_quota_exceeded_total{scope=\"app\",period=\"minute\",mode=\"enforce\"}",
    )
    .await;
    assert_eq!(
        refused, 15.0,
        "every refusal counted, without per-app labels"
    );
    let audited = ops
        .iter()
        .map(|op| op.log_text())
        .filter(|l| {
            l.contains("\"outcome\":\"quota_exceeded\"")
                && l.contains("\"quota_exceeded\":\"app-minute\"")
        })
        .count();
    assert_eq!(
        audited, 3,
        "every replica audits its refusals with the quota"
    );

    // The leader shows it in status, from every replica's report, and says so once in an Event.
    let app = wait_for(
        "status.quota to show the excess",
        Duration::from_secs(20),
        || async {
            let app = get_app(&client, &ns.name, "capped").await;
            let quota = app.status.as_ref().and_then(|s| s.quota.clone());
            match &quota {
                Some(q) if q.exceeded_recently && q.last_exceeded_at.is_some() => Ok(app),
                _ => Err(format!("{quota:?}")),
            }
        },
    )
    .await;
    let quota = app.status.and_then(|s| s.quota).expect("quota status");
    assert_eq!(quota.tokens_per_minute, Some(30));
    wait_event(&client, &ns.name, "capped", "QuotaExceeded").await;
    let free = get_app(&client, &ns.name, "free").await;
    assert!(free.status.and_then(|s| s.quota).is_none());

    drop(ops);
    ns.delete().await;
    service.delete().await;
}

#[tokio::test]
async fn observe_mode_issues_and_counts_and_an_org_quota_caps_the_sum_of_its_apps() {
    let client = common::client().await;
    let service = TokenService::new(&client, 3).await;
    let ops = three_replicas(&client, &service).await;
    let ns = TestNamespace::new(&client, "m2m-quota-org").await;
    let org = org_name("quota");
    // 12 a minute for the organization: 4 per replica, whichever of its apps asks.
    apply_org(
        &client,
        &org,
        json!({"namespaces": [ns.name], "quota": {"tokensPerMinute": 12}}),
    )
    .await;
    let org_ref = json!({"name": org});
    apply_app(
        &client,
        &ns.name,
        "one",
        json!({"organizationRef": org_ref, "audiences": ["api"]}),
    )
    .await;
    apply_app(
        &client,
        &ns.name,
        "two",
        json!({"organizationRef": org_ref, "audiences": ["api"]}),
    )
    .await;
    apply_app(
        &client,
        &ns.name,
        "watched",
        json!({"audiences": ["api"], "quota": {"tokensPerMinute": 3, "mode": "Observe"}}),
    )
    .await;
    for app in ["one", "two", "watched"] {
        wait_app_reason(&client, &ns.name, app, "True", "CredentialsIssued").await;
    }
    let one = credentials(&client, &ns.name, "one").await;
    let two = credentials(&client, &ns.name, "two").await;
    let watched = credentials(&client, &ns.name, "watched").await;

    fresh_minute(30).await;
    let first = burst(&ops, &one.0, &one.1, 3).await;
    let second = burst(&ops, &two.0, &two.1, 3).await;
    assert_eq!(
        issued(&first) + issued(&second),
        12,
        "the organization's 12 a minute across both apps and three replicas"
    );
    assert_eq!(issued(&first), 9, "the first app got 3 of each replica's 4");
    let refused = second
        .iter()
        .find(|(s, _, _)| *s == 429)
        .expect("a refusal");
    let description = refused.2["error_description"].as_str().unwrap_or_default();
    assert!(
        description.contains("organization quota of 12 tokens per minute"),
        "{description}"
    );

    let observed = burst(&ops, &watched.0, &watched.1, 4).await;
    assert_eq!(issued(&observed), 12, "observe mode issues every token");
    let counted = quota_metric(
        &ops,
        "m2m_token_quota_exceeded_total{scope=\"app\",period=\"minute\",mode=\"observe\"}",
    )
    .await;
    assert_eq!(
        counted, 9.0,
        "3 a minute over 3 replicas: 1 each, so 3 of each replica's 4 are over"
    );
    wait_for(
        "the watched app's status to show the excess",
        Duration::from_secs(20),
        || async {
            let q = get_app(&client, &ns.name, "watched")
                .await
                .status
                .and_then(|s| s.quota);
            if q.as_ref().is_some_and(|q| q.exceeded_recently) {
                Ok(())
            } else {
                Err(format!("{q:?}"))
            }
        },
    )
    .await;
    wait_for(
        "the organization's status to show the excess",
        Duration::from_secs(20),
        || async {
            let orgs: Api<m2m_operator::api::Organization> = Api::all(client.clone());
            let q = orgs
                .get(&org)
                .await
                .ok()
                .and_then(|o| o.status)
                .and_then(|s| s.quota);
            if q.as_ref()
                .is_some_and(|q| q.exceeded_recently && q.tokens_per_minute == Some(12))
            {
                Ok(())
            } else {
                Err(format!("{q:?}"))
            }
        },
    )
    .await;

    drop(ops);
    delete_org(&client, &org).await;
    ns.delete().await;
    service.delete().await;
}
