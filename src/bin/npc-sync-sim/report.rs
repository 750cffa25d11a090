//! The readable table and the one-line JSON.

use crate::backend::Backend;
use crate::world::World;
use crate::Args;
use npc_sync::Metrics;

pub struct Counts {
    pub requests: u64,
    pub calls: u64,
    pub max_per_min: u32,
    pub lost: u64,
    pub drained_after_s: Option<f64>,
}

pub struct Report {
    fields: Vec<(&'static str, Val)>,
}

enum Val {
    Str(String),
    Int(u64),
    Num(f64),
    Bool(bool),
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((s.len() as f64 * p).ceil() as usize).clamp(1, s.len()) - 1;
    s[i]
}

impl Report {
    pub fn new(args: &Args, world: &World, backend: &Backend, m: &Metrics, c: Counts) -> Report {
        let t = &world.tally;
        // The budget counts HTTP calls: with Letta's API one request is several calls.
        let reduction = if t.naive == 0 {
            0.0
        } else {
            1.0 - c.calls as f64 / t.naive as f64
        };
        let ck = &backend.checks;
        let converged = c.lost == 0 && c.drained_after_s.is_some();
        let fields = vec![
            ("scenario", Val::Str(args.scenario.clone())),
            ("npcs", Val::Int(args.npcs as u64)),
            ("seconds", Val::Num(args.seconds)),
            ("fail_rate", Val::Num(args.fail_rate)),
            ("seed", Val::Int(args.seed)),
            (
                "target",
                Val::Str(
                    match args.target {
                        npc_sync::Target::BatchEndpoint => "batch",
                        npc_sync::Target::LettaApi => "letta",
                    }
                    .into(),
                ),
            ),
            ("changes", Val::Int(t.changes)),
            ("chat_messages", Val::Int(t.chat_sent)),
            ("requests", Val::Int(c.requests)),
            ("calls", Val::Int(c.calls)),
            ("requests_naive", Val::Int(t.naive)),
            ("reduction", Val::Num(reduction)),
            ("max_requests_per_min", Val::Int(c.max_per_min as u64)),
            ("requests_batch", Val::Int(m.requests_batch)),
            ("requests_urgent", Val::Int(m.requests_urgent)),
            ("requests_inference", Val::Int(m.requests_inference)),
            ("failures", Val::Int(m.failures)),
            ("lost", Val::Int(c.lost)),
            ("stale_overwrites", Val::Int(ck.stale_overwrites)),
            ("rejected_late", Val::Int(ck.rejected_late)),
            ("split_groups", Val::Int(ck.split_groups)),
            ("groups_delivered", Val::Int(ck.groups_delivered)),
            ("dependency_violations", Val::Int(ck.dependency_violations)),
            (
                "dependencies_delivered",
                Val::Int(ck.dependencies_delivered),
            ),
            ("critical_latency_p50_s", Val::Num(m.critical_latency.p50)),
            ("critical_latency_p99_s", Val::Num(m.critical_latency.p99)),
            ("critical_latency_max_s", Val::Num(m.critical_latency.max)),
            ("decisions", Val::Int(t.decisions)),
            ("decisions_abandoned", Val::Int(t.decisions_abandoned)),
            (
                "decision_wait_p99_s",
                Val::Num(percentile(&t.decision_waits, 0.99)),
            ),
            ("decision_staleness_max_s", Val::Num(t.staleness_max)),
            (
                "decision_staleness_max_combat_s",
                Val::Num(t.staleness_max_combat),
            ),
            ("freshness_violations", Val::Int(t.freshness_violations)),
            ("queue_staleness_p99_s", Val::Num(m.staleness.p99)),
            (
                "drained_after_s",
                Val::Num(c.drained_after_s.unwrap_or(-1.0)),
            ),
            ("converged", Val::Bool(converged)),
        ];
        Report { fields }
    }

    pub fn print_table(&self) {
        println!("{:<34} {:>16}", "metric", "value");
        println!("{:-<34} {:->16}", "", "");
        for (k, v) in &self.fields {
            let s = match v {
                Val::Str(s) => s.clone(),
                Val::Int(i) => i.to_string(),
                Val::Num(n) => format!("{n:.4}"),
                Val::Bool(b) => b.to_string(),
            };
            println!("{k:<34} {s:>16}");
        }
    }

    pub fn json(&self) -> String {
        let parts: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    Val::Str(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
                    Val::Int(i) => i.to_string(),
                    Val::Num(n) if n.is_finite() => format!("{n}"),
                    Val::Num(_) => "null".into(),
                    Val::Bool(b) => b.to_string(),
                };
                format!("\"{k}\":{s}")
            })
            .collect();
        format!("{{{}}}", parts.join(","))
    }
}
