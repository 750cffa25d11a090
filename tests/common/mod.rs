//! Helpers shared by the integration tests (`rules`, `regressions`, `slots`, `properties`,
//! the fuzz drivers): building queues, reading requests as text, acknowledging, polling
//! frame by frame, and a small seeded generator. Each test binary compiles this module and
//! uses a part of it, hence `dead_code` is allowed here and only here.
#![allow(dead_code)]

use npc_sync::{
    AgentId, Config, Confirmed, Queue, Request, RequestKind, RollingWindow, Seq, Value,
};

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

/// `n` agents named `npc-000`, `npc-001`, ... (zero-padded so that names sort as indices).
pub fn agents(q: &mut Queue, n: usize) -> Vec<AgentId> {
    (0..n)
        .map(|i| q.agent(&format!("npc-{i:03}")).unwrap())
        .collect()
}

/// Sets the location of every agent of `agents` to `loc` at `t`.
pub fn locate_all(q: &mut Queue, agents: &[AgentId], t: f64, loc: &str) {
    for a in agents {
        q.set_location(t, *a, loc).unwrap();
    }
}

/// The backend's report of one field it holds, as `ack` takes it.
pub fn confirmed(agent: AgentId, block: &str, field: &str, value: Value, seq: Seq) -> Confirmed {
    Confirmed {
        agent,
        block: block.into(),
        field: field.into(),
        value,
        seq,
    }
}

/// Polls at `t` and asserts that exactly one request of `kind` comes out, carrying
/// `expected` (`agent/block.field=value`, in order); returns it unreported.
pub fn poll_one(q: &mut Queue, t: f64, kind: RequestKind, expected: &[&str]) -> Request {
    let mut out = q.poll(t).unwrap();
    assert_eq!(out.len(), 1, "one request at {t}: {out:?}");
    let r = out.pop().unwrap();
    assert_eq!(r.kind, kind, "kind of the request at {t}");
    assert_eq!(values(q, &r), expected, "values of the request at {t}");
    r
}

/// [`poll_one`], then acks the request.
pub fn poll_one_acked(q: &mut Queue, t: f64, kind: RequestKind, expected: &[&str]) {
    let r = poll_one(q, t, kind, expected);
    q.ack(r.id, &[]).unwrap();
}

/// Polls at `from`, `from + step`, ... until something comes out and returns it; panics
/// past `limit` (after a failure: the retry, whenever its backoff lets it go).
pub fn poll_until_output(q: &mut Queue, from: f64, step: f64, limit: f64) -> Vec<Request> {
    let mut t = from;
    loop {
        let out = q.poll(t).unwrap();
        if !out.is_empty() {
            return out;
        }
        t += step;
        assert!(t < limit, "nothing came out between {from} and {limit}");
    }
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
