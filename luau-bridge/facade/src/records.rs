//! The fixed-layout output records of luau-bridge/ABI.md, written little-endian into
//! byte vectors the bridge reads with `buffer.read*`.

use alloc::vec::Vec;
use npc_sync::{Event, Metrics, Queue, Request, RequestKind, Value};

/// Bytes of the output header.
pub const HEADER_BYTES: usize = 88;
/// Bytes of one request record.
pub const REQUEST_RECORD: usize = 56;
/// Bytes of one block write record (Letta's API).
pub const BLOCK_RECORD: usize = 24;
/// Bytes of one change record.
pub const CHANGE_RECORD: usize = 48;
/// Bytes of one chat message record.
pub const MESSAGE_RECORD: usize = 24;
/// Bytes of one event record.
pub const EVENT_RECORD: usize = 32;
/// Number of f64 values in the metrics record.
pub const METRICS_COUNT: usize = 27;

/// Header offsets (ABI.md, "Output header").
pub(crate) mod at {
    pub const REQUESTS: usize = 0;
    pub const CHANGES: usize = 8;
    pub const MESSAGES: usize = 16;
    pub const EVENTS: usize = 24;
    pub const STALENESS: usize = 32;
    pub const THRESHOLD: usize = 40;
    pub const METRICS: usize = 48;
    pub const BLOCKS: usize = 56;
    /// `nsq_set`: the slot's grant (u32), the target's kind (u32) and value (f64).
    pub const ABSORB: usize = 64;
    /// After `nsq_poll`, `nsq_flush`, `nsq_ack`, `nsq_fail`, `nsq_atomic_commit`: the
    /// number of grant records (u32) and their address (u32).
    pub const GRANTS: usize = 80;
}

/// The address of bytes in linear memory (on wasm32 a pointer is the address).
pub(crate) fn addr(bytes: &[u8]) -> u32 {
    bytes.as_ptr() as usize as u32
}

pub(crate) fn put_u32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

pub(crate) fn put_f64(v: &mut Vec<u8>, x: f64) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// One fixed-layout record of `N` bytes, its fields written in order (little-endian)
/// into an array on the stack, then appended to its output array in one copy: in the
/// transpiled core a field is one store rather than a copy into a growing vector.
struct Record<const N: usize> {
    bytes: [u8; N],
    at: usize,
}

impl<const N: usize> Record<N> {
    fn new() -> Self {
        Record {
            bytes: [0; N],
            at: 0,
        }
    }

    fn put(&mut self, b: &[u8]) {
        self.bytes[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
    }

    fn u32(&mut self, x: u32) {
        self.put(&x.to_le_bytes());
    }

    fn i32(&mut self, x: i32) {
        self.put(&x.to_le_bytes());
    }

    fn f64(&mut self, x: f64) {
        self.put(&x.to_le_bytes());
    }

    /// Appends the record; its fields must fill its layout exactly.
    fn append_to(&self, out: &mut Vec<u8>) {
        debug_assert_eq!(self.at, N, "a record's fields fill its layout");
        out.extend_from_slice(&self.bytes);
    }
}

/// A little-endian u32 of an input record (the scratch area).
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A little-endian f64 of an input record.
pub(crate) fn f64_at(b: &[u8], at: usize) -> f64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    f64::from_le_bytes(x)
}

pub(crate) fn set_u32(h: &mut [u8], at: usize, x: u32) {
    h[at..at + 4].copy_from_slice(&x.to_le_bytes());
}

pub(crate) fn set_f64(h: &mut [u8], at: usize, x: f64) {
    h[at..at + 8].copy_from_slice(&x.to_le_bytes());
}

/// The arrays one poll writes. Their addresses go into the header once all are written
/// (a vector may move while it grows; text is reserved up front so its addresses, written
/// into the records, stay valid).
#[derive(Default)]
pub(crate) struct PollOut {
    pub(crate) requests: Vec<u8>,
    pub(crate) changes: Vec<u8>,
    pub(crate) messages: Vec<u8>,
    pub(crate) blocks: Vec<u8>,
    pub(crate) text: Vec<u8>,
}

fn kind_code(k: RequestKind) -> u32 {
    match k {
        RequestKind::Batch => 0,
        RequestKind::Urgent => 1,
        RequestKind::Inference => 2,
    }
}

impl PollOut {
    pub(crate) fn write(&mut self, q: &Queue, reqs: &[Request]) {
        self.requests.clear();
        self.changes.clear();
        self.messages.clear();
        self.blocks.clear();
        self.text.clear();
        let mut text_bytes = 0usize;
        let (mut all_changes, mut all_messages, mut all_blocks) = (0usize, 0usize, 0usize);
        for r in reqs {
            all_changes += r.changes.len();
            all_messages += r.messages.len();
            all_blocks += r.blocks.len();
            for c in &r.changes {
                if let Value::Str(s) = &c.value {
                    text_bytes += s.len();
                }
            }
            for m in &r.messages {
                text_bytes += m.sender.len() + m.text.len();
            }
            for b in &r.blocks {
                text_bytes += b.text.len();
            }
        }
        // Reserved once: pushing below never reallocates, so addresses taken stay valid.
        self.text.reserve(text_bytes.max(1));
        // The records' arrays too: each grows at most once per poll.
        self.requests.reserve(reqs.len() * REQUEST_RECORD);
        self.changes.reserve(all_changes * CHANGE_RECORD);
        self.messages.reserve(all_messages * MESSAGE_RECORD);
        self.blocks.reserve(all_blocks * BLOCK_RECORD);
        let (mut n_changes, mut n_messages, mut n_blocks) = (0u32, 0u32, 0u32);
        for r in reqs {
            let mut o = Record::<REQUEST_RECORD>::new();
            o.f64(r.id.0 as f64);
            o.u32(kind_code(r.kind));
            o.u32(n_changes);
            o.u32(r.changes.len() as u32);
            o.u32(n_messages);
            o.u32(r.messages.len() as u32);
            match r.inference_agent {
                Some(a) => o.i32(a.index() as i32),
                None => o.i32(-1),
            }
            o.u32(r.calls);
            o.u32(r.body_bytes);
            o.u32(r.attempt);
            match r.inference_agent.and_then(|a| q.agent_sym(a)) {
                Some(s) => o.i32(s.0 as i32),
                None => o.i32(-1),
            }
            o.u32(n_blocks);
            o.u32(r.blocks.len() as u32);
            o.append_to(&mut self.requests);
            for b in &r.blocks {
                let at = push_text(&mut self.text, b.text.as_bytes());
                let mut o = Record::<BLOCK_RECORD>::new();
                o.u32(b.agent.index());
                o.u32(b.agent_name.0);
                o.u32(b.block.0);
                o.u32(at);
                o.u32(b.text.len() as u32);
                o.u32(0);
                o.append_to(&mut self.blocks);
            }
            n_blocks += r.blocks.len() as u32;
            for c in &r.changes {
                let mut o = Record::<CHANGE_RECORD>::new();
                o.f64(c.seq.0 as f64);
                o.f64(c.group.map_or(0.0, |g| g.0 as f64));
                o.u32(c.agent.index());
                o.u32(c.agent_name.0);
                o.u32(c.block.0);
                o.u32(c.field.0);
                let (kind, len, x) = match &c.value {
                    Value::Cleared => (0, 0, 0.0),
                    Value::Number(n) => (1, 0, *n),
                    Value::Bool(b) => (2, 0, if *b { 1.0 } else { 0.0 }),
                    Value::Str(s) => {
                        let at = push_text(&mut self.text, s.as_bytes());
                        (3, s.len() as u32, at as f64)
                    }
                };
                o.u32(kind);
                o.u32(len);
                o.f64(x);
                o.append_to(&mut self.changes);
            }
            n_changes += r.changes.len() as u32;
            for m in &r.messages {
                let s = push_text(&mut self.text, m.sender.as_bytes());
                let t = push_text(&mut self.text, m.text.as_bytes());
                let mut o = Record::<MESSAGE_RECORD>::new();
                o.u32(s);
                o.u32(m.sender.len() as u32);
                o.u32(t);
                o.u32(m.text.len() as u32);
                o.f64(m.at);
                o.append_to(&mut self.messages);
            }
            n_messages += r.messages.len() as u32;
        }
    }

    pub(crate) fn fill_header(&self, h: &mut [u8], n_requests: usize) {
        set_u32(h, at::REQUESTS, n_requests as u32);
        set_u32(h, at::REQUESTS + 4, addr(&self.requests));
        set_u32(h, at::CHANGES, (self.changes.len() / CHANGE_RECORD) as u32);
        set_u32(h, at::CHANGES + 4, addr(&self.changes));
        set_u32(
            h,
            at::MESSAGES,
            (self.messages.len() / MESSAGE_RECORD) as u32,
        );
        set_u32(h, at::MESSAGES + 4, addr(&self.messages));
        set_u32(h, at::BLOCKS, (self.blocks.len() / BLOCK_RECORD) as u32);
        set_u32(h, at::BLOCKS + 4, addr(&self.blocks));
    }
}

/// Appends bytes to the reserved text area; returns their address.
fn push_text(text: &mut Vec<u8>, bytes: &[u8]) -> u32 {
    debug_assert!(text.capacity() - text.len() >= bytes.len());
    let at = addr(text) + text.len() as u32;
    text.extend_from_slice(bytes);
    at
}

/// Event records (ABI.md, "Event record").
pub(crate) fn write_events(q: &mut Queue, events: &[Event], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(events.len() * EVENT_RECORD);
    for e in events {
        let mut o = Record::<EVENT_RECORD>::new();
        match e {
            Event::BlockUnreadable {
                agent,
                block,
                lines,
            } => {
                o.u32(4);
                o.u32(agent.index());
                o.f64(lines.len() as f64);
                o.f64(lines.first().map_or(0.0, |l| l.line as f64));
                o.u32(q.agent_sym(*agent).map_or(0, |s| s.0));
                // The label was interned when the block was read: this finds it.
                o.u32(q.intern(block).map_or(0, |s| s.0));
            }
            Event::AgentRemoved {
                agent,
                pending_fields,
                chat_messages,
                ..
            } => {
                o.u32(1);
                o.u32(agent.index());
                o.f64(*pending_fields as f64);
                o.f64(*chat_messages as f64);
                o.u32(q.agent_sym(*agent).map_or(0, |s| s.0));
                o.u32(0);
            }
            Event::DependencyReleased {
                dependent,
                dependency,
            } => {
                o.u32(2);
                o.u32(dependent.agent().index());
                o.f64(dependent.seq().0 as f64);
                o.f64(dependency.seq().0 as f64);
                o.u32(dependency.agent().index());
                o.u32(0);
            }
            Event::GroupTrimmed { group, agent } => {
                o.u32(3);
                o.u32(agent.index());
                o.f64(group.0 as f64);
                o.f64(0.0);
                o.u32(0);
                o.u32(0);
            }
        }
        o.append_to(out);
    }
}

/// The metrics record (ABI.md, "Metrics record"), in that order.
pub(crate) fn write_metrics(m: &Metrics, o: &mut Vec<u8>) {
    o.clear();
    let summaries = [m.staleness, m.staleness_combat, m.critical_latency];
    let mut vals: Vec<f64> = alloc::vec![
        m.requests_batch as f64,
        m.requests_urgent as f64,
        m.requests_inference as f64,
        m.calls as f64,
        m.calls_last_minute as f64,
        m.changes_in as f64,
        m.changes_sent as f64,
        m.coalesced as f64,
        m.queue_depth as f64,
        m.in_flight as f64,
        m.failures as f64,
        m.decisions_fresh as f64,
        m.decisions_synced as f64,
    ];
    for s in summaries {
        vals.extend_from_slice(&[s.count as f64, s.p50, s.p99, s.max]);
    }
    vals.push(m.chat_messages as f64);
    vals.push(m.agents_removed as f64);
    debug_assert_eq!(vals.len(), METRICS_COUNT);
    for v in vals {
        put_f64(o, v);
    }
}
