//! Prometheus metrics, rendered in the text exposition format at `/metrics`.

use crate::store::BlockKey;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS_S: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Histogram {
    buckets: [u64; 10],
    count: u64,
    sum: f64,
}

/// Every counter of the server.
#[derive(Default)]
pub struct Metrics {
    batches: Mutex<BTreeMap<u16, u64>>,
    applied: AtomicU64,
    already: AtomicU64,
    rejected: AtomicU64,
    retries: AtomicU64,
    letta: Mutex<BTreeMap<(&'static str, u16), u64>>,
    letta_latency: Mutex<BTreeMap<&'static str, Histogram>>,
    waiting: Mutex<BTreeMap<BlockKey, i64>>,
    swept_ok: AtomicU64,
    swept_failed: AtomicU64,
    catch_up_ok: AtomicU64,
    catch_up_failed: AtomicU64,
    behind: AtomicU64,
    pruned: AtomicU64,
}

impl Metrics {
    /// A request answered with `status`.
    pub fn batch(&self, status: u16) {
        *self.batches.lock().unwrap().entry(status).or_default() += 1;
    }

    /// Field outcomes of one batch.
    pub fn fields(&self, applied: u64, already: u64, rejected: u64) {
        self.applied.fetch_add(applied, Ordering::Relaxed);
        self.already.fetch_add(already, Ordering::Relaxed);
        self.rejected.fetch_add(rejected, Ordering::Relaxed);
    }

    /// One Letta call (`status` 0: no answer).
    pub fn letta_call(&self, op: &'static str, status: u16, took: Duration) {
        *self.letta.lock().unwrap().entry((op, status)).or_default() += 1;
        let mut h = self.letta_latency.lock().unwrap();
        let h = h.entry(op).or_default();
        let s = took.as_secs_f64();
        for (i, b) in BUCKETS_S.iter().enumerate() {
            if s <= *b {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += s;
    }

    /// One Letta retry.
    pub fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// A request starts (+1) or stops (-1) waiting for an agent-block's write.
    pub fn waiting(&self, key: &BlockKey, delta: i64) {
        let mut w = self.waiting.lock().unwrap();
        let e = w.entry(key.clone()).or_default();
        *e += delta;
        if *e <= 0 {
            w.remove(key);
        }
    }

    /// Blocks the start-up sweep read (`ok`) or could not read (`failed`).
    pub fn swept(&self, ok: u64, failed: u64) {
        self.swept_ok.fetch_add(ok, Ordering::Relaxed);
        self.swept_failed.fetch_add(failed, Ordering::Relaxed);
    }

    /// One catch-up write of a block Letta was behind on, done or failed.
    pub fn catch_up(&self, ok: bool) {
        if ok {
            &self.catch_up_ok
        } else {
            &self.catch_up_failed
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// How many agent-blocks Letta is behind on, as last counted.
    pub fn set_behind(&self, n: u64) {
        self.behind.store(n, Ordering::Relaxed);
    }

    /// How many agent-blocks Letta was behind on at the last count.
    pub fn behind(&self) -> u64 {
        self.behind.load(Ordering::Relaxed)
    }

    /// Idempotency records pruned.
    pub fn pruned(&self, n: u64) {
        self.pruned.fetch_add(n, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        o.push_str("# TYPE npc_sync_gateway_requests_total counter\n");
        for (status, n) in self.batches.lock().unwrap().iter() {
            let _ = writeln!(
                o,
                "npc_sync_gateway_requests_total{{status=\"{status}\"}} {n}"
            );
        }
        o.push_str("# TYPE npc_sync_gateway_fields_total counter\n");
        for (outcome, n) in [
            ("applied", &self.applied),
            ("already_applied", &self.already),
            ("rejected", &self.rejected),
        ] {
            let _ = writeln!(
                o,
                "npc_sync_gateway_fields_total{{outcome=\"{outcome}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        o.push_str("# TYPE npc_sync_gateway_letta_retries_total counter\n");
        let _ = writeln!(
            o,
            "npc_sync_gateway_letta_retries_total {}",
            self.retries.load(Ordering::Relaxed)
        );
        o.push_str("# TYPE npc_sync_gateway_letta_calls_total counter\n");
        for ((op, status), n) in self.letta.lock().unwrap().iter() {
            let _ = writeln!(
                o,
                "npc_sync_gateway_letta_calls_total{{op=\"{op}\",status=\"{status}\"}} {n}"
            );
        }
        o.push_str("# TYPE npc_sync_gateway_letta_call_seconds histogram\n");
        for (op, h) in self.letta_latency.lock().unwrap().iter() {
            for (i, b) in BUCKETS_S.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "npc_sync_gateway_letta_call_seconds_bucket{{op=\"{op}\",le=\"{b}\"}} {}",
                    h.buckets[i]
                );
            }
            let _ = writeln!(
                o,
                "npc_sync_gateway_letta_call_seconds_bucket{{op=\"{op}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                o,
                "npc_sync_gateway_letta_call_seconds_sum{{op=\"{op}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                o,
                "npc_sync_gateway_letta_call_seconds_count{{op=\"{op}\"}} {}",
                h.count
            );
        }
        for (name, kind, what) in [
            (
                "npc_sync_gateway_blocks_behind",
                "gauge",
                vec![("", &self.behind)],
            ),
            (
                "npc_sync_gateway_sweep_blocks_total",
                "counter",
                vec![
                    ("{outcome=\"read\"}", &self.swept_ok),
                    ("{outcome=\"failed\"}", &self.swept_failed),
                ],
            ),
            (
                "npc_sync_gateway_catch_up_writes_total",
                "counter",
                vec![
                    ("{outcome=\"written\"}", &self.catch_up_ok),
                    ("{outcome=\"failed\"}", &self.catch_up_failed),
                ],
            ),
            (
                "npc_sync_gateway_idempotency_pruned_total",
                "counter",
                vec![("", &self.pruned)],
            ),
        ] {
            let _ = writeln!(o, "# TYPE {name} {kind}");
            for (labels, n) in what {
                let _ = writeln!(o, "{name}{labels} {}", n.load(Ordering::Relaxed));
            }
        }
        o.push_str("# TYPE npc_sync_gateway_block_queue_depth gauge\n");
        for (k, n) in self.waiting.lock().unwrap().iter() {
            let _ = writeln!(
                o,
                "npc_sync_gateway_block_queue_depth{{agent=\"{}\",block=\"{}\"}} {n}",
                escape(&k.agent),
                escape(&k.block)
            );
        }
        o
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
