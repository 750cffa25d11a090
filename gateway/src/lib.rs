//! `npc-sync-gateway`: the batch endpoint server in front of Letta.
//!
//! The game POSTs the README's batch body to `/v1/batch`; each field is applied only when
//! its `seq` is higher than the stored one, every touched agent-block is rendered in the
//! core's block format ([`npc_sync::block_text`]) and written to Letta (one write per
//! agent-block in flight across all instances, newer values coalesced), and the game gets
//! its answer, with `confirmed`, once Letta holds it. State lives in SQLite (one instance)
//! or PostgreSQL (several).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod body;
pub mod config;
pub mod letta;
pub mod metrics;
pub mod rate;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod writer;

use config::{Config, Database};
use shutdown::{Phase, Shutdown};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often expired idempotency records are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Opens the store, builds the client and the router, releases this instance's leases
/// left by a crash, starts the background work (the start-up sweep, the catch-up, the
/// pruning of idempotency records) and serves on `listener` until `stop` completes. Then
/// it takes no more requests, lets those in flight finish for `shutdown_grace`, answers
/// what is still unfinished 503 with `Retry-After` ([`shutdown`]), and releases its leases.
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let shutdown = Shutdown::default();
    let metrics = Arc::new(metrics::Metrics::default());
    let store: Arc<dyn store::Store> = match &config.database {
        Database::Sqlite(path) => {
            Arc::new(store::SqliteStore::open(path).map_err(|e| e.to_string())?)
        }
        Database::Postgres(url) => Arc::new(
            store::PgStore::connect(url, config.pg_connections)
                .await
                .map_err(|e| e.to_string())?,
        ),
    };
    let letta = letta::Letta::new(
        letta::LettaConfig {
            url: config.letta_url.clone(),
            api_key: config.letta_api_key.clone(),
            concurrency: config.letta_concurrency,
            call_timeout: config.letta_call_timeout,
            min_backoff: config.min_backoff,
            max_backoff: config.max_backoff,
        },
        metrics.clone(),
        shutdown.clone(),
    )?;
    let writer = writer::Writer::new(
        store.clone(),
        letta.clone(),
        metrics.clone(),
        config.lease,
        config.instance_id.clone(),
        shutdown.clone(),
    );
    store
        .release_all(writer.lease_prefix())
        .await
        .map_err(|e| e.to_string())?;
    let state = Arc::new(server::AppState {
        rates: rate::RateLimits::new(config.rate_per_s, config.rate_burst),
        config,
        store,
        letta,
        writer,
        metrics,
        shutdown: shutdown.clone(),
    });
    let background = [
        tokio::spawn(sweep(state.clone())),
        tokio::spawn(catch_up(state.clone())),
        tokio::spawn(prune(state.clone())),
    ];
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, "npc-sync-gateway serving");
    let (grace, phases) = (state.config.shutdown_grace, shutdown.clone());
    let served = axum::serve(listener, server::router(state.clone()))
        .with_graceful_shutdown(async move {
            stop.await;
            tracing::info!(
                grace_ms = grace.as_millis() as u64,
                "shutting down: finishing requests in flight"
            );
            phases.advance(Phase::Draining);
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                if phases.phase() < Phase::Abandoning {
                    tracing::warn!("shutdown grace over: unfinished requests are answered 503");
                }
                phases.advance(Phase::Abandoning);
            });
        })
        .await
        .map_err(|e| e.to_string());
    shutdown.advance(Phase::Abandoning);
    for task in background {
        let _ = task.await;
    }
    if let Err(e) = state.store.release_all(state.writer.lease_prefix()).await {
        tracing::error!(error = %e, "releasing this instance's leases at shutdown");
    }
    tracing::info!("stopped");
    served
}

/// The start-up sweep ([`writer::Writer::sweep`]).
async fn sweep(s: Arc<server::AppState>) {
    let parallel = (s.config.letta_concurrency / 2).max(1);
    tokio::select! {
        _ = s.shutdown.reached(Phase::Draining) => {}
        _ = s.writer.sweep(parallel, s.config.letta_call_timeout) => {}
    }
}

/// The catch-up: every `catch_up_interval`, writes the blocks Letta is behind on.
async fn catch_up(s: Arc<server::AppState>) {
    loop {
        tokio::select! {
            _ = s.shutdown.reached(Phase::Draining) => return,
            _ = tokio::time::sleep(s.config.catch_up_interval) => {}
        }
        let deadline = Instant::now() + s.config.answer_timeout;
        if let Err(e) = s.writer.catch_up(deadline).await {
            tracing::warn!(error = %e, "catch-up round failed");
        }
    }
}

/// Deletes idempotency records older than `idempotency_retention_s`, once a minute.
async fn prune(s: Arc<server::AppState>) {
    loop {
        let cutoff = std::time::SystemTime::now()
            .checked_sub(s.config.retention)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        match s.store.prune(cutoff).await {
            Ok(n) => {
                s.metrics.pruned(n);
                if n > 0 {
                    tracing::info!(records = n, "idempotency records pruned");
                }
            }
            Err(e) => tracing::warn!(error = %e, "pruning idempotency records failed"),
        }
        tokio::select! {
            _ = s.shutdown.reached(Phase::Draining) => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}
