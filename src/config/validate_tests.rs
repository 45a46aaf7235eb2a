use clap::Parser;

use super::*;
use crate::config::{Cli, Command};

/// The configuration `m2m-operator run <args>` parses to (defaults for the rest).
fn config(args: &[&str]) -> RunConfig {
    let mut argv = vec![
        "m2m-operator",
        "run",
        "--issuer",
        "https://auth.example.com",
    ];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Run(config) => *config,
        Command::Crd { .. } => unreachable!(),
    }
}

fn problems(args: &[&str]) -> Vec<String> {
    config(args)
        .problems()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn refused(args: &[&str], flag: &str) -> String {
    let found = problems(args);
    assert_eq!(found.len(), 1, "{args:?}: {found:#?}");
    assert!(found[0].contains(flag), "{}", found[0]);
    found[0].clone()
}

#[test]
fn the_defaults_and_the_charts_ci_values_are_accepted() {
    assert_eq!(problems(&[]), Vec::<String>::new());
    let ci = [
        "--lease-duration=20s",
        "--lease-renew-before=7s",
        "--resync=30m",
        "--signing-key-rotation=168h",
        "--signing-key-publish-ahead=2h",
        "--signing-key-retention=24h10m",
        "--argon2-workers=2",
        "--argon2-max-in-flight=32",
        "--max-failures-per-client=5",
        "--failure-window=2m",
        "--request-timeout=5s",
        "--shutdown-delay=0s",
    ];
    assert_eq!(problems(&ci), Vec::<String>::new());
}

#[test]
fn a_key_published_for_less_than_the_jwks_cache_age_is_refused() {
    let message = refused(
        &[
            "--signing-key-publish-ahead=5m",
            "--signing-key-rotation=1h",
        ],
        "--signing-key-publish-ahead",
    );
    assert!(
        message.contains("is 5m") && message.contains("max-age"),
        "{message}"
    );
    assert!(
        problems(&["--signing-key-publish-ahead=5m1s"]).is_empty(),
        "more than the max-age is enough"
    );
}

#[test]
fn a_retention_shorter_than_the_longest_token_plus_skew_is_refused() {
    let message = refused(&["--signing-key-retention=24h"], "--signing-key-retention");
    assert!(
        message.contains("24h1m") && message.contains("M2M_SIGNING_KEY_RETENTION"),
        "{message}"
    );
    refused(&["--signing-key-retention=1h"], "--signing-key-retention");
    assert!(problems(&["--signing-key-retention=24h1m"]).is_empty());
}

#[test]
fn a_rotation_shorter_than_the_publish_ahead_is_refused() {
    refused(&["--signing-key-rotation=30m"], "--signing-key-rotation");
    refused(&["--signing-key-rotation=0s"], "--signing-key-rotation");
}

#[test]
fn a_lease_renewed_at_or_after_its_end_is_refused() {
    for args in [
        ["--lease-duration=15s", "--lease-renew-before=15s"],
        ["--lease-duration=10s", "--lease-renew-before=20s"],
        ["--lease-duration=15s", "--lease-renew-before=0s"],
    ] {
        refused(&args, "--lease-renew-before");
    }
    let found = problems(&["--lease-duration=1s", "--lease-renew-before=500ms"]);
    assert!(
        found.iter().any(|p| p.contains("--lease-duration")),
        "{found:?}"
    );
}

#[test]
fn zero_counts_and_durations_are_refused() {
    for (arg, flag) in [
        ("--argon2-workers=0", "--argon2-workers"),
        ("--argon2-max-in-flight=0", "--argon2-max-in-flight"),
        ("--max-failures-per-client=0", "--max-failures-per-client"),
        ("--max-failures-per-source=0", "--max-failures-per-source"),
        ("--max-concurrent-requests=0", "--max-concurrent-requests"),
        ("--failure-window=0s", "--failure-window"),
        ("--request-timeout=0s", "--request-timeout"),
        ("--resync=0s", "--resync"),
    ] {
        refused(&[arg], flag);
    }
}

#[test]
fn a_resync_beyond_a_year_is_refused_and_a_year_is_accepted() {
    // kube's queue takes at most ~2 years; a longer resync would panic the controllers.
    let message = refused(&["--resync=8761h"], "--resync");
    assert!(message.contains("365 days"), "{message}");
    assert_eq!(problems(&["--resync=8760h"]), Vec::<String>::new());
}

#[test]
fn an_issuer_that_is_no_url_and_a_shared_listener_address_are_refused() {
    let mut bad = config(&[]);
    bad.issuer = "auth.example.com".into();
    assert!(matches!(
        bad.problems().as_slice(),
        [ConfigError::Issuer { .. }]
    ));
    refused(
        &["--token-addr=0.0.0.0:9000", "--admin-addr=0.0.0.0:9000"],
        "--admin-addr",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let found = problems(&[
        "--signing-key-publish-ahead=1m",
        "--signing-key-retention=1h",
        "--request-timeout=0s",
    ]);
    assert_eq!(found.len(), 3, "{found:#?}");
}

#[test]
fn the_longest_token_lifetime_is_the_crds() {
    let crds = serde_json::to_string(&crate::crd::all()).unwrap();
    assert!(
        crds.contains(&format!(
            "duration(self) <= duration('{}')",
            text(MAX_TOKEN_LIFETIME)
        )),
        "the M2MApp CRD's tokenLifetime maximum is {}",
        text(MAX_TOKEN_LIFETIME)
    );
}

#[test]
fn durations_are_written_as_the_flags_spell_them() {
    assert_eq!(text(Duration::from_secs(86_460)).to_string(), "24h1m");
    assert_eq!(text(Duration::from_secs(301)).to_string(), "5m1s");
    assert_eq!(text(Duration::from_millis(1500)).to_string(), "1.500s");
    assert_eq!(text(Duration::from_millis(500)).to_string(), "500ms");
    assert_eq!(text(Duration::ZERO).to_string(), "0s");
}

#[test]
fn unsafe_key_timings_waive_only_the_key_timings() {
    let args = [
        "--unsafe-key-timings=true",
        "--signing-key-publish-ahead=2s",
        "--signing-key-retention=1h",
        "--signing-key-rotation=1s",
    ];
    assert_eq!(problems(&args), Vec::<String>::new());
    assert_eq!(config(&args).waived().len(), 3);
    let mut with_zero = args.to_vec();
    with_zero.push("--request-timeout=0s");
    refused(&with_zero, "--request-timeout");
    assert!(config(&[]).waived().is_empty());
}
