//! The attack matrix, against a running operator and the real API server over real HTTP: every
//! attack is refused, and no response body, status or Event carries a secret, a hash or a token.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use m2m_operator::{
    api::M2MApp,
    token::{
        keys::{KEYS_SECRET, KeyRing},
        signing,
    },
};
use serde_json::{Value, json};

use crate::{
    common::{self, TEST_MANAGER, TestNamespace, wait_for},
    fixtures::*,
    http,
    operator::{ISSUER, OPERATOR_NAMESPACE, Operator},
};

/// Collects what must never appear anywhere a caller or a tenant can read.
#[derive(Default)]
struct Sensitive(Vec<String>);

impl Sensitive {
    fn add(&mut self, value: &str) {
        if value.len() >= 8 {
            self.0.push(value.to_owned());
        }
    }

    fn assert_absent(&self, what: &str, text: &str) {
        for value in &self.0 {
            assert!(
                !text.contains(value.as_str()),
                "{what} leaks a secret, hash or token"
            );
        }
    }
}

/// Replaces a token's header and/or payload and signature.
fn forge(token: &str, header: Option<Value>, payload: Option<Value>, signature: &str) -> String {
    let mut parts = token.split('.');
    let (h, p) = (parts.next().unwrap(), parts.next().unwrap());
    let enc = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{signature}",
        header.map_or(h.to_owned(), enc),
        payload.map_or(p.to_owned(), enc)
    )
}

fn part(token: &str, i: usize) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(i).unwrap())
            .unwrap(),
    )
    .unwrap()
}

async fn introspect(op: &Operator, id: &str, secret: &str, token: &str) -> Value {
    let (status, body) = http::post_form(
        &format!("{}/oauth2/introspect", op.url()),
        Some((id, secret)),
        &[("token", token)],
    )
    .await;
    assert_eq!(status, 200, "introspection answers: {body}");
    body
}

#[tokio::test]
async fn every_attack_is_refused_and_nothing_leaks() {
    let client = common::client().await;
    let op = Operator::start(&client).await;
    let a = TestNamespace::new(&client, "m2m-atk-a").await;
    let b = TestNamespace::new(&client, "m2m-atk-b").await;
    let (acme, globex) = (org_name("atk-acme"), org_name("atk-globex"));
    let (acme_code, globex_code) = (
        format!("org_{}", common::suffix()),
        format!("org_{}", common::suffix()),
    );
    apply_org(
        &client,
        &acme,
        json!({"code": acme_code, "namespaces": [a.name], "allowedScopes": ["read", "write"]}),
    )
    .await;
    apply_org(
        &client,
        &globex,
        json!({"code": globex_code, "namespaces": [b.name]}),
    )
    .await;
    let app_spec = |org: &str, scopes: Value| json!({"organizationRef": {"name": org}, "scopes": scopes, "audiences": ["https://api.example.com"], "rotation": {"gracePeriod": "3s"}});
    apply_app(&client, &a.name, "agent", app_spec(&acme, json!(["read"]))).await;
    apply_app(
        &client,
        &b.name,
        "other",
        app_spec(&globex, json!(["read"])),
    )
    .await;
    apply_app(&client, &a.name, "doomed", app_spec(&acme, json!(["read"]))).await;
    for (ns, app) in [(&a.name, "agent"), (&b.name, "other"), (&a.name, "doomed")] {
        wait_app_reason(&client, ns, app, "True", "CredentialsIssued").await;
    }
    let (id, secret) = credentials(&client, &a.name, "agent").await;
    let (other_id, other_secret) = credentials(&client, &b.name, "other").await;
    let (doomed_id, doomed_secret) = credentials(&client, &a.name, "doomed").await;
    let mut sensitive = Sensitive::default();
    for s in [&secret, &other_secret, &doomed_secret] {
        sensitive.add(s);
    }
    let records: Api<Secret> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    for (ns, app) in [(&a.name, "agent"), (&b.name, "other"), (&a.name, "doomed")] {
        let rec = record(&client, &uid(&get_app(&client, ns, app).await))
            .await
            .expect("record");
        sensitive.add(
            &serde_json::to_value(&rec.current)
                .unwrap()
                .to_string()
                .replace('"', ""),
        );
    }
    let mut bodies: Vec<(String, String)> = Vec::new();

    // 1. A tenant in namespace B binds an app to an Organization that only allows A.
    apply_app(
        &client,
        &b.name,
        "intruder",
        app_spec(&acme, json!(["read"])),
    )
    .await;
    wait_app_reason(&client, &b.name, "intruder", "False", "NamespaceNotAllowed").await;
    assert!(
        get_secret(&client, &b.name, "intruder-credentials")
            .await
            .is_none(),
        "no credentials for a namespace the org does not allow"
    );

    // 2. Moving an app to another organization: the API server refuses the change.
    let apps: Api<M2MApp> = Api::namespaced(client.clone(), &a.name);
    let moved = json!({"apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp",
        "metadata": {"name": "agent"}, "spec": app_spec(&globex, json!(["read"]))});
    let err = apps
        .patch(
            "agent",
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(&moved),
        )
        .await
        .expect_err("organizationRef is immutable");
    assert!(err.to_string().contains("immutable"), "{err}");

    // 3. Scopes beyond the app (at the token endpoint) and beyond the org (on the app).
    let (status, body) = http::token(&op.url(), &id, &secret, &[("scope", "write")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    bodies.push(("scope beyond the app".into(), body.to_string()));
    apply_app(
        &client,
        &a.name,
        "greedy",
        app_spec(&acme, json!(["read", "admin"])),
    )
    .await;
    wait_app_reason(&client, &a.name, "greedy", "False", "ScopesNotAllowed").await;
    assert!(
        get_secret(&client, &a.name, "greedy-credentials")
            .await
            .is_none()
    );

    // 4. Claims as request parameters change nothing.
    let (status, body) = http::token(
        &op.url(),
        &id,
        &secret,
        &[
            ("org_code", &globex_code),
            ("sub", "admin"),
            ("iss", "https://evil.example.com"),
            ("exp", "9999999999"),
            ("scope", "read"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let claims = http::verify(&op.url(), ISSUER, &token).await.unwrap();
    assert_eq!(claims["org_code"], acme_code.as_str());
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["iss"], ISSUER);
    assert!(claims["exp"].as_i64().unwrap() < 9_999_999_999);
    sensitive.add(&token);

    // 5. App X's secret with app Y's client_id.
    let (status, body) = http::token(&op.url(), &other_id, &secret, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    bodies.push(("another app's secret".into(), body.to_string()));
    // A client that pastes its secret into the client_id field: refused, and not logged.
    let (status, body) = http::post_form(
        &format!("{}/oauth2/token", op.url()),
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &secret),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    bodies.push(("a secret as client_id".into(), body.to_string()));

    // 6. Forged and expired tokens at introspection (by a caller of the same org).
    let header = part(&token, 0);
    let kid = header["kid"].as_str().unwrap().to_owned();
    let (status, other_body) = http::token(&op.url(), &other_id, &other_secret, &[]).await;
    assert_eq!(status, 200);
    let other_token = other_body["access_token"].as_str().unwrap().to_owned();
    sensitive.add(&other_token);
    let jwks = http::get_json(&format!("{}/.well-known/jwks.json", op.url())).await;
    let public = serde_json::to_vec(&jwks["keys"][0]).unwrap();
    let hs_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}).to_string()),
        token.split('.').nth(1).unwrap()
    );
    let hmac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &public);
    let hs256 = format!(
        "{hs_input}.{}",
        URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&hmac_key, hs_input.as_bytes()))
    );
    let mut payload = part(&token, 1);
    payload["scope"] = json!("read write admin");
    let tampered = forge(
        &token,
        None,
        Some(payload.clone()),
        token.split('.').nth(2).unwrap(),
    );
    let keys = signing::stored(&records.get(KEYS_SECRET).await.unwrap()).expect("key set");
    let ring = KeyRing::from_stored(&keys);
    payload["scope"] = json!("read");
    payload["exp"] = json!(Timestamp::now().as_second() - 5);
    let expired = ring
        .active(Timestamp::now())
        .unwrap()
        .sign("at+jwt", &payload)
        .unwrap();
    let forgeries = [
        (
            "alg none",
            forge(
                &token,
                Some(json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
                None,
                "",
            ),
        ),
        ("HS256 signed with the public key", hs256),
        (
            "unknown kid",
            forge(
                &token,
                Some(json!({"alg": "ES256", "typ": "at+jwt", "kid": "nope"})),
                None,
                token.split('.').nth(2).unwrap(),
            ),
        ),
        ("tampered payload", tampered),
        ("expired, correctly signed", expired),
        ("another org's token", other_token.clone()),
    ];
    assert_eq!(
        introspect(&op, &id, &secret, &token).await["active"],
        true,
        "the genuine token is active"
    );
    for (what, forged) in forgeries {
        let body = introspect(&op, &id, &secret, &forged).await;
        assert_eq!(body, json!({"active": false}), "{what}");
    }

    // 7. The secret of a deleted app.
    apps.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        "a deleted app's secret to be refused",
        Duration::from_secs(10),
        || async {
            match http::token(&op.url(), &doomed_id, &doomed_secret, &[]).await {
                (401, body) if body["error"] == "invalid_client" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    // 8. The previous secret after its grace period (3s).
    let patch = json!({"metadata": {"annotations": {"m2m.dev/rotate": "attack-1"}}});
    apps.patch("agent", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let new_secret = wait_for("the rotated secret", Duration::from_secs(15), || async {
        let (_, s) = credentials(&client, &a.name, "agent").await;
        if s != secret {
            Ok(s)
        } else {
            Err("not yet".into())
        }
    })
    .await;
    sensitive.add(&new_secret);
    wait_for(
        "the previous secret to expire",
        Duration::from_secs(15),
        || async {
            match http::token(&op.url(), &id, &secret, &[]).await {
                (401, _) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(http::token(&op.url(), &id, &new_secret, &[]).await.0, 200);

    // 9. A suspended organization.
    apply_org(
        &client,
        &globex,
        json!({"code": globex_code, "namespaces": [b.name], "suspended": true}),
    )
    .await;
    wait_for("suspension", Duration::from_secs(10), || async {
        match http::token(&op.url(), &other_id, &other_secret, &[]).await {
            (400, body) if body["error"] == "unauthorized_client" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // 10. Oversized and malformed requests.
    let url = format!("{}/oauth2/token", op.url());
    let form = "application/x-www-form-urlencoded";
    let big = format!("grant_type=client_credentials&pad={}", "a".repeat(9 * 1024));
    let cases: [(&str, &str, String, u16); 5] = [
        ("oversized body", form, big, 413),
        (
            "JSON body",
            "application/json",
            r#"{"grant_type":"client_credentials"}"#.into(),
            400,
        ),
        (
            "duplicate grant_type",
            form,
            "grant_type=client_credentials&grant_type=client_credentials".into(),
            400,
        ),
        (
            "unknown grant type",
            form,
            "grant_type=password&username=a&password=b".into(),
            400,
        ),
        (
            "invalid UTF-8",
            form,
            "grant_type=client_credentials&scope=%FF%FE".into(),
            400,
        ),
    ];
    for (what, content_type, body, expected) in cases {
        let (status, text) = http::post_raw(
            &url,
            &[&format!("Content-Type: {content_type}")],
            (&id, &new_secret),
            body.as_bytes(),
        )
        .await;
        assert_eq!(status, expected, "{what}: {text}");
        let error: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let code = if what == "unknown grant type" {
            "unsupported_grant_type"
        } else {
            "invalid_request"
        };
        assert_eq!(error["error"], code, "{what}: an OAuth error: {text}");
        bodies.push((what.into(), text));
    }

    // 11. A flood of wrong secrets for one client: throttled; other clients are not.
    let mut throttled = None;
    for i in 0..30 {
        let (status, body) = http::token(&op.url(), &id, &format!("m2msec_wrong{i}"), &[]).await;
        bodies.push(("wrong secret".into(), body.to_string()));
        if status == 429 {
            throttled = Some(body);
            break;
        }
        assert_eq!(status, 401, "{body}");
    }
    assert!(
        throttled.is_some(),
        "30 wrong secrets in a row are throttled"
    );
    apply_org(
        &client,
        &globex,
        json!({"code": globex_code, "namespaces": [b.name]}),
    )
    .await;
    wait_for(
        "another client unaffected",
        Duration::from_secs(10),
        || async {
            match http::token(&op.url(), &other_id, &other_secret, &[]).await {
                (200, _) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    // Nothing leaked: not in any error body, status, Event or the operator's log.
    for (what, body) in &bodies {
        sensitive.assert_absent(what, body);
    }
    for (ns, app) in [
        (&a.name, "agent"),
        (&b.name, "other"),
        (&b.name, "intruder"),
        (&a.name, "greedy"),
    ] {
        let status = serde_json::to_string(&get_app(&client, ns, app).await.status).unwrap();
        sensitive.assert_absent(&format!("status of {app}"), &status);
        let events = event_messages(&client, ns, app).await.join("\n");
        sensitive.assert_absent(&format!("Events of {app}"), &events);
    }
    sensitive.assert_absent("the operator's log", &op.log_text());

    delete_org(&client, &acme).await;
    delete_org(&client, &globex).await;
    a.delete().await;
    b.delete().await;
}
