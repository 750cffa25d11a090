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
pub mod store;
pub mod writer;

use config::{Config, Database};
use std::future::Future;
use std::sync::Arc;

/// Opens the store, builds the client and the router, releases this instance's leases
/// left by a crash, and serves on `listener` until `shutdown` completes; requests in
/// flight then finish (each within `answer_timeout`).
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
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
    )?;
    let writer = writer::Writer::new(
        store.clone(),
        letta.clone(),
        metrics.clone(),
        config.lease,
        config.instance_id.clone(),
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
    });
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, "npc-sync-gateway serving");
    axum::serve(listener, server::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| e.to_string())
}
