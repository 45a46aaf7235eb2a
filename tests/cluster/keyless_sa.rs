//! ServiceAccount tokens as client assertions against the real API server, with the operator
//! running as the chart's ServiceAccount (its RBAC: issuer discovery, TokenReview). Tokens are
//! minted with the TokenRequest API; the ones the API server will not mint (expired, `alg:
//! none`) are signed by hand with the cluster's own ServiceAccount key.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use k8s_openapi::api::{
    authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec},
    core::v1::{Pod, ServiceAccount},
};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use serde_json::{Value, json};

use crate::{
    common::{self, TestNamespace, wait_for},
    fixtures::*,
    http,
    operator::{ISSUER, Operator},
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const CLUSTER_ISSUER: &str = "https://kubernetes.default.svc";

pub(crate) async fn service_account(client: &Client, ns: &str, name: &str) -> ServiceAccount {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &sa)
        .await
        .expect("create ServiceAccount")
}

/// A token of `ns/name` for `audience`, optionally bound to a Pod.
pub(crate) async fn mint(
    client: &Client,
    ns: &str,
    name: &str,
    audience: &str,
    pod: Option<&Pod>,
) -> String {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec![audience.to_owned()]),
            expiration_seconds: Some(600),
            bound_object_ref: pod.map(|p| BoundObjectReference {
                kind: Some("Pod".into()),
                api_version: Some("v1".into()),
                name: p.metadata.name.clone(),
                uid: p.metadata.uid.clone(),
            }),
        }),
        ..TokenRequest::default()
    };
    let answer = api
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("TokenRequest");
    let token = answer.status.and_then(|s| s.token).expect("a token");
    common::watch(&token);
    token
}

/// A token request with `assertion` (and `client_id` if given).
pub(crate) async fn exchange(
    op: &Operator,
    assertion: &str,
    client_id: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    if let Some(id) = client_id {
        form.push(("client_id", id));
    }
    http::post_form(&format!("{}/oauth2/token", op.url()), None, &form).await
}

fn refused(what: &str, (code, body): (u16, Value)) {
    assert_eq!(
        (code, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{what}: {body}"
    );
}

/// The cluster's ServiceAccount signing key, and its kid as the API server publishes it.
async fn cluster_key(client: &Client) -> (EncodingKey, String) {
    // The plane's state folder: M2M_CLUSTER_DIR when set, else the folder of the kubeconfig
    // `hack/cluster.sh env` exports (it lives there), else hack/cluster.sh's default.
    let dir = std::env::var_os("M2M_CLUSTER_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("KUBECONFIG")
                .and_then(|k| std::path::Path::new(&k).parent().map(|p| p.to_path_buf()))
        })
        .unwrap_or_else(|| common::repo_root().join(".cluster"));
    let key_path = dir.join("pki/sa.key");
    let pem = std::fs::read(&key_path)
        .unwrap_or_else(|e| panic!("the plane's ServiceAccount key {}: {e}", key_path.display()));
    let request = ::http::Request::get("/openid/v1/jwks")
        .body(Vec::new())
        .unwrap();
    let jwks: Value = serde_json::from_str(&client.request_text(request).await.unwrap()).unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().expect("kid").to_owned();
    (EncodingKey::from_rsa_pem(&pem).expect("RSA key"), kid)
}

fn sa_claims(ns: &str, sa: &ServiceAccount, exp_in: i64) -> Value {
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let name = sa.metadata.name.clone().unwrap();
    json!({
        "iss": CLUSTER_ISSUER, "aud": [ISSUER], "sub": format!("system:serviceaccount:{ns}:{name}"),
        "iat": now - 700, "nbf": now - 700, "exp": now + exp_in,
        "kubernetes.io": {"namespace": ns,
            "serviceaccount": {"name": name, "uid": sa.metadata.uid.clone().unwrap()}},
    })
}

struct World {
    client: Client,
    op: Operator,
    ns: TestNamespace,
    org: String,
    code: String,
    sa: ServiceAccount,
    client_id: String,
}

async fn world(prefix: &str) -> World {
    let client = common::client().await;
    let op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, prefix).await;
    let org = org_name("keyless");
    let code = format!("org_{}", common::suffix());
    apply_org(
        &client,
        &org,
        json!({"code": code, "namespaces": [ns.name]}),
    )
    .await;
    let sa = service_account(&client, &ns.name, "agent").await;
    apply_app(
        &client,
        &ns.name,
        "agent",
        json!({"organizationRef": {"name": org}, "audiences": ["api"], "scopes": ["read"],
               "clientAuthentication": {"methods": ["ServiceAccountToken"],
                                        "serviceAccountNames": ["agent"]}}),
    )
    .await;
    wait_app_reason(&client, &ns.name, "agent", "True", "CredentialsIssued").await;
    let client_id = get_app(&client, &ns.name, "agent")
        .await
        .status
        .and_then(|s| s.client_id)
        .expect("client id");
    World {
        client,
        op,
        ns,
        org,
        code,
        sa,
        client_id,
    }
}

#[tokio::test]
async fn a_projected_service_account_token_gets_an_org_scoped_token_without_any_secret() {
    let w = world("m2m-sa-ok").await;
    let token = mint(&w.client, &w.ns.name, "agent", ISSUER, None).await;
    let (code, body) = exchange(&w.op, &token, None).await;
    assert_eq!(code, 200, "{body}");
    let claims = http::verify(&w.op.url(), ISSUER, body["access_token"].as_str().unwrap())
        .await
        .expect("the access token verifies");
    assert_eq!(claims["client_id"], w.client_id.as_str());
    assert_eq!(claims["sub"], w.client_id.as_str());
    assert_eq!(claims["org_code"], w.code.as_str());
    assert_eq!(claims["scope"], "read");
    // Again (remembered), and with the matching client_id.
    assert_eq!(exchange(&w.op, &token, None).await.0, 200);
    assert_eq!(exchange(&w.op, &token, Some(&w.client_id)).await.0, 200);
    let issued =
        w.op.metric(r#"m2m_tokens_issued_by_auth_method_total{method="service_account_token"}"#)
            .await;
    assert_eq!(issued, 3.0);
    let log = w.op.log_text();
    assert!(
        log.contains(r#""auth_method":"service_account_token""#),
        "audit names the method"
    );
    assert!(!log.contains(&token), "the assertion never reaches the log");
    delete_org(&w.client, &w.org).await;
    w.ns.delete().await;
}

#[tokio::test]
async fn tokens_of_other_accounts_namespaces_audiences_and_issuers_are_refused() {
    let w = world("m2m-sa-refused").await;
    let (client, ns) = (&w.client, &w.ns.name);
    service_account(client, ns, "intruder").await;
    refused(
        "another ServiceAccount",
        exchange(
            &w.op,
            &mint(client, ns, "intruder", ISSUER, None).await,
            None,
        )
        .await,
    );
    refused(
        "another ServiceAccount naming the app",
        exchange(
            &w.op,
            &mint(client, ns, "intruder", ISSUER, None).await,
            Some(&w.client_id),
        )
        .await,
    );
    let other = TestNamespace::new(client, "m2m-sa-other").await;
    service_account(client, &other.name, "agent").await;
    let foreign = mint(client, &other.name, "agent", ISSUER, None).await;
    refused(
        "same name, another namespace",
        exchange(&w.op, &foreign, None).await,
    );
    refused(
        "same name, another namespace, with client_id",
        exchange(&w.op, &foreign, Some(&w.client_id)).await,
    );
    refused(
        "audience of the API server",
        exchange(
            &w.op,
            &mint(client, ns, "agent", CLUSTER_ISSUER, None).await,
            None,
        )
        .await,
    );
    // Signed by hand with the cluster's key: expired; and as alg none.
    let (key, kid) = cluster_key(client).await;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.clone());
    let expired = jsonwebtoken::encode(&header, &sa_claims(ns, &w.sa, -120), &key).unwrap();
    common::watch(&expired);
    let (code, body) = exchange(&w.op, &expired, None).await;
    refused("expired", (code, body.clone()));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    let good = jsonwebtoken::encode(&header, &sa_claims(ns, &w.sa, 300), &key).unwrap();
    common::watch(&good);
    let parts: Vec<&str> = good.split('.').collect();
    let none = format!(
        "{}.{}.",
        base64_url(&json!({"alg": "none", "kid": kid, "typ": "JWT"}).to_string()),
        parts[1]
    );
    common::watch(&none);
    refused("alg none", exchange(&w.op, &none, None).await);
    // A signature byte changed.
    let minted = mint(client, ns, "agent", ISSUER, None).await;
    let (head, sig) = minted.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{head}.{flipped}{}", &sig[1..]);
    common::watch(&tampered);
    refused("tampered signature", exchange(&w.op, &tampered, None).await);
    // Another issuer: its own key, under its own kid and under the cluster's.
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
    let pem = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
    };
    let other_key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("PKCS#8 RSA key");
    for other_kid in ["someone-else", kid.as_str()] {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(other_kid.to_owned());
        let forged = jsonwebtoken::encode(&h, &sa_claims(ns, &w.sa, 300), &other_key).unwrap();
        common::watch(&forged);
        refused("another issuer's key", exchange(&w.op, &forged, None).await);
    }
    // After all this the real token still works (the failures were throttled per source only).
    assert_eq!(exchange(&w.op, &minted, None).await.0, 200);
    other.delete().await;
    delete_org(client, &w.org).await;
    w.ns.delete().await;
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn a_recreated_service_account_and_a_deleted_pod_take_their_tokens_with_them() {
    let w = world("m2m-sa-live").await;
    let (client, ns) = (&w.client, &w.ns.name);
    // A token of the ServiceAccount before it was deleted and created again (same name).
    let old = mint(client, ns, "agent", ISSUER, None).await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    sas.delete("agent", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for(
        "the ServiceAccount gone",
        Duration::from_secs(10),
        || async {
            match sas.get_opt("agent").await.expect("get") {
                None => Ok(()),
                Some(_) => Err("still there".to_owned()),
            }
        },
    )
    .await;
    service_account(client, ns, "agent").await;
    let (code, body) = exchange(&w.op, &old, None).await;
    refused("token of the deleted ServiceAccount", (code, body.clone()));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("did not confirm"),
        "{body}"
    );
    assert_eq!(
        exchange(&w.op, &mint(client, ns, "agent", ISSUER, None).await, None)
            .await
            .0,
        200
    );

    // A token bound to a Pod: good while it exists, refused once it is deleted.
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "worker"},
        "spec": {"serviceAccountName": "agent", "containers": [{"name": "c", "image": "example.invalid/c"}]},
    }))
    .unwrap();
    let pod = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("create Pod");
    let bound = mint(client, ns, "agent", ISSUER, Some(&pod)).await;
    assert_eq!(exchange(&w.op, &bound, None).await.0, 200);
    let unused = mint(client, ns, "agent", ISSUER, Some(&pod)).await;
    pods.delete("worker", &DeleteParams::default())
        .await
        .expect("delete Pod");
    wait_for("the Pod gone", Duration::from_secs(10), || async {
        match pods.get_opt("worker").await.expect("get") {
            None => Ok(()),
            Some(_) => Err("still there".to_owned()),
        }
    })
    .await;
    refused(
        "first use after the Pod was deleted",
        exchange(&w.op, &unused, None).await,
    );
    delete_org(client, &w.org).await;
    w.ns.delete().await;
}

#[tokio::test]
async fn suspension_disable_and_ambiguity_apply_to_service_account_tokens() {
    let w = world("m2m-sa-standing").await;
    let (client, ns) = (&w.client, &w.ns.name);
    let token = mint(client, ns, "agent", ISSUER, None).await;
    assert_eq!(exchange(&w.op, &token, None).await.0, 200);
    // A second app naming the same ServiceAccount: the client must say which.
    apply_app(
        client,
        ns,
        "second",
        json!({"organizationRef": {"name": w.org}, "audiences": ["api"],
               "clientAuthentication": {"methods": ["ClientSecret", "ServiceAccountToken"],
                                        "serviceAccountNames": ["agent"]}}),
    )
    .await;
    wait_app_reason(client, ns, "second", "True", "CredentialsIssued").await;
    let (code, body) = exchange(&w.op, &token, None).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    assert_eq!(exchange(&w.op, &token, Some(&w.client_id)).await.0, 200);

    let mut spec = json!({"organizationRef": {"name": w.org}, "audiences": ["api"], "scopes": ["read"],
        "clientAuthentication": {"methods": ["ServiceAccountToken"], "serviceAccountNames": ["agent"]}});
    spec["disabled"] = json!(true);
    apply_app(client, ns, "agent", spec.clone()).await;
    wait_for("disabled refused", Duration::from_secs(15), || async {
        match exchange(&w.op, &token, Some(&w.client_id)).await {
            (400, b) if b["error"] == "unauthorized_client" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    spec["disabled"] = json!(false);
    apply_app(client, ns, "agent", spec).await;
    apply_org(
        client,
        &w.org,
        json!({"code": w.code, "namespaces": [ns], "suspended": true}),
    )
    .await;
    wait_for("suspended refused", Duration::from_secs(15), || async {
        match exchange(&w.op, &token, Some(&w.client_id)).await {
            (400, b) if b["error"] == "unauthorized_client" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    delete_org(client, &w.org).await;
    w.ns.delete().await;
}

#[tokio::test]
async fn the_example_script_trades_a_projected_token_for_an_access_token() {
    let w = world("m2m-sa-script").await;
    let token = mint(&w.client, &w.ns.name, "agent", ISSUER, None).await;
    let dir = std::env::temp_dir().join(format!("m2m-keyless-{}", common::suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = get_secret(&w.client, &w.ns.name, "agent-credentials")
        .await
        .expect("Secret");
    for (key, value) in data(&secret) {
        std::fs::write(dir.join(key), value).unwrap();
    }
    // As mounted, but pointing at this test's operator.
    std::fs::write(
        dir.join("token_url"),
        format!("{}/oauth2/token", w.op.url()),
    )
    .unwrap();
    std::fs::write(dir.join("sa-token"), &token).unwrap();
    let script = common::repo_root().join("examples/workload/get-token-keyless.sh");
    let out = tokio::process::Command::new("sh")
        .arg(script)
        .arg("--once")
        .env("M2M_SECRET_DIR", &dir)
        .env("M2M_SA_TOKEN", dir.join("sa-token"))
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let access = String::from_utf8(out.stdout).unwrap();
    let claims = http::verify(&w.op.url(), ISSUER, access.trim())
        .await
        .expect("a valid token");
    assert_eq!(claims["org_code"], w.code.as_str());
    delete_org(&w.client, &w.org).await;
    w.ns.delete().await;
}
