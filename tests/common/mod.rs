//! Helpers shared by the integration tests (`rules`, `regressions`, `slots`, `properties`,
//! the fuzz drivers): building queues, reading requests as text, acknowledging, polling
//! frame by frame, and a small seeded generator. Each test binary compiles this module and
//! uses a part of it, hence `dead_code` is allowed here and only here.
#![allow(dead_code)]

use npc_sync::{AgentId, Config, Queue, Request, RollingWindow, Value};

/// A queue with the default settings.
pub fn queue() -> Queue {
    Queue::new(Config::default()).unwrap()
}

/// A queue with the default settings changed by `f`.
pub fn queue_with(f: impl FnOnce(&mut Config)) -> Queue {
    let mut c = Config::default();
    f(&mut c);
    Queue::new(c).unwrap()
}

/// A value as the tests write it: `3`, `gate`, `true`, `<cleared>`.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("{n}"),
        Value::Str(s) => s.clone(),
        Value::Bool(b) => format!("{b}"),
        Value::Cleared => "<cleared>".to_string(),
    }
}

/// `agent/block.field` of every change of a request, in order.
pub fn fields(q: &Queue, r: &Request) -> Vec<String> {
    r.changes
        .iter()
        .map(|c| {
            format!(
                "{}/{}.{}",
                q.text(c.agent_name),
                q.text(c.block),
                q.text(c.field)
            )
        })
        .collect()
}

/// `agent/block.field` of every change of several requests, in order.
pub fn all_fields(q: &Queue, rs: &[Request]) -> Vec<String> {
    rs.iter().flat_map(|r| fields(q, r)).collect()
}

/// `agent/block.field=value` of every change of a request, in order.
pub fn values(q: &Queue, r: &Request) -> Vec<String> {
    r.changes
        .iter()
        .map(|c| {
            format!(
                "{}/{}.{}={}",
                q.text(c.agent_name),
                q.text(c.block),
                q.text(c.field),
                value_text(&c.value)
            )
        })
        .collect()
}

/// `block.field=value` of every change of a request, in order (one agent's request).
pub fn block_values(q: &Queue, r: &Request) -> Vec<String> {
    r.changes
        .iter()
        .map(|c| {
            format!(
                "{}.{}={}",
                q.text(c.block),
                q.text(c.field),
                value_text(&c.value)
            )
        })
        .collect()
}

/// Acks every request.
pub fn ack_all(q: &mut Queue, rs: &[Request]) {
    for r in rs {
        q.ack(r.id, &[]).unwrap();
    }
}

/// Polls at `from`, `from + step`, ... up to `to` (inclusive) and asserts nothing comes out.
pub fn assert_quiet(q: &mut Queue, from: f64, to: f64, step: f64) {
    let mut t = from;
    while t <= to + 1e-9 {
        let out = q.poll(t).unwrap();
        assert!(out.is_empty(), "unexpected output at {t}: {out:?}");
        t += step;
    }
}

/// Polls every frame (60 a second) from `from` to `to` and returns everything emitted
/// (not reported).
pub fn poll_span(q: &mut Queue, from: f64, to: f64) -> Vec<(f64, Request)> {
    let mut out = Vec::new();
    let mut frame = (from * 60.0).round() as u64;
    loop {
        let t = frame as f64 / 60.0;
        if t > to + 1e-9 {
            break;
        }
        for r in q.poll(t).unwrap() {
            out.push((t, r));
        }
        frame += 1;
    }
    out
}

/// Sends a location to the backend and acks it, from a fresh queue's first poll at `t`.
pub fn sync_location(q: &mut Queue, a: AgentId, t: f64, loc: &str) {
    q.set_location(t, a, loc).unwrap();
    q.decide(a, t + 16.0).unwrap();
    let out = q.poll(t + 16.0).unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    ack_all(q, &out);
    assert_eq!(
        q.acked_value(a, "status", "location")
            .map(|(v, _)| v.clone()),
        Some(Value::str(loc))
    );
}

/// The most calls any rolling 60 s window holds, over `(time, calls)` in time order: the
/// core's own [`RollingWindow`] is the one statement of that rule.
pub fn max_window(sends: &[(f64, u32)]) -> u32 {
    let mut w = RollingWindow::new();
    for &(t, calls) in sends {
        w.record(t, calls);
    }
    w.peak()
}

/// A small seeded generator (64-bit LCG, high bits): the same seed gives the same run on
/// every machine, without a dependency.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next 31 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
