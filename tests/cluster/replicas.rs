//! What the quota and usage tests share: a token Service with ready endpoints (as Kubernetes
//! keeps for the operator's pods), three replicas dividing their quotas by it, and token
//! requests that show `Retry-After`.

use std::time::Duration;

use k8s_openapi::api::{core::v1::Service, discovery::v1::EndpointSlice};
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use serde_json::{Value, json};

use crate::{
    common::{self, wait_for},
    operator::{OPERATOR_NAMESPACE, Operator, Options},
};

/// A token request with client_secret_basic: the status, the Retry-After header, the body.
pub async fn token_with_retry_after(
    base: &str,
    id: &str,
    secret: &str,
) -> (u16, Option<u64>, Value) {
    let args = vec![
        "-s".to_owned(),
        "-w".to_owned(),
        "\n%{http_code} %header{retry-after}".to_owned(),
        "--max-time".to_owned(),
        "10".to_owned(),
        "-u".to_owned(),
        format!("{id}:{secret}"),
        "-d".to_owned(),
        "grant_type=client_credentials".to_owned(),
        format!("{base}/oauth2/token"),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(&args)
            .output()
            .expect("curl")
    })
    .await
    .expect("curl task");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let mut tail = tail.split_whitespace();
    let code = tail.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let retry_after = tail.next().and_then(|r| r.parse().ok());
    let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if code == 200 {
        if let Some(token) = body["access_token"].as_str() {
            common::watch(token);
        }
    } else {
        common::error_body(&body.to_string());
    }
    (code, retry_after, body)
}

/// A token Service with `ready` ready endpoints (there is no kubelet or endpoint controller
/// here: the EndpointSlice stands in for the one Kubernetes keeps for the operator's pods).
pub struct TokenService {
    pub name: String,
    client: kube::Client,
}

impl TokenService {
    pub async fn new(client: &kube::Client, ready: usize) -> Self {
        let name = format!("m2m-quota-{}", common::suffix());
        let services: Api<Service> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}
        }))
        .expect("service");
        services
            .create(&PostParams::default(), &service)
            .await
            .expect("create service");
        let endpoints: Vec<Value> = (0..ready)
            .map(|i| json!({
                "addresses": [format!("10.1.0.{}", i + 1)],
                "conditions": {"ready": true},
                "targetRef": {"kind": "Pod", "name": format!("{name}-{i}"), "namespace": OPERATOR_NAMESPACE}
            }))
            .chain(std::iter::once(json!({
                // A terminating replica is not one of the replicas sharing the quota.
                "addresses": ["10.1.0.99"],
                "conditions": {"ready": false, "terminating": true},
                "targetRef": {"kind": "Pod", "name": format!("{name}-old"), "namespace": OPERATOR_NAMESPACE}
            })))
            .collect();
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {
                "name": format!("{name}-abcde"),
                "labels": {
                    "kubernetes.io/service-name": name,
                    "endpointslice.kubernetes.io/managed-by": "m2m-tests"
                }
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }))
        .expect("endpoint slice");
        slices
            .create(&PostParams::default(), &slice)
            .await
            .expect("create endpoint slice");
        Self {
            name,
            client: client.clone(),
        }
    }

    pub async fn delete(self) {
        let slices: Api<EndpointSlice> = Api::namespaced(self.client.clone(), OPERATOR_NAMESPACE);
        let _ = slices
            .delete(&format!("{}-abcde", self.name), &DeleteParams::default())
            .await;
        let services: Api<Service> = Api::namespaced(self.client.clone(), OPERATOR_NAMESPACE);
        let _ = services.delete(&self.name, &DeleteParams::default()).await;
    }
}

/// Three replicas sharing one Lease and one token Service of three ready endpoints, each
/// having seen the three.
pub async fn three_replicas(client: &kube::Client, service: &TokenService) -> Vec<Operator> {
    three_replicas_reporting_every(client, service, "1s").await
}

/// The same, with this `--usage-report-interval`.
pub async fn three_replicas_reporting_every(
    client: &kube::Client,
    service: &TokenService,
    interval: &str,
) -> Vec<Operator> {
    let lease = format!("m2m-lease-{}", common::suffix());
    let mut ops = Vec::new();
    for id in ["first", "second", "third"] {
        let options = Options {
            lease_name: lease.clone(),
            identity: format!("{id}-{}", common::suffix()),
            extra_env: vec![
                ("M2M_QUOTA_SERVICE".into(), service.name.clone()),
                ("M2M_USAGE_REPORT_INTERVAL".into(), interval.into()),
            ],
            ..Options::default()
        };
        ops.push(Operator::start_with(client, options).await);
    }
    for op in &ops {
        wait_for(
            "the replica to count 3 replicas",
            Duration::from_secs(20),
            || async {
                let log = op.log_text();
                if log.contains("quota shares now divide") && log.contains("\"replicas\":3") {
                    Ok(())
                } else {
                    Err(op.log_tail())
                }
            },
        )
        .await;
    }
    ops
}

/// Waits until at least `left` remains of the current UTC minute, so one test's requests fall
/// into one quota window.
pub async fn fresh_minute(left: u64) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let into = secs % 60.0;
    if 60.0 - into < left as f64 {
        tokio::time::sleep(Duration::from_secs_f64(60.0 - into + 0.5)).await;
    }
}
