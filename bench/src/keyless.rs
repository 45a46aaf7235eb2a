//! `m2m-bench keyless`: tokens/s of ServiceAccount-token client authentication in steady state
//! next to the shared-secret path, in the same run and the same server. Needs a control plane
//! (`hack/cluster.sh up`): the ServiceAccount token is minted with the TokenRequest API and the
//! server verifies it against that cluster's issuer and reviews it (once per
//! `--token-review-ttl`, 60 s, as in production), so the steady state is what a pod that reuses
//! its projected token for an hour sees.

use std::{path::PathBuf, sync::Arc, time::Duration};

use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::{Namespace, ServiceAccount},
};
use kube::{Api, api::PostParams};
use m2m_operator::{
    api::{AuthMethod, ClientAuthentication},
    credentials::{
        generate::{ClientSecret, client_id},
        hash,
    },
    token::{self, TokenService, authn::service_account::SaSettings, jwt::Algorithm},
};
use m2m_operator_testkit::world::{self as testing, FixtureApp};
use tokio_util::sync::CancellationToken;

use crate::{
    load::{self, Load},
    report::{date, machine, write_section},
    stats::median,
    token::{SECRET, basic_auth, config, serve_token, world},
};

async fn mint(client: &kube::Client, ns: &str, audience: &str) -> String {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let obj: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).expect("namespace");
    namespaces
        .create(&PostParams::default(), &obj)
        .await
        .expect("create namespace");
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let sa: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "agent"}})).expect("sa");
    sas.create(&PostParams::default(), &sa)
        .await
        .expect("create ServiceAccount");
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec![audience.to_owned()]),
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        }),
        ..TokenRequest::default()
    };
    sas.create_token_request("agent", &PostParams::default(), &request)
        .await
        .expect("TokenRequest")
        .status
        .and_then(|s| s.token)
        .expect("a token")
}

struct Round {
    secret: Load,
    sa: Load,
}

pub fn run(rounds: u64, seconds: u64, connections: u64, write: &PathBuf, wrk_bin: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shutdown = CancellationToken::new();
    let cfg = config();
    let ns = format!("m2m-bench-keyless-{}", std::process::id());
    let keyless_uid = testing::uid(1_000_000);
    let (addr, token, client) = runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .expect("a cluster (hack/cluster.sh up, then eval \"$(hack/cluster.sh env)\")");
        let token = mint(&client, &ns, &cfg.issuer).await;
        let phc = testing::phc(&hash::hash(&ClientSecret::new(SECRET)).expect("hash"));
        let mut w = world(100, &phc);
        w.namespace(&ns);
        w.org("org-keyless", "org_keyless", &ns, &["read", "write"], false);
        w.app_with_auth(
            &FixtureApp {
                uid: keyless_uid.clone(),
                name: "keyless".into(),
                namespace: ns.clone(),
                org: Some("org-keyless".into()),
                scopes: vec!["read".into(), "write".into()],
                audiences: vec!["https://api.example.com".into()],
                disabled: false,
                current: String::new(),
            },
            Some(ClientAuthentication {
                methods: vec![AuthMethod::ServiceAccountToken],
                service_account_names: vec!["agent".into()],
                jwks: None,
            }),
        );
        let settings = SaSettings {
            audience: cfg.issuer.clone(),
            max_lifetime: Duration::from_secs(3600),
            review_ttl: Duration::from_secs(60),
        };
        let service = Arc::new(
            TokenService::new(
                w.finish(),
                cfg.clone(),
                &mut prometheus_client::registry::Registry::default(),
            )
            .with_service_accounts(client.clone(), settings),
        );
        service.set_keys(testing::key_ring(Algorithm::ES256).expect("key"));
        let limits = token::Limits {
            max_concurrent: 1024,
            timeout: Duration::from_secs(10),
        };
        let addr = serve_token(token::router(service, &limits), shutdown.clone()).await;
        (addr, token, client)
    });
    let url = format!("http://{addr}/oauth2/token");
    let auth = basic_auth(&testing::uid(0), SECRET);
    let sa_body = format!(
        "grant_type=client_credentials&client_id={}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={token}",
        client_id(&keyless_uid)
    );
    // Warm-up: argon2id once for the secret, a TokenReview once for the ServiceAccount token.
    for (auth, body) in [(Some(auth.as_str()), None), (None, Some(sa_body.as_str()))] {
        let warm = load::wrk_post(wrk_bin, &url, 1, 1, auth, body);
        assert!(warm.ok > 0.99, "warm-up requests failed: {warm:?}");
    }
    let rounds: Vec<Round> = (0..rounds.max(1))
        .map(|_| Round {
            secret: load::wrk_post(wrk_bin, &url, seconds, connections, Some(&auth), None),
            sa: load::wrk_post(wrk_bin, &url, seconds, connections, None, Some(&sa_body)),
        })
        .collect();
    shutdown.cancel();
    runtime.block_on(async {
        let namespaces: Api<Namespace> = Api::all(client);
        let _ = namespaces.delete(&ns, &Default::default()).await;
    });
    for r in &rounds {
        for load in [r.secret, r.sa] {
            assert!(
                load.ok > 0.99,
                "requests failed during the benchmark: {load:?}"
            );
        }
    }
    let med = |f: &dyn Fn(&Round) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
    let ratio = |r: &Round| r.sa.rps / r.secret.rps;
    let each = rounds
        .iter()
        .map(|r| format!("{:.2}", ratio(r)))
        .collect::<Vec<_>>()
        .join(", ");
    let row = |name: &str, f: &dyn Fn(&Round) -> Load| {
        format!(
            "| {name} | {:.0} | {:.3} | {:.3} |",
            med(&|r| f(r).rps),
            med(&|r| f(r).p50_ms),
            med(&|r| f(r).p99_ms)
        )
    };
    let table = [
        "### Keyless: ServiceAccount-token authentication next to a shared secret\n".to_owned(),
        format!(
            "{}, {}. Command: `hack/bench.sh keyless` (a control plane from hack/cluster.sh): one token server over 101 apps, {} rounds, each a peak run with wrk (one thread) of the shared-secret client (HTTP Basic, argon2id-hashed secret, remembered) and of the keyless client (a TokenRequest ServiceAccount token, audience = the issuer, sent as client_assertion with client_id; verified against the cluster's issuer and reviewed with a TokenReview once per 60 s), back to back; {connections} connections, {seconds} s per run, the load generator and the API server on the same two cores. Figures are medians over the rounds.\n",
            date(),
            machine(),
            rounds.len()
        ),
        "| client authentication | requests/s | p50 ms | p99 ms |".into(),
        "|---|---:|---:|---:|".into(),
        row("client_secret_basic (steady state)", &|r| r.secret),
        row("ServiceAccount token (steady state)", &|r| r.sa),
        String::new(),
        "| ratio | median | each round | target |".into(),
        "|---|---:|---|---|".into(),
        format!(
            "| ServiceAccount token / shared secret | {:.2} | {each} | >= 0.8 |",
            med(&ratio)
        ),
    ]
    .join("\n");
    println!("{table}");
    write_section(write, "keyless", &table);
}
