//! What the queue measured: counts, queue depth, staleness at decisions, critical latency.

use crate::stats::Histogram;

/// A latency or staleness distribution, in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Median (to 10 ms, never under-reported).
    pub p50: f64,
    /// 99th percentile (to 10 ms, never under-reported).
    pub p99: f64,
    /// Exact maximum.
    pub max: f64,
}

impl LatencySummary {
    pub(crate) fn of(h: &Histogram) -> Self {
        LatencySummary {
            count: h.count(),
            p50: h.percentile(0.5),
            p99: h.percentile(0.99),
            max: h.max(),
        }
    }
}

/// A snapshot of the queue's counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// Requests emitted, by kind.
    pub requests_batch: u64,
    /// Urgent requests emitted.
    pub requests_urgent: u64,
    /// Inference requests emitted.
    pub requests_inference: u64,
    /// HTTP calls those requests cost.
    pub calls: u64,
    /// Calls in the last 60 s.
    pub calls_last_minute: u32,
    /// Changes reported by game code.
    pub changes_in: u64,
    /// Field values sent (retries count again).
    pub changes_sent: u64,
    /// Changes that never needed a send of their own: superseded by a newer value before
    /// being sent, or equal to what the backend already has.
    pub coalesced: u64,
    /// Fields waiting to be sent.
    pub queue_depth: u64,
    /// Requests in flight.
    pub in_flight: u64,
    /// Requests reported failed.
    pub failures: u64,
    /// Decisions answered fresh at once.
    pub decisions_fresh: u64,
    /// Decisions that needed a sync first.
    pub decisions_synced: u64,
    /// Staleness when decisions proceeded.
    pub staleness: LatencySummary,
    /// Staleness when decisions in combat proceeded.
    pub staleness_combat: LatencySummary,
    /// From a critical change to the emission of the attempt that was acknowledged: a
    /// change that had to be retried counts its retries.
    pub critical_latency: LatencySummary,
    /// Chat messages received.
    pub chat_messages: u64,
    /// Agents removed.
    pub agents_removed: u64,
}

pub(crate) struct Recorder {
    pub(crate) m: Metrics,
    pub(crate) staleness: Histogram,
    pub(crate) staleness_combat: Histogram,
    pub(crate) critical_latency: Histogram,
}

impl Recorder {
    pub(crate) fn new() -> Self {
        Recorder {
            m: Metrics::default(),
            staleness: Histogram::new(),
            staleness_combat: Histogram::new(),
            critical_latency: Histogram::new(),
        }
    }

    pub(crate) fn record_staleness(&mut self, s: f64, combat: bool) {
        self.staleness.record(s);
        if combat {
            self.staleness_combat.record(s);
        }
    }

    pub(crate) fn snapshot(&self) -> Metrics {
        let mut m = self.m.clone();
        m.staleness = LatencySummary::of(&self.staleness);
        m.staleness_combat = LatencySummary::of(&self.staleness_combat);
        m.critical_latency = LatencySummary::of(&self.critical_latency);
        m
    }
}
