//! The embedded store's idempotency records (claims, answers, pruning) and the retention
//! setting's validation.

mod support;

use npc_sync_gateway::config::Config;
use npc_sync_gateway::store::SqliteStore;
use std::collections::BTreeMap;
use support::{sqlite_url, store_checks};

fn sqlite(name: &str) -> SqliteStore {
    let url = sqlite_url(name);
    SqliteStore::open(url.strip_prefix("sqlite:").unwrap()).unwrap()
}

#[tokio::test]
async fn sqlite_claims_run_a_request_once() {
    store_checks::claims(&sqlite("claims")).await;
}

#[tokio::test]
async fn sqlite_prunes_records_older_than_the_retention() {
    store_checks::pruning(&sqlite("prune")).await;
}

#[tokio::test]
async fn sqlite_fields_and_leases() {
    store_checks::fields_and_leases(&sqlite("leases")).await;
}

fn load(extra: &[&str]) -> Result<Config, String> {
    let mut args: Vec<String> = [
        "--letta-url",
        "http://127.0.0.1:8283",
        "--token",
        support::TOKEN,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    Config::load(&args, &BTreeMap::new())
}

#[test]
fn retention_defaults_to_a_day_and_is_validated() {
    let c = load(&[]).unwrap();
    assert_eq!(c.retention, std::time::Duration::from_secs(86_400));
    for (value, says) in [
        ("10", "option `idempotency_retention_s` must be from 60"),
        (
            "soon",
            "option `idempotency_retention_s` must be a whole number",
        ),
        (
            "99999999",
            "option `idempotency_retention_s` must be from 60",
        ),
    ] {
        let e = load(&["--idempotency-retention-s", value]).unwrap_err();
        assert!(e.contains(says), "{value}: {e}");
    }
    // A record must outlive the longest attempt at a request.
    let e = load(&[
        "--idempotency-retention-s",
        "60",
        "--answer-timeout-ms",
        "60000",
    ])
    .unwrap_err();
    assert!(
        e.contains("must be longer than `answer_timeout_ms` + `letta_call_timeout_ms`"),
        "{e}"
    );
    let e = load(&["--shutdown-grace-ms", "-1"]).unwrap_err();
    assert!(e.contains("option `shutdown_grace_ms`"), "{e}");
}
