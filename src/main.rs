//! The `m2m-operator` binary: parse configuration, set up logging, and run everything under one
//! shutdown signal. All logic lives in the library.

use std::{process::ExitCode, sync::Arc};

use clap::Parser;
use m2m_operator::{
    admin,
    cache::Cache,
    config::{Cli, Command, RunConfig},
    controller, crd,
    leader::{self, Fence, LeaderError},
    metrics::Metrics,
    telemetry,
    token::{self, TokenService, signing_keys::manager as key_manager},
};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// jemalloc rather than glibc malloc or mimalloc. glibc's adaptive mmap threshold kept the
/// blocks of argon2id bursts in per-thread arenas (~900 MiB resident after ~600 verifications
/// with the former 19 MiB parameters). mimalloc returned those, but a process with 10,000 apps
/// stayed at 88-103 MiB where jemalloc's is at 69 MiB: +47.9 MiB over empty caches instead of
/// +58.7-73.8 (`hack/bench.sh memory`, docs/benchmarks.md, 2026-12-03), and its empty process
/// 21 MiB instead of 29. Its freed pages are purged by a background thread after 1 s (the
/// `background_threads` feature, `dirty_decay_ms:1000` in .cargo/config.toml; jemalloc's
/// default purges only while the process allocates, after 10 s): 38.5 MiB instead of 45.3 at
/// 10,000 apps (2026-12-04). `_RJEM_MALLOC_CONF` overrides both at run time.
/// (The `system-allocator` feature leaves glibc's, for heaptrack: hack/heap-profile.sh.)
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd {
            reference: true, ..
        } => {
            print!("{}", m2m_operator::crd_reference::markdown(&crd::all()));
            ExitCode::SUCCESS
        }
        Command::Crd { out_dir, .. } => print_crds(out_dir),
        Command::Run(config) => {
            let problems = config.problems();
            if !problems.is_empty() {
                eprintln!("error: invalid configuration, not starting:");
                for problem in &problems {
                    eprintln!("  - {problem}");
                }
                return ExitCode::from(2);
            }
            let _log_writer = telemetry::init(config.log_format);
            for waived in config.waived() {
                tracing::warn!(problem = %waived, "accepted because of --unsafe-key-timings");
            }
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(*config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "m2m-operator stopped with an error");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn print_crds(out_dir: Option<std::path::PathBuf>) -> ExitCode {
    let result = match out_dir {
        None => crd::all_yaml()
            .map(|yaml| print!("{yaml}"))
            .map_err(|e| e.to_string()),
        Some(dir) => crd::all().iter().try_for_each(|c| {
            let yaml = crd::to_yaml(c).map_err(|e| e.to_string())?;
            let path = dir.join(crd::file_name(c));
            std::fs::write(&path, yaml).map_err(|e| format!("{}: {e}", path.display()))
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs everything until SIGTERM, in two stages of shutdown: `terminating` (SIGTERM) stops the
/// controllers, releases the Lease and turns readiness false; `shutdown`, `--shutdown-delay`
/// later, stops accepting token requests, finishes the ones in flight, and ends the watches and
/// the admin server.
async fn run(config: RunConfig) -> Result<(), Box<dyn std::error::Error>> {
    let (terminating, shutdown) = (CancellationToken::new(), CancellationToken::new());
    let readiness = admin::Readiness::default();
    let (caches_ready, keys_ready) = (
        readiness.register("caches"),
        readiness.register("signing-keys"),
    );
    stop_on_signal(&readiness, &terminating, &shutdown, config.shutdown_delay);
    if config.leader_election {
        // Refuse settings that cannot work before anything starts.
        leader::Timing::new(config.lease_duration, config.lease_renew_before)?;
    }
    let mut registry = Registry::with_prefix("m2m");
    let fence = fence(&config, &mut registry);
    let health = admin::Health::default();

    let client = kube::Client::try_default().await?;
    let version = client.apiserver_version().await?;
    tracing::info!(version = %version.git_version, "connected to the Kubernetes API server");

    let cache = Cache::start(&client, &config.namespace, shutdown.clone());
    let metrics = Arc::new(Metrics::register(&mut registry, cache.apps.clone()));
    cache.unreadable.register(&mut registry);
    let (service, latest_keys) = token_service(
        &config,
        &client,
        &cache,
        &mut registry,
        keys_ready,
        &shutdown,
    );
    let admin = tokio::spawn(admin::serve(
        config.admin_addr,
        admin::router(readiness, health.clone(), Arc::new(registry)),
        shutdown.clone(),
    ));
    tokio::select! {
        ready = cache.wait_until_ready() => ready?,
        () = terminating.cancelled() => {
            shutdown.cancel();
            return Ok(());
        }
    }
    caches_ready.set(true);
    tracing::info!("caches synced");
    let token_server = tokio::spawn(token::serve(
        config.token_addr,
        token::router(service.clone(), &config.request_limits()),
        config.listener_config(service.connection_metrics()),
        shutdown.clone(),
    ));

    let identity = config.identity();
    let ctx = controller::Context::new(
        fence.client(client.clone()),
        cache,
        config.controller_config(&identity),
        metrics,
    );
    // Every replica's usage report, for the leader's status (read by every replica: cheap).
    m2m_operator::usage::publish::watch(
        client.clone(),
        &config.namespace,
        ctx.usage.clone(),
        shutdown.clone(),
    );
    let ctx = Arc::new(ctx);
    let work = leader_work(
        ctx,
        fence.client(client.clone()),
        &config,
        &identity,
        latest_keys,
    );
    lead(
        &config,
        client,
        fence,
        &identity,
        &terminating,
        &health,
        work,
    )
    .await?;
    token_server.await??;
    admin.await??;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// The fence every write of the controllers and the key manager goes through: open only while
/// this replica holds the Lease (always, without leader election).
fn fence(config: &RunConfig, registry: &mut Registry) -> Fence {
    let fence = if config.leader_election {
        Fence::closed()
    } else {
        Fence::always_open()
    };
    fence.register(registry);
    fence
}

/// Runs `work` while this replica holds the Lease (always, without leader election), until
/// `terminating`. Work that ended by itself turns `/healthz` unhealthy: the kubelet restarts the
/// replica, which keeps serving tokens meanwhile.
async fn lead(
    config: &RunConfig,
    client: kube::Client,
    fence: Fence,
    identity: &str,
    terminating: &CancellationToken,
    health: &admin::Health,
    work: impl Fn(CancellationToken) -> leader::Work,
) -> Result<(), LeaderError> {
    let outcome = if config.leader_election {
        let lease = config.lease_config(identity);
        leader::run_while_leader(client, lease, fence, terminating.clone(), work).await
    } else {
        leader::run_unelected(terminating.clone(), work).await
    };
    match outcome {
        Err(LeaderError::WorkEnded(ended)) => {
            health.fail(format!("{ended}; controllers stopped, restart needed"));
            tracing::error!("controllers stopped for good; /healthz reports unhealthy");
            Ok(())
        }
        other => other,
    }
}

/// The token endpoint's state over `cache`, with the signing keys every replica watches (`ready`
/// is set once a key can sign); returns it and the latest key Secret, for the leader's manager.
fn token_service(
    config: &RunConfig,
    client: &kube::Client,
    cache: &Cache,
    registry: &mut Registry,
    ready: admin::ReadyFlag,
    shutdown: &CancellationToken,
) -> (Arc<TokenService>, KeyWatch) {
    let service = Arc::new(
        TokenService::new(cache.clone(), config.token_config(), registry)
            .with_service_accounts(client.clone(), config.service_account_settings()),
    );
    tokio::spawn(service.clone().prune_proofs(shutdown.clone()));
    token::quota::replicas::watch(
        client.clone(),
        &config.namespace,
        service.config().quota_service.clone(),
        service.quota_replicas(),
        shutdown.clone(),
    );
    tokio::spawn(m2m_operator::usage::publish::run(
        client.clone(),
        config.namespace.clone(),
        config.identity(),
        service.usage(),
        config.usage_report_interval,
        shutdown.clone(),
    ));
    let key_metrics = key_manager::KeyMetrics::register(registry);
    let latest_keys = key_manager::watch_keys(
        client.clone(),
        &config.namespace,
        service.clone(),
        key_metrics,
        shutdown.clone(),
        move || ready.set(true),
    );
    (service, latest_keys)
}

/// The latest key Secret, as the key watch saw it.
type KeyWatch = tokio::sync::watch::Receiver<Option<Arc<k8s_openapi::api::core::v1::Secret>>>;

/// On SIGTERM (or Ctrl-C): readiness false and `terminating` at once, `shutdown` after `delay`.
fn stop_on_signal(
    readiness: &admin::Readiness,
    terminating: &CancellationToken,
    shutdown: &CancellationToken,
    delay: std::time::Duration,
) {
    let serving = readiness.register("not-terminating");
    serving.set(true);
    let (terminating, shutdown) = (terminating.clone(), shutdown.clone());
    tokio::spawn(async move {
        wait_for_signal().await;
        serving.set(false);
        terminating.cancel();
        tracing::info!(
            delay_secs = delay.as_secs_f64(),
            "SIGTERM: not ready; serving tokens for the shutdown delay, then draining"
        );
        tokio::time::sleep(delay).await;
        tracing::info!("shutdown delay over: no new token requests, finishing in-flight ones");
        shutdown.cancel();
    });
}

/// What the replica runs while it leads: the controllers and the signing-key manager, both
/// writing through the fenced `client`.
fn leader_work(
    ctx: Arc<controller::Context>,
    client: kube::Client,
    config: &RunConfig,
    identity: &str,
    latest_keys: KeyWatch,
) -> impl Fn(CancellationToken) -> leader::Work {
    let (namespace, policy, instance) = (
        config.namespace.clone(),
        config.key_policy(),
        identity.to_owned(),
    );
    move |token: CancellationToken| -> leader::Work {
        let keys = key_manager::manage_keys(
            client.clone(),
            namespace.clone(),
            policy.clone(),
            instance.clone(),
            latest_keys.clone(),
            token.clone(),
        );
        let controllers = test_hook::controllers(controller::run(ctx.clone(), token));
        vec![
            ("controllers", Box::pin(controllers)),
            ("signing-key manager", Box::pin(keys)),
        ]
    }
}

/// Test-only hooks, compiled only into the `cluster-tests` build (never into a release build).
#[cfg(feature = "cluster-tests")]
mod test_hook {
    /// `M2M_TEST_PANIC_CONTROLLERS_AFTER=<duration>`: the controllers' task panics that long
    /// after it starts, so the cluster tests see what a replica does when its controllers die.
    pub async fn controllers(work: impl Future<Output = ()>) {
        let after = std::env::var("M2M_TEST_PANIC_CONTROLLERS_AFTER")
            .ok()
            .and_then(|v| m2m_operator::api::duration::parse(&v).ok());
        match after {
            None => work.await,
            Some(after) => tokio::select! {
                () = work => {}
                () = tokio::time::sleep(after) => panic!("test hook: the controllers panic"),
            },
        }
    }
}

#[cfg(not(feature = "cluster-tests"))]
mod test_hook {
    pub async fn controllers(work: impl Future<Output = ()>) {
        work.await;
    }
}

/// Returns on SIGTERM or Ctrl-C.
async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
