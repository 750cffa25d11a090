//! The state behind the exports and every call of luau-bridge/ABI.md, as safe Rust.
//!
//! Each method returns what the export returns: a non-negative result, or `-code` with the
//! message left in [`Facade::error`]. Nothing is changed by a call that fails.

mod absorb;
mod confirm;

pub use absorb::{ABSORB_RECORD, GRANT_RECORD};
pub use confirm::CONFIRM_RECORD;

use crate::message::{describe, Msg};
use crate::records::{self, at, PollOut, HEADER_BYTES};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use npc_sync::{
    Absorbed, AgentId, Change, ChangeId, Config, ConfirmedKey, Decision, Error, Priority, Queue,
    RequestId, Seq, Slot, Sym, Target, Value,
};

/// Bytes of the scratch area: a 16 KiB string value, or a chat sender and text, fit.
pub const SCRATCH_CAP: usize = 20 * 1024;

/// Error codes of the facade itself (the core's errors map to 1 to 13, see ABI.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// A kind, priority, key or length out of range.
    BadArgument = 14,
    /// `nsq_init` not called yet, or called twice.
    NotReady = 15,
    /// Not allowed now (an atomic group is open, or none is).
    BadState = 16,
}

/// One change staged inside an open atomic group.
struct Staged {
    slot: Slot,
    value: Value,
    priority: Priority,
    deps: Vec<ChangeId>,
}

/// Everything one wasm instance holds.
pub struct Facade {
    cfg: Config,
    queue: Option<Queue>,
    scratch: Box<[u8]>,
    header: Box<[u8; HEADER_BYTES]>,
    error: Vec<u8>,
    deps: Vec<ChangeId>,
    group: Option<Vec<Staged>>,
    join_fields: Vec<(Sym, Value)>,
    /// Confirmed fields staged by `nsq_confirm_records` for the next `nsq_ack` (its
    /// capacity kept from one ack to the next).
    confirmed: Vec<ConfirmedKey>,
    /// Text staged by `nsq_stage_text` for the next `nsq_load_block`.
    staged_text: Vec<u8>,
    poll: PollOut,
    /// Grant records of the last watched call (`absorb.rs`).
    grants: Vec<u8>,
    /// `nsq_absorb`'s records of the last call, parsed (`absorb.rs`; its capacity kept).
    absorbed: Vec<Absorbed>,
    events: Vec<u8>,
    metrics: Vec<u8>,
}

impl Default for Facade {
    fn default() -> Self {
        Self::new()
    }
}

/// Priorities by their ABI number.
const PRIORITIES: [Priority; 4] = [
    Priority::Low,
    Priority::Normal,
    Priority::High,
    Priority::Critical,
];

/// The largest integer an f64 holds exactly (2^53 - 1).
const MAX_EXACT: f64 = 9007199254740991.0;

/// `nsq_poll_before_build`'s result when the poll stopped before building a request: not
/// an error (errors are -1 to -19), nothing happened.
pub const POLL_STOPPED: i32 = -1000;

/// Whether `x` is a whole number in `lo..=hi` (no `f64::fract` without std).
fn whole_in(x: f64, lo: f64, hi: f64) -> bool {
    x >= lo && x <= hi && (x as u64) as f64 == x
}

type Res<T> = Result<T, (i32, Option<Error>)>;

fn core(e: Error) -> (i32, Option<Error>) {
    (0, Some(e))
}

impl Facade {
    /// A facade with the default config and no queue yet.
    pub fn new() -> Facade {
        Facade {
            cfg: Config::default(),
            queue: None,
            scratch: alloc::vec![0u8; SCRATCH_CAP].into_boxed_slice(),
            header: Box::new([0u8; HEADER_BYTES]),
            error: Vec::new(),
            deps: Vec::new(),
            group: None,
            join_fields: Vec::new(),
            confirmed: Vec::new(),
            staged_text: Vec::new(),
            poll: PollOut::default(),
            grants: Vec::new(),
            absorbed: Vec::new(),
            events: Vec::new(),
            metrics: Vec::new(),
        }
    }

    // ----- memory areas -----

    /// The scratch area (the bridge writes string bytes here).
    pub fn scratch(&mut self) -> &mut [u8] {
        &mut self.scratch
    }

    /// The output header.
    pub fn header(&self) -> &[u8] {
        &self.header[..]
    }

    /// The last error message.
    pub fn error(&self) -> &[u8] {
        &self.error
    }

    /// Request, change, message records of the last poll (native tests read these).
    pub fn poll_records(&self) -> (&[u8], &[u8], &[u8]) {
        (&self.poll.requests, &self.poll.changes, &self.poll.messages)
    }

    /// Block write records of the last poll (native tests read these).
    pub fn poll_blocks(&self) -> &[u8] {
        &self.poll.blocks
    }

    /// The address and bytes of the last poll's text area (record addresses point into it).
    pub fn poll_text(&self) -> (u32, &[u8]) {
        (records::addr(&self.poll.text), &self.poll.text)
    }

    /// Event records of the last `drain_events`.
    pub fn event_records(&self) -> &[u8] {
        &self.events
    }

    /// The metrics record of the last `metrics`.
    pub fn metrics_record(&self) -> &[u8] {
        &self.metrics
    }

    /// Grant records of the last watched call: poll, flush, ack, failure, atomic commit
    /// (native tests read these).
    pub fn grant_records(&self) -> &[u8] {
        &self.grants
    }

    // ----- error plumbing -----

    fn fail(&mut self, e: (i32, Option<Error>)) -> i32 {
        self.error.clear();
        match e {
            (_, Some(err)) => -describe(&err, &mut self.error),
            (code, None) => -code,
        }
    }

    fn facade_error(&mut self, code: ErrorCode, what: &str) -> (i32, Option<Error>) {
        self.error.clear();
        Msg(&mut self.error).s(what);
        (code as i32, None)
    }

    fn status(&mut self, r: Res<i32>) -> i32 {
        match r {
            Ok(v) => v,
            Err(e) => {
                if e.1.is_none() {
                    // The message was written by `facade_error`.
                    return -e.0;
                }
                self.fail(e)
            }
        }
    }

    fn seq_result(&mut self, r: Res<f64>) -> f64 {
        match r {
            Ok(v) => v,
            Err(e) => self.status(Err(e)) as f64,
        }
    }

    fn q(&mut self) -> Res<&mut Queue> {
        if self.queue.is_none() {
            return Err(self.facade_error(
                ErrorCode::NotReady,
                "the queue is not initialised: call nsq_init first",
            ));
        }
        Ok(self.queue.as_mut().expect("checked"))
    }

    fn text_arg(&mut self, what: &str, from: usize, len: i32) -> Res<String> {
        if len < 0
            || from
                .checked_add(len as usize)
                .is_none_or(|end| end > SCRATCH_CAP)
        {
            let mut m = String::from(what);
            m.push_str(": length out of the scratch area");
            return Err(self.facade_error(ErrorCode::BadArgument, &m));
        }
        match core::str::from_utf8(&self.scratch[from..from + len as usize]) {
            Ok(s) => Ok(String::from(s)),
            Err(_) => {
                let mut m = String::from(what);
                m.push_str(": not valid UTF-8");
                Err(self.facade_error(ErrorCode::BadArgument, &m))
            }
        }
    }

    fn value(&mut self, kind: i32, len: i32, x: f64) -> Res<Value> {
        self.value_at(kind, len, x, 0)
    }

    /// A value (ABI "Values") whose text, for kind 3, starts `text_at` bytes into the
    /// scratch area.
    fn value_at(&mut self, kind: i32, len: i32, x: f64, text_at: usize) -> Res<Value> {
        Ok(match kind {
            0 => Value::Cleared,
            1 => Value::Number(x),
            2 => Value::Bool(x != 0.0),
            3 => Value::Str(self.text_arg("text value", text_at, len)?),
            4 => {
                let sym = self.sym(x)?;
                let q = self.q()?;
                Value::Str(String::from(q.sym_text(sym).map_err(core)?))
            }
            _ => {
                return Err(self.facade_error(
                    ErrorCode::BadArgument,
                    "value kind must be 0 (cleared), 1 (number), 2 (bool), 3 (text) or 4 (sym)",
                ))
            }
        })
    }

    fn sym(&mut self, x: f64) -> Res<Sym> {
        if !whole_in(x, 0.0, 4294967295.0) {
            return Err(core(Error::UnknownHandle {
                what: "string",
                index: u32::MAX,
            }));
        }
        let sym = Sym(x as u32);
        self.q()?.sym_text(sym).map_err(core)?;
        Ok(sym)
    }

    fn priority(&mut self, p: i32) -> Res<Priority> {
        match PRIORITIES.get(p as usize) {
            Some(p) => Ok(*p),
            _ => Err(self.facade_error(
                ErrorCode::BadArgument,
                "priority must be 0 (low), 1 (normal), 2 (high) or 3 (critical)",
            )),
        }
    }

    fn agent(&mut self, a: i32) -> Res<AgentId> {
        if a < 0 {
            return Err(core(Error::UnknownAgent { index: a as u32 }));
        }
        Ok(AgentId::from_index(a as u32))
    }

    fn request(&mut self, id: f64) -> Res<RequestId> {
        if !whole_in(id, 1.0, MAX_EXACT) {
            return Err(core(Error::UnknownRequest {
                request: RequestId(0),
            }));
        }
        Ok(RequestId(id as u64))
    }

    // ----- setup -----

    /// `nsq_config`: one setting before `nsq_init`.
    pub fn config(&mut self, key: i32, v: f64) -> i32 {
        let r = self.config_inner(key, v);
        self.status(r)
    }

    fn config_inner(&mut self, key: i32, v: f64) -> Res<i32> {
        if self.queue.is_some() {
            return Err(self.facade_error(
                ErrorCode::NotReady,
                "settings are fixed once nsq_init has run",
            ));
        }
        let c = &mut self.cfg;
        let int = |v: f64, max: f64| whole_in(v, 0.0, max);
        let u32_max = u32::MAX as f64;
        let bad = match key {
            0 => {
                c.debounce_s = v;
                None
            }
            1 => {
                c.combat_debounce_s = v;
                None
            }
            2 => {
                c.freshness_s = v;
                None
            }
            3 => {
                c.combat_freshness_s = v;
                None
            }
            4 => {
                c.batch_interval_s = v;
                None
            }
            5 => {
                c.high_priority_delay_s = v;
                None
            }
            6 => {
                c.health_critical_points = v;
                None
            }
            7 => {
                c.health_notable_points = v;
                None
            }
            8 => {
                c.combat_exit_s = v;
                None
            }
            9 if int(v, u32_max) => {
                c.budget_per_minute = v as u32;
                None
            }
            9 => Some("budget_per_minute"),
            10 => {
                c.routine_share = v;
                None
            }
            11 if int(v, u32_max) => {
                c.budget_burst = v as u32;
                None
            }
            11 => Some("budget_burst"),
            12 if int(v, u32_max) => {
                c.max_agent_blocks_per_request = v as u32;
                None
            }
            12 => Some("max_agent_blocks_per_request"),
            13 if int(v, u32_max) => {
                c.max_request_bytes = v as u32;
                None
            }
            13 => Some("max_request_bytes"),
            14 => {
                c.retry_base_s = v;
                None
            }
            15 => {
                c.retry_max_s = v;
                None
            }
            16 => {
                c.retry_jitter = v;
                None
            }
            17 if int(v, MAX_EXACT) => {
                c.seed = v as u64;
                None
            }
            17 => Some("seed"),
            18 => {
                c.chat_window_s = v;
                None
            }
            19 => {
                c.chat_max_wait_s = v;
                None
            }
            20 if int(v, u32_max) => {
                c.chat_max_messages = v as u32;
                None
            }
            20 => Some("chat_max_messages"),
            21 if v == 0.0 => {
                c.target = Target::BatchEndpoint;
                None
            }
            21 if v == 1.0 => {
                c.target = Target::LettaApi;
                None
            }
            21 => Some("target"),
            22 if int(v, u32_max) => {
                c.default_block_limit = v as u32;
                None
            }
            22 => Some("default_block_limit"),
            23 if int(v, u32_max) => {
                c.batch_requests_per_poll = v as u32;
                None
            }
            23 => Some("batch_requests_per_poll"),
            _ => {
                return Err(self.facade_error(
                    ErrorCode::BadArgument,
                    "unknown setting key (0 to 23, see ABI.md)",
                ))
            }
        };
        if let Some(name) = bad {
            let mut m = String::from("invalid setting `");
            m.push_str(name);
            m.push_str(if name == "target" {
                "`: must be 0 (batch endpoint) or 1 (Letta API)"
            } else {
                "`: must be a whole number in range"
            });
            return Err(self.facade_error(ErrorCode::BadArgument, &m));
        }
        Ok(0)
    }

    /// `nsq_config_block_limit`: the limit of one block label (its bytes at the scratch
    /// start) before `nsq_init`.
    pub fn config_block_limit(&mut self, label_len: i32, limit: f64) -> i32 {
        let r = (|| {
            if self.queue.is_some() {
                return Err(self.facade_error(
                    ErrorCode::NotReady,
                    "settings are fixed once nsq_init has run",
                ));
            }
            let label = self.text_arg("block label", 0, label_len)?;
            if !whole_in(limit, 0.0, u32::MAX as f64) {
                return Err(self.facade_error(
                    ErrorCode::BadArgument,
                    "invalid setting `block_limits`: a limit must be a whole number in range",
                ));
            }
            let limits = &mut self.cfg.block_limits;
            match limits.iter_mut().find(|(l, _)| *l == label) {
                Some(entry) => entry.1 = limit as u32,
                None => limits.push((label, limit as u32)),
            }
            Ok(0)
        })();
        self.status(r)
    }

    /// `nsq_init`: validates the config and creates the queue.
    pub fn init(&mut self) -> i32 {
        if self.queue.is_some() {
            let e = self.facade_error(ErrorCode::NotReady, "nsq_init was already called");
            return self.status(Err(e));
        }
        match Queue::new(self.cfg.clone()) {
            Ok(q) => {
                self.queue = Some(q);
                0
            }
            Err(e) => self.fail(core(e)),
        }
    }

    // ----- names and handles -----

    /// `nsq_intern`: the bytes at the scratch start.
    pub fn intern(&mut self, len: i32) -> i32 {
        let r = (|| {
            let s = self.text_arg("string", 0, len)?;
            let sym = self.q()?.intern(&s).map_err(core)?;
            Ok(sym.0 as i32)
        })();
        self.status(r)
    }

    /// `nsq_sym_text`: copies a symbol's text to the scratch start; returns its length.
    pub fn sym_text(&mut self, sym: i32) -> i32 {
        let r = (|| {
            let sym = self.sym(sym as f64)?;
            let q = self.queue.as_ref().expect("sym checked the queue");
            let text = q.sym_text(sym).map_err(core)?.as_bytes();
            self.scratch[..text.len()].copy_from_slice(text);
            Ok(text.len() as i32)
        })();
        self.status(r)
    }

    /// `nsq_agent`: the handle of the agent with this id.
    pub fn agent_handle(&mut self, id_sym: i32) -> i32 {
        let r = (|| {
            let sym = self.sym(id_sym as f64)?;
            let q = self.q()?;
            let id = String::from(q.sym_text(sym).map_err(core)?);
            Ok(q.agent(&id).map_err(core)?.index() as i32)
        })();
        self.status(r)
    }

    /// `nsq_slot`: the slot of one field of an agent.
    pub fn slot(&mut self, agent: i32, block: i32, field: i32) -> i32 {
        let r = (|| {
            let a = self.agent(agent)?;
            let b = self.sym(block as f64)?;
            let f = self.sym(field as f64)?;
            Ok(self.q()?.slot(a, b, f).map_err(core)?.index() as i32)
        })();
        self.status(r)
    }

    // ----- change calls -----

    /// `nsq_set`.
    pub fn set(&mut self, now: f64, slot: i32, kind: i32, len: i32, x: f64, prio: i32) -> f64 {
        // The hot path: a number, bool or clear, no dependency, no group open. An error
        // here changes nothing and is reported by the general path below.
        if self.deps.is_empty() && self.group.is_none() && (0..=3).contains(&prio) {
            let value = match kind {
                0 => Some(Value::Cleared),
                1 => Some(Value::Number(x)),
                2 => Some(Value::Bool(x != 0.0)),
                _ => None,
            };
            if let (Some(q), Some(v)) = (self.queue.as_mut(), value) {
                let p = PRIORITIES[prio as usize];
                if let Ok(id) = q.set_slot(now, Slot::from_index(slot as u32), v, p, &[]) {
                    self.report_grant(slot, true);
                    return id.seq().0 as f64;
                }
            }
        }
        self.set_general(now, slot, kind, len, x, prio)
    }

    /// `nsq_set` with dependencies, text or interned values, inside a group, or failing.
    #[inline(never)]
    fn set_general(&mut self, now: f64, slot: i32, kind: i32, len: i32, x: f64, prio: i32) -> f64 {
        let seq = self.set_general_inner(now, slot, kind, len, x, prio);
        self.report_grant(slot, seq > 0.0);
        seq
    }

    fn set_general_inner(
        &mut self,
        now: f64,
        slot: i32,
        kind: i32,
        len: i32,
        x: f64,
        prio: i32,
    ) -> f64 {
        let deps = if self.deps.is_empty() {
            Vec::new()
        } else {
            core::mem::take(&mut self.deps)
        };
        let r = (|| {
            let value = self.value(kind, len, x)?;
            let priority = self.priority(prio)?;
            let slot = Slot::from_index(slot as u32);
            if let Some(g) = self.group.as_mut() {
                g.push(Staged {
                    slot,
                    value,
                    priority,
                    deps,
                });
                return Ok(0.0);
            }
            let q = self.q()?;
            let id = q
                .set_slot(now, slot, value, priority, &deps)
                .map_err(core)?;
            Ok(id.seq().0 as f64)
        })();
        self.seq_result(r)
    }

    fn no_group(&mut self, call: &str) -> Res<()> {
        if self.group.is_some() {
            let mut m = String::from(call);
            m.push_str(" cannot be staged in an atomic group: use nsq_set on the slot");
            return Err(self.facade_error(ErrorCode::BadState, &m));
        }
        Ok(())
    }

    /// `nsq_set_health`.
    pub fn set_health(&mut self, now: f64, agent: i32, health: f64) -> f64 {
        let deps = core::mem::take(&mut self.deps);
        let r = (|| {
            self.no_group("nsq_set_health")?;
            if !deps.is_empty() {
                return Err(self.facade_error(
                    ErrorCode::BadState,
                    "nsq_set_health takes no dependency: use nsq_set on the status.health slot",
                ));
            }
            let a = self.agent(agent)?;
            let q = self.q()?;
            let id = q.set_health(now, a, health).map_err(core)?;
            Ok(id.seq().0 as f64)
        })();
        self.seq_result(r)
    }

    /// `nsq_set_state`.
    pub fn set_state(&mut self, now: f64, agent: i32, state: i32) -> f64 {
        let deps = core::mem::take(&mut self.deps);
        let r = (|| {
            self.no_group("nsq_set_state")?;
            if !deps.is_empty() {
                return Err(self.facade_error(
                    ErrorCode::BadState,
                    "nsq_set_state takes no dependency: use nsq_set on the status.state slot",
                ));
            }
            let a = self.agent(agent)?;
            let sym = self.sym(state as f64)?;
            let q = self.q()?;
            let text = String::from(q.sym_text(sym).map_err(core)?);
            Ok(q.set_state(now, a, &text).map_err(core)?.seq().0 as f64)
        })();
        self.seq_result(r)
    }

    /// `nsq_after`: stages a dependency for the next change call.
    pub fn after(&mut self, seq: f64, slot: i32) -> i32 {
        let r = (|| {
            if !whole_in(seq, 1.0, MAX_EXACT) {
                return Err(self.facade_error(
                    ErrorCode::BadArgument,
                    "nsq_after: seq must be a whole number of 1 or more",
                ));
            }
            let q = self.q()?;
            let id = q
                .change_handle(Seq(seq as u64), Slot::from_index(slot as u32))
                .map_err(core)?;
            self.deps.push(id);
            Ok(0)
        })();
        self.status(r)
    }

    /// `nsq_join_field`: stages one member field for the next `nsq_join`.
    pub fn join_field(&mut self, field: i32, kind: i32, len: i32, x: f64) -> i32 {
        let r = (|| {
            let f = self.sym(field as f64)?;
            let v = self.value(kind, len, x)?;
            self.join_fields.push((f, v));
            Ok(0)
        })();
        self.status(r)
    }

    /// `nsq_join`.
    pub fn join(&mut self, now: f64, agent: i32, member: i32) -> f64 {
        let fields = core::mem::take(&mut self.join_fields);
        self.deps.clear();
        let r = (|| {
            self.no_group("nsq_join")?;
            let a = self.agent(agent)?;
            let m = self.sym(member as f64)?;
            let q = self.q()?;
            let member = String::from(q.sym_text(m).map_err(core)?);
            let names: Vec<String> = fields
                .iter()
                .map(|(f, _)| String::from(q.sym_text(*f).unwrap_or("")))
                .collect();
            let pairs: Vec<(&str, Value)> = names
                .iter()
                .zip(&fields)
                .map(|(n, (_, v))| (n.as_str(), v.clone()))
                .collect();
            Ok(q.join_group(now, a, &member, &pairs).map_err(core)?.seq().0 as f64)
        })();
        self.seq_result(r)
    }

    /// `nsq_leave`.
    pub fn leave(&mut self, now: f64, agent: i32, member: i32) -> f64 {
        self.deps.clear();
        let r = (|| {
            self.no_group("nsq_leave")?;
            let a = self.agent(agent)?;
            let m = self.sym(member as f64)?;
            let q = self.q()?;
            let member = String::from(q.sym_text(m).map_err(core)?);
            Ok(q.leave_group(now, a, &member).map_err(core)?.seq().0 as f64)
        })();
        self.seq_result(r)
    }

    /// `nsq_atomic_begin`.
    pub fn atomic_begin(&mut self) -> i32 {
        let r = (|| {
            self.q()?;
            if self.group.is_some() {
                return Err(
                    self.facade_error(ErrorCode::BadState, "an atomic group is already open")
                );
            }
            self.group = Some(Vec::new());
            Ok(0)
        })();
        self.status(r)
    }

    /// `nsq_atomic_abort`.
    pub fn atomic_abort(&mut self) -> i32 {
        self.group = None;
        self.deps.clear();
        0
    }

    /// `nsq_atomic_commit`: queues the staged group; the seq of its first change.
    pub fn atomic_commit(&mut self, now: f64) -> f64 {
        let r = (|| {
            let Some(staged) = self.group.take() else {
                return Err(self.facade_error(ErrorCode::BadState, "no atomic group is open"));
            };
            self.deps.clear();
            let q = self.q()?;
            let mut names: Vec<(AgentId, String, String)> = Vec::with_capacity(staged.len());
            for s in &staged {
                let (a, b, f) = q.slot_names(s.slot).map_err(core)?;
                names.push((a, String::from(b), String::from(f)));
            }
            let changes: Vec<Change<'_>> = staged
                .iter()
                .zip(&names)
                .map(|(s, (a, b, f))| {
                    let mut c = Change::new(*a, b, f, s.value.clone()).priority(s.priority);
                    c.depends_on = s.deps.clone();
                    c
                })
                .collect();
            let ids = self
                .watched(|q| q.atomic(now, &changes))
                .expect("checked")
                .map_err(core)?;
            Ok(ids.first().map_or(0.0, |id| id.seq().0 as f64))
        })();
        self.seq_result(r)
    }

    // ----- per frame -----

    /// `nsq_poll`: writes the request records; returns their number.
    pub fn poll(&mut self, now: f64) -> i32 {
        self.emit(now, false)
    }

    /// `nsq_flush`: everything pending, now ([`Queue::flush`]); records as `nsq_poll`.
    pub fn flush(&mut self, now: f64) -> i32 {
        self.emit(now, true)
    }

    /// `nsq_poll_before_build`: [`Queue::poll_before_build`]; [`POLL_STOPPED`] when the
    /// poll stopped before building a request (take the kept changes in, then `nsq_poll`),
    /// else as `nsq_poll`.
    pub fn poll_before_build(&mut self, now: f64) -> i32 {
        let r = (|| {
            self.q()?;
            let reqs = self
                .watched(|q| q.poll_before_build(now))
                .expect("checked by q()");
            let Some(reqs) = reqs.map_err(core)? else {
                return Ok(POLL_STOPPED);
            };
            let q = self.queue.as_mut().expect("checked by q()");
            self.poll.write(q, &reqs);
            self.poll.fill_header(&mut self.header[..], reqs.len());
            Ok(reqs.len() as i32)
        })();
        self.status(r)
    }

    fn emit(&mut self, now: f64, flush: bool) -> i32 {
        let r = (|| {
            let reqs = self.watched(|q| if flush { q.flush(now) } else { q.poll(now) });
            let Some(reqs) = reqs else {
                return Err(self.facade_error(
                    ErrorCode::NotReady,
                    "the queue is not initialised: call nsq_init first",
                ));
            };
            let reqs = reqs.map_err(core)?;
            let q = self.queue.as_mut().expect("checked");
            self.poll.write(q, &reqs);
            self.poll.fill_header(&mut self.header[..], reqs.len());
            Ok(reqs.len() as i32)
        })();
        self.status(r)
    }

    /// `nsq_fail`: `has_retry_after` 0 (none given) or 1 (`retry_after` is the value,
    /// checked by the core: a negative one is refused, naming it).
    pub fn fail_request(
        &mut self,
        now: f64,
        request: f64,
        has_retry_after: i32,
        retry_after: f64,
    ) -> i32 {
        let r = (|| {
            let id = self.request(request)?;
            let ra = match has_retry_after {
                0 => None,
                1 => Some(retry_after),
                _ => {
                    return Err(self.facade_error(
                        ErrorCode::BadArgument,
                        "nsq_fail: has_retry_after must be 0 (none) or 1",
                    ))
                }
            };
            self.q()?;
            self.watched(|q| q.fail(now, id, ra))
                .expect("checked")
                .map_err(core)?;
            Ok(0)
        })();
        self.status(r)
    }

    /// `nsq_drain_events`: writes the event records; returns their number.
    pub fn drain_events(&mut self) -> i32 {
        let r = (|| {
            self.q()?;
            let q = self.queue.as_mut().expect("checked");
            let events = q.drain_events();
            records::write_events(q, &events, &mut self.events);
            let h = &mut self.header[..];
            records::set_u32(h, at::EVENTS, events.len() as u32);
            records::set_u32(h, at::EVENTS + 4, records::addr(&self.events));
            Ok(events.len() as i32)
        })();
        self.status(r)
    }

    // ----- decisions, chat, agents, state -----

    /// `nsq_decide`: 0 fresh, 1 syncing.
    pub fn decide(&mut self, now: f64, agent: i32) -> i32 {
        let r = (|| {
            let a = self.agent(agent)?;
            let d = self.q()?.decide(a, now).map_err(core)?;
            let (code, staleness, threshold) = match d {
                Decision::Fresh { staleness } => (0, staleness, 0.0),
                Decision::Syncing {
                    staleness,
                    threshold,
                } => (1, staleness, threshold),
            };
            records::set_f64(&mut self.header[..], at::STALENESS, staleness);
            records::set_f64(&mut self.header[..], at::THRESHOLD, threshold);
            Ok(code)
        })();
        self.status(r)
    }

    /// `nsq_is_fresh`: 1 fresh, 0 not.
    pub fn is_fresh(&mut self, now: f64, agent: i32) -> i32 {
        let r = (|| {
            let a = self.agent(agent)?;
            Ok(self.q()?.is_fresh(a, now).map_err(core)? as i32)
        })();
        self.status(r)
    }

    /// `nsq_chat`: sender bytes then text bytes at the scratch start.
    pub fn chat(&mut self, now: f64, agent: i32, sender_len: i32, text_len: i32) -> i32 {
        let r = (|| {
            let a = self.agent(agent)?;
            let sender = self.text_arg("chat sender", 0, sender_len)?;
            let text = self.text_arg("chat text", sender.len(), text_len)?;
            self.q()?.chat(now, a, &sender, &text).map_err(core)?;
            Ok(0)
        })();
        self.status(r)
    }

    /// `nsq_await_block`: the agent-block is being read from Letta; nothing of it is
    /// written until `nsq_load_block`.
    pub fn await_block(&mut self, agent: i32, block: i32) -> i32 {
        let r = (|| {
            let a = self.agent(agent)?;
            let b = self.sym(block as f64)?;
            let q = self.q()?;
            let label = String::from(q.sym_text(b).map_err(core)?);
            q.await_block(a, &label).map_err(core)?;
            Ok(0)
        })();
        self.status(r)
    }

    /// `nsq_take_read_call`: 1 when the budget counts one block read now, 0 when it has
    /// no room (ask again later).
    pub fn take_read_call(&mut self, now: f64) -> i32 {
        let r = (|| Ok(self.q()?.take_read_call(now).map_err(core)? as i32))();
        self.status(r)
    }

    /// `nsq_stage_text`: appends the scratch area's first `len` bytes to the text the next
    /// `nsq_load_block` takes (a block's text may be longer than the scratch area).
    pub fn stage_text(&mut self, len: i32) -> i32 {
        if len < 0 || len as usize > SCRATCH_CAP {
            let e = self.facade_error(
                ErrorCode::BadArgument,
                "nsq_stage_text: length out of the scratch area",
            );
            return self.status(Err(e));
        }
        self.staged_text
            .extend_from_slice(&self.scratch[..len as usize]);
        0
    }

    /// `nsq_load_block`: the staged text (cleared by the call) is the agent-block as read
    /// from Letta; returns the number of lines that could not be read.
    pub fn load_block(&mut self, now: f64, agent: i32, block: i32) -> i32 {
        let bytes = core::mem::take(&mut self.staged_text);
        let r = (|| {
            let a = self.agent(agent)?;
            let b = self.sym(block as f64)?;
            let Ok(text) = core::str::from_utf8(&bytes) else {
                return Err(self.facade_error(
                    ErrorCode::BadArgument,
                    "nsq_load_block: the staged text is not valid UTF-8",
                ));
            };
            let q = self.q()?;
            let label = String::from(q.sym_text(b).map_err(core)?);
            Ok(q.load_block(now, a, &label, text).map_err(core)? as i32)
        })();
        self.status(r)
    }

    /// `nsq_remove_agent`.
    pub fn remove_agent(&mut self, agent: i32) -> i32 {
        let r = (|| {
            let a = self.agent(agent)?;
            self.q()?.remove_agent(a).map_err(core)?;
            Ok(0)
        })();
        self.status(r)
    }

    /// `nsq_in_combat`.
    pub fn in_combat(&mut self, now: f64, agent: i32) -> i32 {
        let r = (|| {
            let a = self.agent(agent)?;
            Ok(self.q()?.in_combat(a, now) as i32)
        })();
        self.status(r)
    }

    /// `nsq_in_flight`.
    pub fn in_flight(&mut self) -> i32 {
        let r = (|| Ok(self.q()?.in_flight_count() as i32))();
        self.status(r)
    }

    /// `nsq_is_idle`.
    pub fn is_idle(&mut self) -> i32 {
        let r = (|| Ok(self.q()?.is_idle() as i32))();
        self.status(r)
    }

    /// `nsq_metrics`: writes the metrics record.
    pub fn metrics(&mut self) -> i32 {
        let r = (|| {
            let m = self.q()?.metrics();
            records::write_metrics(&m, &mut self.metrics);
            records::set_u32(
                &mut self.header[..],
                at::METRICS,
                records::addr(&self.metrics),
            );
            Ok(0)
        })();
        self.status(r)
    }
}
