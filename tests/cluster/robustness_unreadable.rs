//! An M2MApp that stops deserialising as the operator's types (issue 15 item 8) fails closed:
//! its tokens are refused, the operator shows it (`m2m_unreadable_objects`), its client record
//! is kept (also by a new operator's first sweep), and once it is readable again its secret
//! works again.
//!
//! A real API server only stores what the CRD's structural schema allows, so the test makes a
//! version skew: it applies a copy of the M2MApp CRD in which `spec.audiences` is a string,
//! writes the app with a string there, and restores the checked-in CRD (also when the test
//! fails, before the panic goes on, so the later tests of the run see the real schema).

use std::{panic::AssertUnwindSafe, time::Duration};

use futures::FutureExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
};
use m2m_operator::api::M2MApp;
use m2m_operator_testkit::install;
use serde_json::{Value, json};

use crate::{
    common::{self, TEST_MANAGER, TestNamespace, wait_for},
    fixtures::*,
    http,
    operator::Operator,
};

const UNREADABLE_APPS: &str = "m2m_unreadable_objects{kind=\"M2MApp\"}";

/// The checked-in M2MApp CRD, with `spec.audiences` a string (`loose`) or as it is.
fn m2mapp_crd(loose: bool) -> Value {
    let crd = install::checked_in_crds()
        .into_iter()
        .find(|c| c.name_any() == "m2mapps.m2m.dev")
        .expect("the M2MApp CRD");
    let mut value = serde_json::to_value(crd).expect("CRD as JSON");
    if loose {
        value["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["audiences"] = json!({"type": "string"});
    }
    value
}

/// M2MApps as untyped objects: the loose ones do not deserialise as [`M2MApp`].
fn untyped(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<M2MApp>(&()))
}

/// Waits until the API server takes (`loose`) or refuses a string in `spec.audiences`.
async fn wait_schema(client: &Client, ns: &str, loose: bool) {
    let apps = untyped(client, ns);
    let probe = json!({"apiVersion": "m2m.dev/v1alpha1", "kind": "M2MApp",
        "metadata": {"name": "probe", "namespace": ns}, "spec": {"audiences": "api"}});
    let mut params = PatchParams::apply(TEST_MANAGER).force();
    params.dry_run = true;
    wait_for(
        "the M2MApp schema to change",
        Duration::from_secs(30),
        || async {
            match apps.patch("probe", &params, &Patch::Apply(&probe)).await {
                Ok(_) if loose => Ok(()),
                Err(_) if !loose => Ok(()),
                other => Err(format!("{:?}", other.map(|_| "accepted"))),
            }
        },
    )
    .await;
}

async fn set_audiences(client: &Client, ns: &str, name: &str, audiences: Value) {
    let apps = untyped(client, ns);
    apps.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"audiences": audiences}})),
    )
    .await
    .unwrap_or_else(|e| panic!("setting spec.audiences of {ns}/{name}: {e}"));
}

async fn wait_token_status(op: &Operator, id: &str, secret: &str, want: u16, what: &str) {
    wait_for(what, Duration::from_secs(15), || async {
        match http::token(&op.url(), id, secret, &[]).await {
            (status, _) if status == want => Ok(()),
            // The error, never a token.
            (status, body) => Err(format!("{status} {}", body["error"])),
        }
    })
    .await;
}

async fn wait_metric(op: &Operator, series: &str, want: f64) {
    wait_for(series, Duration::from_secs(15), || async {
        let value = op.metric(series).await;
        if value == want {
            Ok(())
        } else {
            Err(format!("{value}"))
        }
    })
    .await;
}

#[tokio::test]
async fn an_app_that_stops_deserialising_gets_no_tokens_and_keeps_its_record() {
    let client = common::client().await;
    let mut op = Operator::start(&client).await;
    let ns = TestNamespace::new(&client, "m2m-unreadable").await;
    let org = org_name("unreadable");
    apply_org(&client, &org, json!({"namespaces": [ns.name]})).await;
    let spec = json!({"organizationRef": {"name": org}, "audiences": ["api"]});
    apply_app(&client, &ns.name, "skewed", spec).await;
    let app = wait_app_reason(&client, &ns.name, "skewed", "True", "CredentialsIssued").await;
    let uid = uid(&app);
    let (id, secret) = credentials(&client, &ns.name, "skewed").await;
    wait_token_status(&op, &id, &secret, 200, "a token for the readable app").await;
    assert_eq!(op.metric(UNREADABLE_APPS).await, 0.0);

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let apply = PatchParams::apply(TEST_MANAGER).force();
    let skewed = AssertUnwindSafe(async {
        crds.patch("m2mapps.m2m.dev", &apply, &Patch::Apply(&m2mapp_crd(true)))
            .await
            .expect("applying the loose CRD");
        wait_schema(&client, &ns.name, true).await;
        set_audiences(&client, &ns.name, "skewed", json!("api")).await;

        // Fails closed: the cached readable version is gone, so the endpoint refuses.
        wait_token_status(&op, &id, &secret, 401, "the unreadable app to be refused").await;
        wait_metric(&op, UNREADABLE_APPS, 1.0).await;
        assert!(
            op.log_text()
                .contains("does not match the operator's types"),
            "a warning names the unreadable object"
        );

        // A new operator starts with the app unreadable: its first record sweep keeps the
        // record too (both collectors' paths: the change event above, the sweep here).
        op.kill();
        op = Operator::start(&client).await;
        wait_metric(&op, UNREADABLE_APPS, 1.0).await;
        assert_eq!(http::token(&op.url(), &id, &secret, &[]).await.0, 401);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            record_secret(&client, &uid).await.is_some(),
            "the client record of an unreadable app was deleted"
        );
    })
    .catch_unwind()
    .await;

    // Restore the real schema whatever happened above.
    install::crds(&client, TEST_MANAGER).await;
    wait_schema(&client, &ns.name, false).await;
    if let Err(panic) = skewed {
        std::panic::resume_unwind(panic);
    }

    // Readable again: the same secret works, since its record was kept.
    set_audiences(&client, &ns.name, "skewed", json!(["api"])).await;
    wait_token_status(&op, &id, &secret, 200, "a token once the app is readable").await;
    wait_metric(&op, UNREADABLE_APPS, 0.0).await;
    assert!(record_secret(&client, &uid).await.is_some());

    delete_org(&client, &org).await;
    ns.delete().await;
}
