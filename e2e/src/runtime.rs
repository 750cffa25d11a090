//! What a runtime driver gets (the scenario, the target's address, timeouts) and reports
//! (whether `flushAll` finished in time).

use crate::backend::TOKEN;
use crate::check::Target;
use crate::timeline::DriverTimeline;
use serde::Deserialize;
use serde_json::{json, Value as Json};
use std::time::Duration;

/// The runtime that runs the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// pkg/roblox in the harness's Luau VM.
    Luau,
    /// pkg/node from a Node driver.
    Node,
}

impl Runtime {
    /// `luau` or `node`.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Luau => "luau",
            Runtime::Node => "node",
        }
    }

    /// Whether its driver measures a timeline (the demo's report): only the Luau driver
    /// times the game's calls and the step frame by frame.
    pub fn measures_timeline(self) -> bool {
        matches!(self, Runtime::Luau)
    }
}

/// One run's input for a driver.
pub struct RunSpec {
    /// The calls file's text.
    pub calls_text: String,
    /// Frames of play (60 a second).
    pub frames: u64,
    /// The backend kind.
    pub target: Target,
    /// The proxy's base URL.
    pub proxy: String,
    /// The HTTP client's timeout (the sender's).
    pub http_timeout: Duration,
    /// `flushAll`'s time at shutdown, simulated seconds.
    pub flush_timeout_s: f64,
    /// HTTP calls in flight at most. Large enough that every call of one request leaves in
    /// the frame the request was emitted (so the checks can tell requests apart on the
    /// Letta target, which has one call per agent-block).
    pub max_in_flight: u32,
    /// Ask the driver for the demo's measurements ([`crate::timeline::DriverTimeline`]):
    /// the Luau driver then steps the queue itself and times each frame.
    pub timeline: bool,
}

impl RunSpec {
    /// The options both drivers read: `config` is `NpcSync.new`'s config.
    pub fn options_json(&self, server_id: &str) -> String {
        let target = match self.target {
            Target::Batch => json!({
                "kind": "batch",
                "url": format!("{}/v1/batch", self.proxy),
                "headers": {
                    "Authorization": format!("Bearer {TOKEN}"),
                    "x-game-server-id": server_id,
                },
            }),
            Target::Letta => json!({
                "kind": "letta",
                "baseUrl": self.proxy,
                "apiKey": "e2e-letta-key",
            }),
        };
        json!({
            "frames": self.frames,
            "flushTimeout": self.flush_timeout_s,
            "httpTimeoutMs": self.http_timeout.as_millis() as u64,
            "timeline": self.timeline,
            "config": { "target": target, "maxInFlight": self.max_in_flight },
        })
        .to_string()
    }
}

/// What a driver reports at the end.
#[derive(Debug)]
pub struct Outcome {
    /// `flushAll` returned with nothing pending or in flight.
    pub flushed: bool,
    /// Simulated seconds `flushAll` took.
    pub flush_seconds: f64,
    /// HTTP calls the runtime made.
    pub http_calls: u64,
    /// The demo's measurements, when asked for ([`RunSpec::timeline`]).
    pub timeline: Option<DriverTimeline>,
}

impl Outcome {
    /// Reads the driver's JSON report.
    pub fn from_json(text: &str) -> Result<Outcome, String> {
        let j: Json =
            serde_json::from_str(text).map_err(|e| format!("driver report {text:?}: {e}"))?;
        Ok(Outcome {
            flushed: j["flushed"]
                .as_bool()
                .ok_or("driver report: no `flushed`")?,
            flush_seconds: j["flushSeconds"].as_f64().unwrap_or(f64::NAN),
            http_calls: j["httpCalls"].as_u64().unwrap_or(0),
            timeline: match j.get("timeline") {
                None | Some(Json::Null) => None,
                Some(t) => Some(
                    DriverTimeline::deserialize(t)
                        .map_err(|e| format!("driver report: `timeline`: {e}"))?,
                ),
            },
        })
    }
}
