//! The frame bench's summary (`target/bench/summary.json`, written by
//! `cargo bench -p npc-sync-luau-harness --bench versus`): an optional second input, for the
//! per-frame cost by runtime.

use crate::error::ReportError;
use serde::Deserialize;

/// The format name the summary must carry.
pub const FORMAT: &str = "npc-sync-bench-summary/1";

/// The parts of the summary the report draws.
#[derive(Debug, Deserialize)]
pub struct BenchSummary {
    /// Always [`FORMAT`].
    pub format: String,
    /// One row per runtime, queue and NPC count.
    pub frame_cost: Vec<FrameCost>,
    /// ModuleScript over hand-written, per runtime and NPC count.
    #[serde(default)]
    pub ratios: Vec<Ratio>,
}

/// Mean cost of a frame of the bench's workload.
#[derive(Debug, Deserialize)]
pub struct FrameCost {
    /// `luau-interp`, `luau-native`, `node` or `native`.
    pub runtime: String,
    /// `npcsync` or `hand` (the hand-written Luau queue).
    pub queue: String,
    /// NPCs in the workload.
    pub npcs: u32,
    /// Milliseconds per frame.
    pub ms: f64,
    /// `ms` / 16.7.
    pub share: f64,
}

/// ModuleScript / hand-written.
#[derive(Debug, Deserialize)]
pub struct Ratio {
    /// `luau-interp` or `luau-native`.
    pub runtime: String,
    /// NPCs in the workload.
    pub npcs: u32,
    /// The ratio of the `ms` figures.
    pub modulescript_over_hand: f64,
}

impl BenchSummary {
    /// Parses and checks a summary; errors name the field and why.
    pub fn parse(text: &str) -> Result<BenchSummary, ReportError> {
        let s: BenchSummary = serde_json::from_str(text).map_err(|e| ReportError::Parse {
            what: "bench summary".into(),
            msg: e.to_string(),
        })?;
        if s.format != FORMAT {
            return Err(ReportError::Invalid {
                field: "format".into(),
                why: format!("expected \"{FORMAT}\", got \"{}\"", s.format),
            });
        }
        for (i, r) in s.frame_cost.iter().enumerate() {
            if !(r.ms.is_finite() && r.ms >= 0.0) {
                return Err(ReportError::Invalid {
                    field: format!("frame_cost[{i}].ms"),
                    why: format!("must be a finite number >= 0, got {}", r.ms),
                });
            }
        }
        Ok(s)
    }

    /// A row's label: `luau-native npc-sync 1000`.
    pub fn label(r: &FrameCost) -> String {
        let q = if r.queue == "hand" {
            "hand-written"
        } else {
            "npc-sync"
        };
        format!("{} {q} {}", r.runtime, r.npcs)
    }
}
