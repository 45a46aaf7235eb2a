//! The `m2m-operator` binary: parse configuration, set up logging, and run everything under one
//! shutdown signal. All logic lives in the library.

use std::{process::ExitCode, sync::Arc};

use clap::Parser;
use m2m_operator::{
    admin,
    cache::Cache,
    config::{Cli, Command, RunConfig},
    controller, crd,
    credentials::secret::Endpoints,
    leader::{self, Fence, LeaderError, LeaseConfig},
    metrics::Metrics,
    telemetry,
    token::{
        self,
        keys::KeyPolicy,
        service::{TokenConfig, TokenService},
        signing,
    },
};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// mimalloc rather than glibc malloc: every argon2id check allocates and frees 19 MiB, and glibc's
/// adaptive mmap threshold then keeps those blocks in per-thread arenas, so the process grew to
/// ~900 MiB resident after verifying ~600 apps at startup (90 MiB with mimalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

async fn run(config: RunConfig) -> Result<(), Box<dyn std::error::Error>> {
    // Two stages of shutdown: `terminating` (SIGTERM) stops the controllers, releases the Lease
    // and turns readiness false; `shutdown`, `shutdown_delay` later, stops accepting token
    // requests, finishes the ones in flight, and ends the watches and the admin server.
    let terminating = CancellationToken::new();
    let shutdown = CancellationToken::new();
    let readiness = admin::Readiness::default();
    let caches_ready = readiness.register("caches");
    let keys_ready = readiness.register("signing-keys");
    let serving = readiness.register("not-terminating");
    serving.set(true);
    tokio::spawn({
        let (terminating, shutdown, delay) =
            (terminating.clone(), shutdown.clone(), config.shutdown_delay);
        async move {
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
        }
    });
    if config.leader_election {
        // Refuse settings that cannot work before anything starts.
        leader::Timing::new(config.lease_duration, config.lease_renew_before)?;
    }
    let mut registry = Registry::with_prefix("m2m");
    // Every write of the controllers and the key manager goes through this fence: allowed only
    // while this replica holds the Lease (always, without leader election).
    let fence = if config.leader_election {
        Fence::closed()
    } else {
        Fence::always_open()
    };
    fence.register(&mut registry);
    let health = admin::Health::default();

    let client = kube::Client::try_default().await?;
    let version = client.apiserver_version().await?;
    tracing::info!(version = %version.git_version, "connected to the Kubernetes API server");

    let cache = Cache::start(&client, &config.namespace, shutdown.clone());
    let metrics = Arc::new(Metrics::register(&mut registry, cache.apps.clone()));
    cache.unreadable.register(&mut registry);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let service = Arc::new(TokenService::new(
        cache.clone(),
        TokenConfig {
            operator_namespace: config.namespace.clone(),
            issuer: config.issuer.clone(),
            token_url: config.token_url(),
            argon2_workers: config.argon2_workers.unwrap_or(cores),
            argon2_max_in_flight: config.argon2_max_in_flight,
            max_failures_per_client: config.max_failures_per_client,
            max_failures_per_source: config.max_failures_per_source,
            failure_window: config.failure_window,
            trusted_proxies: token::source::TrustedProxies {
                networks: config.trusted_proxies.clone(),
                header: config.forwarded_header,
            },
        },
        &mut registry,
    ));
    tokio::spawn(service.clone().prune_proofs(shutdown.clone()));
    let key_metrics = signing::KeyMetrics::register(&mut registry);
    let latest_keys = signing::watch_keys(
        client.clone(),
        &config.namespace,
        service.clone(),
        key_metrics,
        shutdown.clone(),
        {
            let keys_ready = keys_ready.clone();
            move || keys_ready.set(true)
        },
    );
    let token_router = token::router(
        service.clone(),
        &token::Limits {
            max_concurrent: config.max_concurrent_requests,
            timeout: config.request_timeout,
        },
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
    let tls = config
        .tls_cert_file
        .clone()
        .zip(config.tls_key_file.clone())
        .map(|(cert, key)| token::TlsFiles {
            cert,
            key,
            reload_every: std::time::Duration::from_secs(10),
        });
    let listener = token::ListenerConfig {
        tls,
        limits: token::conn::ConnectionLimits {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            max_connections: config.max_connections,
        },
        metrics: service.metrics.connections.clone(),
    };
    let token_server = tokio::spawn(token::serve(
        config.token_addr,
        token_router,
        listener,
        shutdown.clone(),
    ));

    let identity = config.identity();
    let ctx = Arc::new(controller::Context::new(
        fence.client(client.clone()),
        cache,
        controller::ControllerConfig {
            operator_namespace: config.namespace.clone(),
            endpoints: Endpoints {
                issuer: config.issuer.clone(),
                token_url: config.token_url(),
            },
            resync: config.resync,
            instance: identity.clone(),
        },
        metrics,
    ));
    let key_policy = KeyPolicy {
        alg: config.signing_algorithm,
        rotate_every: config.signing_key_rotation,
        publish_ahead: config.signing_key_publish_ahead,
        keep_retired: config.signing_key_retention,
    };
    let (key_client, key_namespace, key_instance) = (
        fence.client(client.clone()),
        config.namespace.clone(),
        identity.clone(),
    );
    let work = move |token: CancellationToken| -> leader::Work {
        let keys = signing::manage_keys(
            key_client.clone(),
            key_namespace.clone(),
            key_policy.clone(),
            key_instance.clone(),
            latest_keys.clone(),
            token.clone(),
        );
        let controllers = test_hook::controllers(controller::run(ctx.clone(), token));
        vec![
            ("controllers", Box::pin(controllers)),
            ("signing-key manager", Box::pin(keys)),
        ]
    };
    let outcome = if config.leader_election {
        let lease = LeaseConfig {
            namespace: config.namespace.clone(),
            name: config.lease_name.clone(),
            identity,
            duration: config.lease_duration,
            renew_before: config.lease_renew_before,
        };
        leader::run_while_leader(client, lease, fence, terminating.clone(), work).await
    } else {
        leader::run_unelected(terminating.clone(), work).await
    };
    match outcome {
        Ok(()) => {}
        Err(LeaderError::WorkEnded(ended)) => {
            // Keep serving tokens until the kubelet restarts the process (liveness probe).
            health.fail(format!("{ended}; controllers stopped, restart needed"));
            tracing::error!("controllers stopped for good; /healthz reports unhealthy");
        }
        Err(e) => return Err(e.into()),
    }
    token_server.await??;
    admin.await??;
    tracing::info!("shut down cleanly");
    Ok(())
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
