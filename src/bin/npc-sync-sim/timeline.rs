//! `--timeline FILE`: the run second by second and every decision, as the JSON the demo
//! report draws (`demo/`, format `npc-sync-timeline/1` in `docs/demo-timeline.md`).
//! Output only: it reads the queue's metrics and the world's tally, never changes them.

use crate::world::World;
use npc_sync::{Metrics, Queue};
use std::fmt::Write as _;
use std::time::Instant;

/// HttpService's own limit, drawn on the report.
const HTTP_PER_MINUTE: u32 = npc_sync::HTTP_SERVICE_LIMIT_PER_MINUTE;

/// One decision that proceeded: when, whose, how stale the backend's view was (judged
/// from the simulated backend's state) and the threshold it had to meet.
pub struct DecisionSample {
    pub t: f64,
    pub agent: u32,
    pub staleness_s: f64,
    pub threshold_s: f64,
    pub combat: bool,
}

struct Second {
    t: u64,
    naive: u64,
    requests: u64,
    calls: u64,
    queue_depth: u64,
    in_flight: u64,
    frame_ms: f64,
    frame_ms_max: f64,
}

/// Collects the timeline while the simulator runs.
pub struct Recorder {
    seconds: Vec<Second>,
    current: u64,
    frames: u32,
    frame_s: f64,
    frame_s_max: f64,
    naive_before: u64,
    requests_before: u64,
    calls_before: u64,
    started: Option<Instant>,
}

fn requests_of(m: &Metrics) -> u64 {
    m.requests_batch + m.requests_urgent + m.requests_inference
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            seconds: Vec::new(),
            current: 0,
            frames: 0,
            frame_s: 0.0,
            frame_s_max: 0.0,
            naive_before: 0,
            requests_before: 0,
            calls_before: 0,
            started: None,
        }
    }

    /// At the start of each frame's work.
    pub fn frame_start(&mut self) {
        self.started = Some(Instant::now());
    }

    /// At the end of each frame (`now`: its time): the frame's wall-clock time is the
    /// world's game logic, the queue's calls and the simulated backend together (the native
    /// simulator cannot separate the change calls from the game logic that makes them).
    pub fn frame_end(&mut self, q: &mut Queue, world: &World, now: f64) {
        let spent = self
            .started
            .take()
            .map_or(0.0, |s| s.elapsed().as_secs_f64());
        let second = (now + 1e-9).floor() as u64;
        if second != self.current && self.frames > 0 {
            self.close(q, world);
        }
        self.current = second;
        self.frames += 1;
        self.frame_s += spent;
        self.frame_s_max = self.frame_s_max.max(spent);
    }

    fn close(&mut self, q: &mut Queue, world: &World) {
        let m = q.metrics();
        let naive = world.tally.naive;
        let requests = requests_of(&m);
        self.seconds.push(Second {
            t: self.current,
            naive: naive - self.naive_before,
            requests: requests - self.requests_before,
            calls: m.calls - self.calls_before,
            queue_depth: m.queue_depth,
            in_flight: m.in_flight,
            frame_ms: self.frame_s * 1e3 / f64::from(self.frames),
            frame_ms_max: self.frame_s_max * 1e3,
        });
        self.naive_before = naive;
        self.requests_before = requests;
        self.calls_before = m.calls;
        self.frames = 0;
        self.frame_s = 0.0;
        self.frame_s_max = 0.0;
    }

    /// The whole timeline as JSON; `run` and `summary` are JSON objects already written.
    pub fn finish(mut self, q: &mut Queue, world: &World, run: &str, summary: &str) -> String {
        if self.frames > 0 {
            self.close(q, world);
        }
        let cfg = q.config();
        let mut s =
            String::with_capacity(64 * (self.seconds.len() + world.tally.decision_log.len()));
        let _ = write!(
            s,
            "{{\"format\":\"npc-sync-timeline/1\",\"run\":{run},\"limits\":{{\"http_per_minute\":{HTTP_PER_MINUTE},\"budget_per_minute\":{},\"freshness_s\":{},\"combat_freshness_s\":{}}},\"seconds\":[",
            cfg.budget_per_minute, cfg.freshness_s, cfg.combat_freshness_s
        );
        for (i, r) in self.seconds.iter().enumerate() {
            let _ = write!(
                s,
                "{}{{\"t\":{},\"naive\":{},\"requests\":{},\"calls\":{},\"queue_depth\":{},\"in_flight\":{},\"frame_ms\":{},\"frame_ms_max\":{}}}",
                if i > 0 { "," } else { "" },
                r.t,
                r.naive,
                r.requests,
                r.calls,
                r.queue_depth,
                r.in_flight,
                r.frame_ms,
                r.frame_ms_max
            );
        }
        s.push_str("],\"decisions\":[");
        for (i, d) in world.tally.decision_log.iter().enumerate() {
            let _ = write!(
                s,
                "{}{{\"t\":{},\"agent\":\"agent-npc-{:04}\",\"staleness_s\":{},\"threshold_s\":{},\"combat\":{}}}",
                if i > 0 { "," } else { "" },
                d.t,
                d.agent,
                d.staleness_s,
                d.threshold_s,
                d.combat
            );
        }
        let _ = write!(s, "],\"summary\":{summary}}}");
        s
    }
}
