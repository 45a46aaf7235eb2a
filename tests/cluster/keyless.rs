//! Keyless apps (`spec.clientAuthentication` without `ClientSecret`) against the real API
//! server: what the CRD refuses, what a keyless app's Secret and record hold, and the switch
//! from a shared secret to keyless and back.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    common::{self, TestNamespace, wait_for},
    crds::{app, apply, rejection},
    fixtures::*,
    http,
    operator::Operator,
};

const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

fn rsa_n(bits: usize) -> String {
    "q".repeat(bits.div_ceil(6))
}

fn keyless(methods: Value, extra: Value) -> Value {
    let mut auth = json!({"methods": methods});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        auth[k] = v;
    }
    json!({"audiences": ["api"], "clientAuthentication": auth})
}

#[tokio::test]
async fn client_authentication_is_validated_by_the_api_server() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = TestNamespace::new(&client, "m2m-keyless-crd").await;
    let n = &ns.name;
    let ec = json!({"kty": "EC", "kid": "k1", "crv": "P-256", "x": EC_X, "y": EC_Y});
    let with_key = |patch: Value| {
        let mut key = ec.clone();
        let obj = key.as_object_mut().expect("object");
        for (k, v) in patch.as_object().cloned().unwrap_or_default() {
            if v.is_null() {
                obj.remove(&k);
            } else {
                obj.insert(k, v);
            }
        }
        keyless(json!(["PrivateKeyJWT"]), json!({"jwks": {"keys": [key]}}))
    };
    let refused: Vec<(&str, Value, &str)> = vec![
        (
            "sa-no-names",
            keyless(json!(["ServiceAccountToken"]), json!({})),
            "needs at least one serviceAccountNames",
        ),
        (
            "pkjwt-no-jwks",
            keyless(json!(["PrivateKeyJWT"]), json!({})),
            "needs jwks",
        ),
        (
            "no-methods",
            keyless(json!([]), json!({})),
            "spec.clientAuthentication.methods",
        ),
        (
            "unknown-method",
            keyless(json!(["Password"]), json!({})),
            "spec.clientAuthentication.methods[0]",
        ),
        (
            "bad-sa-name",
            keyless(
                json!(["ServiceAccountToken"]),
                json!({"serviceAccountNames": ["Not_A_Name"]}),
            ),
            "spec.clientAuthentication.serviceAccountNames[0]",
        ),
        (
            "oct-key",
            with_key(json!({"kty": "oct", "k": "c2VjcmV0"})),
            "spec.clientAuthentication.jwks.keys[0].kty",
        ),
        (
            "ec-private",
            with_key(json!({"d": EC_X})),
            "publish only the public key",
        ),
        (
            "rsa-private",
            with_key(json!({"kty": "RSA", "crv": null, "x": null, "y": null,
                            "n": rsa_n(2048), "e": "AQAB", "p": "AAAA"})),
            "publish only the public key",
        ),
        (
            "ec-p384",
            with_key(json!({"crv": "P-384"})),
            "spec.clientAuthentication.jwks.keys[0].crv",
        ),
        (
            "ec-ed25519-curve",
            with_key(json!({"crv": "Ed25519"})),
            "an EC key must be crv P-256",
        ),
        (
            "rsa-1024",
            with_key(json!({"kty": "RSA", "crv": null, "x": null, "y": null,
                            "n": rsa_n(1024), "e": "AQAB"})),
            "at least 2048 bits",
        ),
        (
            "okp-x448",
            with_key(json!({"kty": "OKP", "crv": "Ed25519", "y": null, "x": "A".repeat(40)})),
            "an OKP key must be crv Ed25519",
        ),
        (
            "alg-mismatch",
            with_key(json!({"alg": "RS256"})),
            "alg must match the key",
        ),
        (
            "alg-hs256",
            with_key(json!({"alg": "HS256"})),
            "spec.clientAuthentication.jwks.keys[0].alg",
        ),
        (
            "duplicate-kid",
            keyless(
                json!(["PrivateKeyJWT"]),
                json!({"jwks": {"keys": [ec.clone(), ec.clone()]}}),
            ),
            "every kid must be unique",
        ),
    ];
    for (name, spec, expected) in refused {
        let status = rejection(apply(&client, &app(n, name, spec), false).await, name);
        assert_eq!(status.code, 422, "{name}: {status:?}");
        assert!(
            status.message.contains(expected),
            "{name}: expected {expected:?} in {:?}",
            status.message
        );
    }
    let accepted = [
        ("ec-ok", with_key(json!({"alg": "ES256", "use": "sig"}))),
        (
            "rsa-ok",
            with_key(json!({"kty": "RSA", "crv": null, "x": null, "y": null,
                            "n": rsa_n(2048), "e": "AQAB", "alg": "RS256"})),
        ),
        (
            "okp-ok",
            with_key(json!({"kty": "OKP", "crv": "Ed25519", "y": null, "alg": "EdDSA"})),
        ),
        (
            "all-methods",
            keyless(
                json!(["ClientSecret", "ServiceAccountToken", "PrivateKeyJWT"]),
                json!({"serviceAccountNames": ["agent"], "jwks": {"keys": [ec.clone()]}}),
            ),
        ),
    ];
    for (name, spec) in accepted {
        apply(&client, &app(n, name, spec), false)
            .await
            .unwrap_or_else(|e| panic!("{name}: refused: {e}"));
    }
    ns.delete().await;
}

async fn secret_data(
    client: &kube::Client,
    ns: &str,
) -> std::collections::BTreeMap<String, String> {
    data(
        &get_secret(client, ns, "agent-credentials")
            .await
            .expect("Secret"),
    )
}

#[tokio::test]
async fn a_keyless_app_gets_its_client_id_without_any_secret_or_hash() {
    let client = common::client().await;
    let op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-keyless").await;
    let spec = keyless(
        json!(["ServiceAccountToken"]),
        json!({"serviceAccountNames": ["agent"]}),
    );
    apply_app(&client, &ns.name, "agent", spec).await;
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    let d = secret_data(&client, &ns.name).await;
    let keys: Vec<&str> = d.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["audience", "client_id", "issuer", "scope", "token_url"],
        "every key but client_secret"
    );
    let app = get_app(&client, &ns.name, "agent").await;
    let status = app.status.clone().expect("status");
    assert_eq!(status.client_id.as_deref(), Some(d["client_id"].as_str()));
    let rec = record(&client, &uid(&app)).await.expect("a client record");
    assert_eq!(rec.current, None);
    assert_eq!(rec.pending, None);
    assert_eq!(rec.previous, None);
    let raw = record_secret(&client, &uid(&app))
        .await
        .expect("record Secret");
    assert!(
        !serde_json::to_string(&raw).unwrap().contains("argon2"),
        "no hash anywhere in the record"
    );
    // Whatever secret a client sends, there is none to match.
    let (code, body) = http::token(&op.url(), &d["client_id"], "m2msec_guess", &[]).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    ns.delete().await;
}

async fn wait_secret<F: Fn(&std::collections::BTreeMap<String, String>) -> bool>(
    client: &kube::Client,
    ns: &str,
    what: &str,
    check: F,
) -> std::collections::BTreeMap<String, String> {
    wait_for(what, Duration::from_secs(30), || async {
        let d = secret_data(client, ns).await;
        if check(&d) {
            Ok(d)
        } else {
            Err(format!("{:?}", d.keys().collect::<Vec<_>>()))
        }
    })
    .await
}

#[tokio::test]
async fn switching_to_keyless_retires_the_secret_after_its_grace_and_back_issues_a_fresh_one() {
    let client = common::client().await;
    let op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-keyless-switch").await;
    let rotation = json!({"gracePeriod": "8s"});
    apply_app(
        &client,
        &ns.name,
        "agent",
        json!({"audiences": ["api"], "rotation": rotation}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    let (id, old) = credentials(&client, &ns.name, "agent").await;
    assert_eq!(http::token(&op.url(), &id, &old, &[]).await.0, 200);

    let mut spec = keyless(
        json!(["ServiceAccountToken"]),
        json!({"serviceAccountNames": ["agent"]}),
    );
    spec["rotation"] = rotation.clone();
    apply_app(&client, &ns.name, "agent", spec).await;
    let d = wait_secret(&client, &ns.name, "client_secret removed", |d| {
        !d.contains_key("client_secret")
    })
    .await;
    assert_eq!(d["client_id"], id, "the client id stays");
    wait_event(&client, &ns.name, "agent", "SecretRetired").await;
    let app = get_app(&client, &ns.name, "agent").await;
    let rotation_status = app
        .status
        .and_then(|s| s.rotation)
        .expect("rotation status");
    assert_eq!(rotation_status.revision, 2);
    assert!(rotation_status.previous_secret_expires_at.is_some());
    // In its grace period the retired secret still works, then it is refused.
    assert_eq!(http::token(&op.url(), &id, &old, &[]).await.0, 200);
    wait_for(
        "the retired secret refused",
        Duration::from_secs(20),
        || async {
            match http::token(&op.url(), &id, &old, &[]).await.0 {
                401 => Ok(()),
                other => Err(other.to_string()),
            }
        },
    )
    .await;
    let rec = record(&client, &uid(&get_app(&client, &ns.name, "agent").await))
        .await
        .expect("record");
    wait_for(
        "the retired hash dropped",
        Duration::from_secs(20),
        || async {
            let rec = record(&client, &uid(&get_app(&client, &ns.name, "agent").await))
                .await
                .expect("record");
            if rec.previous.is_none() {
                Ok(())
            } else {
                Err("still there".to_owned())
            }
        },
    )
    .await;
    assert_eq!(rec.current, None);

    // Back to a shared secret: a fresh one, of a new revision.
    apply_app(
        &client,
        &ns.name,
        "agent",
        json!({"audiences": ["api"], "rotation": rotation}),
    )
    .await;
    let d = wait_secret(&client, &ns.name, "a new client_secret", |d| {
        d.contains_key("client_secret")
    })
    .await;
    let fresh = d["client_secret"].clone();
    assert_ne!(fresh, old);
    assert_eq!(d["client_id"], id);
    assert_eq!(http::token(&op.url(), &id, &fresh, &[]).await.0, 200);
    assert_eq!(http::token(&op.url(), &id, &old, &[]).await.0, 401);
    let app = get_app(&client, &ns.name, "agent").await;
    assert_eq!(
        app.status.and_then(|s| s.rotation).map(|r| r.revision),
        Some(3)
    );
    ns.delete().await;
}
