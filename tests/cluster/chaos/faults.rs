//! Each fault alone, with half the apps and rotations of the run with every fault.

use super::{Chaos, Faults, env_count};

fn sizes() -> (usize, usize) {
    (
        env_count("M2M_CHAOS_APPS", 60).div_ceil(2),
        env_count("M2M_CHAOS_ROTATIONS", 12).div_ceil(2),
    )
}

const NONE: Faults = Faults {
    kills: 0,
    max_kills: 0,
    apiserver_restart: false,
    second_writer: false,
};

#[tokio::test]
async fn sigkills_during_issue_and_rotation_lose_nothing() {
    let (apps, rotations) = sizes();
    let faults = Faults {
        kills: 3,
        max_kills: env_count("M2M_CHAOS_KILLS", 8).max(3),
        ..NONE
    };
    let mut chaos = Chaos::start("chaos-kill", apps, rotations, faults).await;
    chaos.kill(faults).await;
    chaos.settle().await;
}

#[tokio::test]
async fn an_api_server_restart_during_issue_and_rotation_loses_nothing() {
    let (apps, rotations) = sizes();
    let mut chaos = Chaos::start("chaos-api", apps, rotations, NONE).await;
    chaos.restart_apiserver_mid_run().await;
    chaos.settle().await;
}

#[tokio::test]
async fn a_second_writer_on_apps_secrets_and_records_loses_nothing() {
    let (apps, rotations) = sizes();
    let faults = Faults {
        second_writer: true,
        ..NONE
    };
    let chaos = Chaos::start("chaos-writer", apps, rotations, faults).await;
    let writes = chaos.settle().await;
    assert!(writes > 0, "the second writer wrote");
}
