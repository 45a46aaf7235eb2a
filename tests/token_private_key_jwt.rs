//! `private_key_jwt` through the real router and handlers: an app whose `jwks` holds an EC
//! P-256, an Ed25519 and an RSA key gets tokens for assertions signed with each; replayed,
//! expired, wrong-audience, unknown-key, HS256 and `none` assertions are refused; and a
//! third-party client (authlib, Python) gets a token over a real socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::{
    encoding::AsDer,
    rsa::{KeyPair as RsaKeyPair, KeySize},
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair},
};
use axum::http::StatusCode;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use m2m_operator::{
    api::{AuthMethod, ClientAuthentication, Jwks},
    credentials::generate::client_id,
};
use m2m_operator_testkit::{
    token_http::{self, Fixture, ISSUER},
    world::FixtureApp,
};
use serde_json::{Value, json};

const UID: &str = "00000000-0000-4000-8000-000000000042";

pub struct Keys {
    pub ec: EncodingKey,
    pub ec_pem: String,
    pub ed: EncodingKey,
    pub rsa: EncodingKey,
    pub jwks: Value,
}

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
}

fn keys() -> Keys {
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = ec.public_key().as_ref().to_vec();
    let ec_der = ec.to_pkcs8v1().unwrap();
    let ed = Ed25519KeyPair::generate().unwrap();
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let rsa_der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa).unwrap();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(&point[1..33]), "y": b64(&point[33..65])},
        {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "alg": "EdDSA", "x": b64(ed.public_key().as_ref())},
        {"kty": "RSA", "kid": "rsa", "use": "sig",
         "n": b64(rsa.public_key().modulus().big_endian_without_leading_zero()),
         "e": b64(rsa.public_key().exponent().big_endian_without_leading_zero())},
    ]});
    Keys {
        ec: EncodingKey::from_ec_der(ec_der.as_ref()),
        ec_pem: pem(ec_der.as_ref()),
        ed: EncodingKey::from_ed_der(ed.to_pkcs8().unwrap().as_ref()),
        rsa: EncodingKey::from_rsa_pem(pem(rsa_der.as_ref()).as_bytes()).unwrap(),
        jwks,
    }
}

/// The fixture world plus an org-scoped app of tenant-a that accepts only `private_key_jwt`.
fn fixture(keys: &Keys) -> Fixture {
    fixture_with(keys, 100)
}

fn fixture_with(keys: &Keys, max_failures_per_client: u32) -> Fixture {
    let mut world = token_http::world();
    let jwks: Jwks = serde_json::from_value(keys.jwks.clone()).unwrap();
    world.app_with_auth(
        &FixtureApp {
            uid: UID.into(),
            name: "signer".into(),
            namespace: "tenant-a".into(),
            org: Some("acme".into()),
            scopes: vec!["read".into()],
            audiences: vec!["api".into()],
            disabled: false,
            current: String::new(),
        },
        Some(ClientAuthentication {
            methods: vec![AuthMethod::PrivateKeyJwt],
            service_account_names: vec![],
            jwks: Some(jwks),
        }),
    );
    Fixture::over_with(world.finish(), |c| {
        c.max_failures_per_client = max_failures_per_client;
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(jti: &str) -> Value {
    let id = client_id(UID);
    json!({"iss": id, "sub": id, "aud": format!("{ISSUER}/oauth2/token"),
           "iat": now(), "exp": now() + 120, "jti": jti})
}

fn sign(key: &EncodingKey, alg: Algorithm, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

async fn exchange(f: &Fixture, assertion: &str, client_id: Option<&str>) -> (StatusCode, Value) {
    let mut body = format!(
        "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
    );
    if let Some(id) = client_id {
        body.push_str(&format!("&client_id={id}"));
    }
    let (status, _, json) = f.post("/oauth2/token", None, &body).await;
    (status, json)
}

fn refused(what: &str, (status, body): (StatusCode, Value)) {
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn assertions_signed_with_each_key_type_get_org_scoped_tokens() {
    let k = keys();
    let f = fixture(&k);
    let id = client_id(UID);
    for (key, alg, kid) in [
        (&k.ec, Algorithm::ES256, "ec"),
        (&k.ed, Algorithm::EdDSA, "ed"),
        (&k.rsa, Algorithm::RS256, "rsa"),
    ] {
        let (status, body) = exchange(&f, &sign(key, alg, kid, &claims(kid)), None).await;
        assert_eq!(status, StatusCode::OK, "{kid}: {body}");
        let claims = token_http::verified_claims(&f, body["access_token"].as_str().unwrap()).await;
        assert_eq!(claims["client_id"], id.as_str());
        assert_eq!(claims["org_code"], "org_acme");
        assert_eq!(claims["scope"], "read");
    }
    // With the issuer as audience and the matching client_id.
    let mut c = claims("issuer-aud");
    c["aud"] = json!(ISSUER);
    let (status, _) = exchange(&f, &sign(&k.ec, Algorithm::ES256, "ec", &c), Some(&id)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn replayed_expired_misaddressed_unknown_hmac_and_none_assertions_are_refused() {
    let k = keys();
    let f = fixture(&k);
    let once = sign(&k.ec, Algorithm::ES256, "ec", &claims("once"));
    assert_eq!(exchange(&f, &once, None).await.0, StatusCode::OK);
    let (status, body) = exchange(&f, &once, None).await;
    refused("replayed", (status, body.clone()));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("used before")
    );
    let patched = |patch: Value| {
        let mut c = claims(&format!("j{}", rand::random::<u64>()));
        for (key, v) in patch.as_object().unwrap() {
            c[key] = v.clone();
        }
        sign(&k.ec, Algorithm::ES256, "ec", &c)
    };
    refused(
        "expired",
        exchange(&f, &patched(json!({"exp": now() - 120})), None).await,
    );
    refused(
        "an hour ahead",
        exchange(&f, &patched(json!({"exp": now() + 3600})), None).await,
    );
    refused(
        "wrong aud",
        exchange(
            &f,
            &patched(json!({"aud": "https://elsewhere/token"})),
            None,
        )
        .await,
    );
    refused(
        "another client's id",
        exchange(
            &f,
            &patched(json!({})),
            Some(&client_id(token_http::ACME.uid)),
        )
        .await,
    );
    refused(
        "no jti",
        exchange(&f, &patched(json!({"jti": null})), None).await,
    );
    refused(
        "unknown kid",
        exchange(
            &f,
            &sign(&k.ec, Algorithm::ES256, "nope", &claims("k")),
            None,
        )
        .await,
    );
    refused(
        "ES256 under the RSA kid",
        exchange(
            &f,
            &sign(&k.ec, Algorithm::ES256, "rsa", &claims("x")),
            None,
        )
        .await,
    );
    let hs = sign(
        &EncodingKey::from_secret(b"ec").unwrap(),
        Algorithm::HS256,
        "ec",
        &claims("hs"),
    );
    refused("HS256", exchange(&f, &hs, None).await);
    let payload = once.split('.').nth(1).unwrap();
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"ec"}"#)
    );
    refused("alg none", exchange(&f, &none, None).await);
    // An app that does not accept private_key_jwt: its client id as iss gets nothing.
    let mut c = claims("acme");
    let acme = client_id(token_http::ACME.uid);
    c["iss"] = json!(acme);
    c["sub"] = json!(acme);
    refused(
        "app without the method",
        exchange(&f, &sign(&k.ec, Algorithm::ES256, "ec", &c), None).await,
    );
    // A good assertion still works after all these failures (100 allowed per window here).
    let good = sign(&k.ed, Algorithm::EdDSA, "ed", &claims("after"));
    assert_eq!(exchange(&f, &good, None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn failed_assertions_are_throttled_like_wrong_secrets() {
    let k = keys();
    let f = fixture_with(&k, 3);
    let bad = || {
        sign(
            &k.ec,
            Algorithm::ES256,
            "nope",
            &claims(&rand::random::<u64>().to_string()),
        )
    };
    for _ in 0..3 {
        refused("unknown kid", exchange(&f, &bad(), None).await);
    }
    let (status, body) = exchange(&f, &bad(), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

/// A Python with authlib: a venv under the cache made from tests/external/requirements.txt.
fn python() -> std::path::PathBuf {
    let root = m2m_operator_testkit::install::repo_root();
    let requirements = root.join("tests/external/requirements.txt");
    let cache = std::env::var("M2M_CACHE_DIR").map_or_else(
        |_| std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/m2m-operator"),
        std::path::PathBuf::from,
    );
    let venv = cache.join("venv-external");
    let stamp = venv.join("requirements.txt");
    let want = std::fs::read(&requirements).unwrap();
    if std::fs::read(&stamp).ok().as_deref() != Some(&want[..]) {
        let base = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let run = |cmd: &mut std::process::Command| {
            let out = cmd.output().expect("run python");
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(std::process::Command::new(&base)
            .args(["-m", "venv", "--clear"])
            .arg(&venv));
        run(std::process::Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "-r"])
            .arg(&requirements));
        std::fs::write(&stamp, &want).unwrap();
    }
    venv.join("bin/python")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_gets_a_token_with_private_key_jwt() {
    let k = keys();
    let f = fixture(&k);
    let served = token_http::listen(f.service.clone(), Default::default()).await;
    let dir = std::env::temp_dir().join(format!("m2m-pkjwt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("client.pem");
    std::fs::write(&key_file, &k.ec_pem).unwrap();
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let script =
        m2m_operator_testkit::install::repo_root().join("tests/external/private_key_jwt.py");
    let url = format!("http://{}/oauth2/token", served.addr);
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args([&url, &client_id(UID)])
        .arg(&key_file)
        .args(["ec", "ES256", &format!("{ISSUER}/oauth2/token")])
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON from the script");
    assert_eq!(answer["token_type"], "Bearer", "{answer}");
    let claims = token_http::verified_claims(&f, answer["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["org_code"], "org_acme");
    assert_eq!(
        answer["second_request"], 200,
        "a second assertion (new jti) works too"
    );
    served.shutdown.cancel();
}
