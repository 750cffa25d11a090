//! The report's input: one run's timeline, format `npc-sync-timeline/1`
//! (`docs/demo-timeline.md`). Read and checked here, once: the plots trust what passes.
//! A producer written in Rust (an end-to-end runner) can fill a [`Timeline`] and write it
//! with [`Timeline::to_json`], which checks it the same way.

use crate::error::ReportError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// The format name a timeline must carry.
pub const FORMAT: &str = "npc-sync-timeline/1";

/// One run, second by second, and every decision that proceeded.
#[derive(Debug, Deserialize, Serialize)]
pub struct Timeline {
    /// Always [`FORMAT`].
    pub format: String,
    /// What ran: `source`, `runtime`, `scenario`, `npcs`, ... (shown as given).
    pub run: Map<String, Json>,
    /// The limits the plots draw.
    pub limits: Limits,
    /// One row per second of the run, in order.
    pub seconds: Vec<Second>,
    /// Every decision that proceeded, in time order.
    pub decisions: Vec<DecisionPoint>,
    /// The run's own counters (see `docs/demo-timeline.md` for the keys the table reads).
    pub summary: Map<String, Json>,
}

/// Limits drawn on the plots.
#[derive(Debug, Deserialize, Serialize)]
pub struct Limits {
    /// HttpService's limit (500 a minute).
    pub http_per_minute: f64,
    /// The queue's budget (400 a minute by default).
    pub budget_per_minute: f64,
    /// Freshness threshold of a decision out of combat, seconds.
    pub freshness_s: f64,
    /// Freshness threshold of a decision in combat, seconds.
    pub combat_freshness_s: f64,
}

/// One second of the run.
#[derive(Debug, Deserialize, Serialize)]
pub struct Second {
    /// Start of the second, seconds from the run's start.
    pub t: f64,
    /// Requests the naive integration would have sent in it (one per change, per message).
    pub naive: f64,
    /// Requests npc-sync emitted in it.
    pub requests: f64,
    /// HTTP calls those requests cost (what the budget counts).
    pub calls: f64,
    /// Fields waiting to be sent at its end.
    pub queue_depth: f64,
    /// Requests in flight at its end.
    #[serde(default)]
    pub in_flight: f64,
    /// Mean wall-clock milliseconds per frame in it.
    pub frame_ms: f64,
    /// The slowest frame in it, milliseconds.
    #[serde(default)]
    pub frame_ms_max: f64,
    /// Of `frame_ms`, the mean milliseconds of the queue's step (poll, outcomes, requests
    /// out), when the producer can time it apart from the change calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_ms: Option<f64>,
}

/// One decision that proceeded.
#[derive(Debug, Deserialize, Serialize)]
pub struct DecisionPoint {
    /// When, seconds from the run's start.
    pub t: f64,
    /// The backend's agent id.
    pub agent: String,
    /// Age of the agent's oldest change the backend did not have, seconds.
    pub staleness_s: f64,
    /// The threshold that applied.
    pub threshold_s: f64,
    /// Whether the agent was in combat.
    pub combat: bool,
}

fn check(field: String, v: f64) -> Result<(), ReportError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(ReportError::Invalid {
            field,
            why: format!("must be a finite number >= 0, got {v}"),
        })
    }
}

impl Timeline {
    /// Parses and checks a timeline; errors name the field and why.
    pub fn parse(text: &str) -> Result<Timeline, ReportError> {
        let t: Timeline = serde_json::from_str(text).map_err(|e| ReportError::Parse {
            what: "timeline".into(),
            msg: e.to_string(),
        })?;
        t.validate()?;
        Ok(t)
    }

    fn validate(&self) -> Result<(), ReportError> {
        if self.format != FORMAT {
            return Err(ReportError::Invalid {
                field: "format".into(),
                why: format!("expected \"{FORMAT}\", got \"{}\"", self.format),
            });
        }
        let l = &self.limits;
        for (k, v) in [
            ("http_per_minute", l.http_per_minute),
            ("budget_per_minute", l.budget_per_minute),
            ("freshness_s", l.freshness_s),
            ("combat_freshness_s", l.combat_freshness_s),
        ] {
            check(format!("limits.{k}"), v)?;
        }
        if self.seconds.is_empty() {
            return Err(ReportError::Invalid {
                field: "seconds".into(),
                why: "has no rows: nothing to draw".into(),
            });
        }
        let mut last = f64::NEG_INFINITY;
        for (i, s) in self.seconds.iter().enumerate() {
            for (k, v) in [
                ("t", s.t),
                ("naive", s.naive),
                ("requests", s.requests),
                ("calls", s.calls),
                ("queue_depth", s.queue_depth),
                ("in_flight", s.in_flight),
                ("frame_ms", s.frame_ms),
                ("frame_ms_max", s.frame_ms_max),
                ("step_ms", s.step_ms.unwrap_or(0.0)),
            ] {
                check(format!("seconds[{i}].{k}"), v)?;
            }
            if s.t <= last {
                return Err(ReportError::Invalid {
                    field: format!("seconds[{i}].t"),
                    why: format!("{} is not after the previous row's {last}", s.t),
                });
            }
            last = s.t;
        }
        let mut last = f64::NEG_INFINITY;
        for (i, d) in self.decisions.iter().enumerate() {
            for (k, v) in [
                ("t", d.t),
                ("staleness_s", d.staleness_s),
                ("threshold_s", d.threshold_s),
            ] {
                check(format!("decisions[{i}].{k}"), v)?;
            }
            if d.t < last {
                return Err(ReportError::Invalid {
                    field: format!("decisions[{i}].t"),
                    why: format!("{} is before the previous decision's {last}", d.t),
                });
            }
            last = d.t;
        }
        Ok(())
    }

    /// The timeline as JSON, after the same checks as [`Timeline::parse`].
    pub fn to_json(&self) -> Result<String, ReportError> {
        self.validate()?;
        serde_json::to_string(self).map_err(|e| ReportError::Parse {
            what: "timeline".into(),
            msg: e.to_string(),
        })
    }

    /// A summary counter as a number, if present.
    pub fn num(&self, key: &str) -> Option<f64> {
        self.summary.get(key).and_then(Json::as_f64)
    }
}
