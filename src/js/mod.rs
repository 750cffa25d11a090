//! The Node facade: the queue as a JavaScript class, `SyncQueue`, built by wasm-pack into
//! `pkg/node` (crate `js/`). Plain objects in and out (typed in the generated `.d.ts`),
//! agents named by their backend id, errors thrown as `Error`s carrying the Rust message
//! and a `code` (the native [`crate::Error`] variant, `"BadInput"` for a malformed
//! argument).
//!
//! ```js
//! const { SyncQueue } = require("npc-sync-node");
//! const q = new SyncQueue({ target: "batch" });
//! q.setHealth(0, "npc-1", 100);
//! q.setHealth(0.5, "npc-1", 70);             // 30 points: critical
//! for (const r of q.poll(0.5)) {             // one urgent request
//!   // POST r to the batch endpoint, then:
//!   q.ack(r.id);                             // or q.fail(now, r.id, retryAfter)
//! }
//! q.decide(1, "npc-1");                      // { kind: "fresh", staleness: 0 }
//! ```

mod config;
mod error;
mod types;

pub use error::{JsError, JsResult};

use crate::ids::{AgentId, ChangeId, RequestId, Seq};
use crate::queue::{Change, Event, Priority, Queue};
use crate::request::{Confirmed, Request};
use crate::value::Value;
use alloc::string::String;
use alloc::vec::Vec;
use serde::de::DeserializeOwned;
use serde::Serialize;
use types::{
    BlockWriteOut, ChangeIn, ConfigArg, ConfirmedArg, ConfirmedIn, DecisionOut, EventOut, HandleJs,
    HandlesOut, LineOut, MemberFieldsArg, MessageOut, MetricsOut, RequestOut, SentChangeOut,
    ValueIn, ValueOut,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// One npc-sync queue. It never reads a clock and never does I/O: pass `now` (seconds,
/// any monotonic origin, never going backwards) to each call, send the requests `poll`
/// returns, and report each outcome with `ack` or `fail`.
///
/// ```js
/// const q = new SyncQueue({ target: "batch", batchInterval: 30 });
/// q.setLocation(now, "npc-1", "market");
/// const requests = q.poll(now); // every frame
/// ```
#[wasm_bindgen]
pub struct SyncQueue {
    q: Queue,
    change_shape: Shape,
    confirmed_shape: Shape,
}

/// serde-wasm-bindgen's errors are JS `Error`s: their message only.
fn serde_message(e: serde_wasm_bindgen::Error) -> String {
    let e = JsValue::from(e);
    match e.dyn_ref::<js_sys::Error>() {
        Some(err) => String::from(err.message()),
        None => alloc::format!("{e:?}"),
    }
}

fn to_js<T: Serialize>(v: &T) -> JsResult<JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::new().serialize_missing_as_null(true))
        .map_err(|e| JsError::input("result", serde_message(e)))
}

fn from_js<T: DeserializeOwned>(what: &str, v: &JsValue) -> JsResult<T> {
    serde_wasm_bindgen::from_value(v.clone()).map_err(|e| JsError::input(what, serde_message(e)))
}

/// A string argument, checked (wasm-bindgen would otherwise coerce anything to a string).
fn string(what: &str, v: &JsValue) -> JsResult<String> {
    v.as_string().ok_or_else(|| {
        JsError::input(
            what,
            alloc::format!("must be a string, got {}", config::type_of(v)),
        )
    })
}

/// The keys an object argument may have, in Rust (for messages) and as a JavaScript array
/// made once per queue (the check runs on the JavaScript side: one call per object instead
/// of one per key).
struct Shape {
    keys: &'static [&'static str],
    js: JsValue,
}

impl Shape {
    fn new(keys: &'static [&'static str]) -> Shape {
        let js: js_sys::Array = keys.iter().map(|k| JsValue::from_str(k)).collect();
        Shape {
            keys,
            js: js.into(),
        }
    }

    /// An object argument with only these keys (serde-wasm-bindgen reads the keys it
    /// knows and would let a misspelt optional key, `priorty`, pass unnoticed).
    fn object_in<T: DeserializeOwned>(&self, what: &str, v: &JsValue) -> JsResult<T> {
        if !v.is_object() || js_sys::Array::is_array(v) {
            return Err(JsError::input(
                what,
                alloc::format!("must be an object, got {}", config::type_of(v)),
            ));
        }
        if let Some(key) = types::unknown_key(v, &self.js) {
            return Err(JsError::input(
                what,
                alloc::format!("unknown key `{key}` (known: {})", self.keys.join(", ")),
            ));
        }
        from_js(what, v)
    }

    /// A list argument whose items are objects with only these keys.
    fn objects_in<T: DeserializeOwned>(&self, what: &str, v: &JsValue) -> JsResult<Vec<T>> {
        if !js_sys::Array::is_array(v) {
            return Err(JsError::input(
                what,
                alloc::format!("must be a list, got {}", config::type_of(v)),
            ));
        }
        let list: &js_sys::Array = v.unchecked_ref();
        list.iter()
            .enumerate()
            .map(|(i, item)| self.object_in(&alloc::format!("{what}[{i}]"), &item))
            .collect()
    }
}

#[wasm_bindgen]
impl SyncQueue {
    /// A queue with the given settings (all optional; see `SyncQueueConfig`), validated as
    /// a whole.
    ///
    /// ```js
    /// const q = new SyncQueue({ target: "letta", freshness: 20 });
    /// new SyncQueue({ debounce: -1 }); // throws Error: invalid setting `debounce`: ...
    /// ```
    #[wasm_bindgen(constructor)]
    pub fn new(config: Option<ConfigArg>) -> Result<SyncQueue, JsError> {
        let cfg = config::config_from_js(&config.map_or(JsValue::UNDEFINED, JsValue::from))?;
        Ok(SyncQueue {
            q: Queue::new(cfg)?,
            change_shape: Shape::new(ChangeIn::KEYS),
            confirmed_shape: Shape::new(ConfirmedIn::KEYS),
        })
    }

    fn agent(&mut self, v: &JsValue) -> JsResult<AgentId> {
        let id = string("agent", v)?;
        Ok(self.q.agent(&id)?)
    }

    /// A handle from JavaScript, checked to name interned block and field names; the
    /// queue checks its sequence number and agent.
    fn handle(&self, h: HandleJs) -> JsResult<ChangeId> {
        let bad = || JsError::Core(crate::Error::UnknownChange { seq: h.seq as u64 });
        let id = h.to_native().ok_or_else(bad)?;
        let interned = |s| self.q.symbols.lookup(self.q.symbols.text(s)) == Some(s);
        if !interned(id.block) || !interned(id.field) {
            return Err(bad());
        }
        Ok(id)
    }

    /// A change's agent and dependencies, resolved.
    fn change_in(&mut self, c: ChangeIn) -> JsResult<(ChangeIn, AgentId, Vec<ChangeId>)> {
        let agent = self.q.agent(&c.agent)?;
        let mut deps = Vec::with_capacity(c.after.len());
        for h in &c.after {
            deps.push(self.handle(*h)?);
        }
        Ok((c, agent, deps))
    }

    fn handle_out(id: ChangeId) -> JsResult<JsValue> {
        // One call into JavaScript with four numbers: several times cheaper than building
        // the object property by property from Rust, and change calls are the hot path.
        let h = HandleJs::from(id);
        Ok(types::make_handle(
            h.seq,
            h.agent_handle,
            h.block_sym,
            h.field_sym,
        ))
    }

    /// Queues one field change; returns its handle (for `after`).
    ///
    /// ```js
    /// const moved = q.set(now, { agent: "npc-1", block: "status", field: "location", value: "cave" });
    /// q.set(now, { agent: "npc-1", block: "status", field: "torch", value: true,
    ///              priority: "high", after: [moved] });
    /// ```
    #[wasm_bindgen(unchecked_return_type = "ChangeHandle")]
    pub fn set(
        &mut self,
        now: f64,
        #[wasm_bindgen(unchecked_param_type = "FieldChange")] change: JsValue,
    ) -> Result<JsValue, JsError> {
        let c: ChangeIn = self.change_shape.object_in("change", &change)?;
        let (c, agent, deps) = self.change_in(c)?;
        let mut native = Change::new(agent, &c.block, &c.field, c.value.0)
            .priority(c.priority.map_or(Priority::Normal, Priority::from));
        native.depends_on = deps;
        Self::handle_out(self.q.set(now, native)?)
    }

    /// Sets `status.location` (normal priority: next routine batch).
    ///
    /// ```js
    /// q.setLocation(now, "npc-1", "market");
    /// ```
    #[wasm_bindgen(js_name = setLocation, unchecked_return_type = "ChangeHandle")]
    pub fn set_location(
        &mut self,
        now: f64,
        #[wasm_bindgen(unchecked_param_type = "string")] agent: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] location: JsValue,
    ) -> Result<JsValue, JsError> {
        let a = self.agent(&agent)?;
        let location = string("location", &location)?;
        Self::handle_out(self.q.set_location(now, a, &location)?)
    }

    /// Sets `status.state`; entering or leaving `"Combat"` is critical and starts or ends
    /// combat mode.
    ///
    /// ```js
    /// q.setState(now, "npc-1", "Combat");
    /// ```
    #[wasm_bindgen(js_name = setState, unchecked_return_type = "ChangeHandle")]
    pub fn set_state(
        &mut self,
        now: f64,
        #[wasm_bindgen(unchecked_param_type = "string")] agent: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] state: JsValue,
    ) -> Result<JsValue, JsError> {
        let a = self.agent(&agent)?;
        let state = string("state", &state)?;
        Self::handle_out(self.q.set_state(now, a, &state)?)
    }

    /// Sets `status.health`; the size of the change picks the priority (20 points or more:
    /// critical, 10 to 20: high, less: next routine batch).
    ///
    /// ```js
    /// q.setHealth(now, "npc-1", 62);
    /// ```
    #[wasm_bindgen(js_name = setHealth, unchecked_return_type = "ChangeHandle")]
    pub fn set_health(
        &mut self,
        now: f64,
        #[wasm_bindgen(unchecked_param_type = "string")] agent: JsValue,
        health: f64,
    ) -> Result<JsValue, JsError> {
        let a = self.agent(&agent)?;
        Self::handle_out(self.q.set_health(now, a, health)?)
    }

    /// Sets `status.description` (normal priority).
    ///
    /// ```js
    /// q.setDescription(now, "npc-1", "guarding the north gate");
    /// ```
    #[wasm_bindgen(js_name = setDescription, unchecked_return_type = "ChangeHandle")]
    pub fn set_description(
        &mut self,
        now: f64,
        #[wasm_bindgen(unchecked_param_type = "string")] agent: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] text: JsValue,
    ) -> Result<JsValue, JsError> {
        let a = self.agent(&agent)?;
        let text = string("text", &text)?;
        Self::handle_out(self.q.set_description(now, a, &text)?)
    }

    /// A group member joins: `group_members.<member>.is_present = true` plus the member's
    /// fields (high priority). Returns the handle of `is_present`.
    ///
    /// ```js
    /// q.joinGroup(now, "npc-1", "player_7", [["role", "tank"], ["level", 12]]);
    /// q.joinGroup(now, "npc-1", "player_8", { role: "healer" });
    /// ```
    #[wasm_bindgen(js_name = joinGroup, unchecked_return_type = "ChangeHandle")]
    pub fn join_group(
        &mut self,
        now: f64,
        #[wasm_bindgen(unchecked_param_type = "string")] agent: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] member: JsValue,
        fields: Option<MemberFieldsArg>,
    ) -> Result<JsValue, JsError> {
        let a = self.agent(&agent)?;
        let member = string("member", &member)?;
        let pairs = member_fields(fields.map_or(JsValue::UNDEFINED, JsValue::from))?;
        let borrowed: Vec<(&str, Value)> =
            pairs.iter().map(|(f, v)| (f.as_str(), v.clone())).collect();
        Self::handle_out(self.q.join_group(now, a, &member, &borrowed)?)
    }

    /// A group member leaves: every field of that member is cleared (high priority).
    /// Returns the handle of clearing `is_present`.
    ///
    /// ```js
    /// q.leaveGroup(now, "npc-1", "player_7");
    /// ```
    #[wasm_bindgen(js_name = leaveGroup, unchecked_return_type = "ChangeHandle")]
    pub fn leave_group(
        &mut self,
        now: f64,
        #[wasm_bindgen(unchecked_param_type = "string")] agent: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] member: JsValue,
    ) -> Result<JsValue, JsError> {
        let a = self.agent(&agent)?;
        let member = string("member", &member)?;
        Self::handle_out(self.q.leave_group(now, a, &member)?)
    }

    /// A tool's result written to a block field: high priority, or critical if `critical`.
    ///
    /// ```js
    /// q.toolResult(now, "npc-1", "inventory", "sword", "sharp", false);
    /// ```
    #[wasm_bindgen(js_name = toolResult, unchecked_return_type = "ChangeHandle")]
    pub fn tool_result(
        &mut self,
        now: f64,
        #[wasm_bindgen(unchecked_param_type = "string")] agent: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] block: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] field: JsValue,
        #[wasm_bindgen(unchecked_param_type = "FieldValue")] value: JsValue,
        critical: Option<bool>,
    ) -> Result<JsValue, JsError> {
        let a = self.agent(&agent)?;
        let block = string("block", &block)?;
        let field = string("field", &field)?;
        let value: ValueIn = from_js("value", &value)?;
        let critical = critical.unwrap_or(false);
        Self::handle_out(
            self.q
                .tool_result(now, a, &block, &field, value.0, critical)?,
        )
    }

    /// Queues changes that travel in one request, in the order given, or not at all
    /// (they may span blocks and agents). Returns one handle per change.
    ///
    /// ```js
    /// q.atomic(now, [
    ///   { agent: "npc-1", block: "status", field: "location", value: "tower" },
    ///   { agent: "npc-1", block: "status", field: "state", value: "Guarding" },
    /// ]);
    /// ```
    #[wasm_bindgen(unchecked_return_type = "ChangeHandle[]")]
    pub fn atomic(
        &mut self,
        now: f64,
        #[wasm_bindgen(unchecked_param_type = "FieldChange[]")] changes: JsValue,
    ) -> Result<JsValue, JsError> {
        let list: Vec<ChangeIn> = self.change_shape.objects_in("changes", &changes)?;
        let mut resolved = Vec::with_capacity(list.len());
        for c in list {
            resolved.push(self.change_in(c)?);
        }
        let native: Vec<Change<'_>> = resolved
            .iter()
            .map(|(c, agent, deps)| {
                let mut n = Change::new(*agent, &c.block, &c.field, c.value.0.clone())
                    .priority(c.priority.map_or(Priority::Normal, Priority::from));
                n.depends_on = deps.clone();
                n
            })
            .collect();
        let ids = self.q.atomic(now, &native)?;
        let out: HandlesOut = ids.into_iter().map(HandleJs::from).collect();
        to_js(&out)
    }

    /// Emits what is due at `now`. Call it every frame; it returns at once when nothing
    /// can be due.
    ///
    /// ```js
    /// for (const r of q.poll(now)) send(r).then(() => q.ack(r.id), () => q.fail(clock(), r.id));
    /// ```
    #[wasm_bindgen(unchecked_return_type = "SyncRequest[]")]
    pub fn poll(&mut self, now: f64) -> Result<JsValue, JsError> {
        let requests = self.q.poll(now)?;
        let out: Vec<RequestOut<'_>> = requests.iter().map(|r| self.request_out(r)).collect();
        to_js(&out)
    }

    fn request_out<'a>(&'a self, r: &'a Request) -> RequestOut<'a> {
        let q = &self.q;
        RequestOut {
            id: r.id.0 as f64,
            kind: r.kind.as_str(),
            agent: r.inference_agent.and_then(|a| q.agent_name(a)),
            changes: r
                .changes
                .iter()
                .map(|c| SentChangeOut {
                    agent: q.text(c.agent_name),
                    block: q.text(c.block),
                    field: q.text(c.field),
                    value: ValueOut(&c.value),
                    seq: c.seq.0 as f64,
                    group: c.group.map(|g| g.0 as f64),
                })
                .collect(),
            messages: r
                .messages
                .iter()
                .map(|m| MessageOut {
                    sender: &m.sender,
                    text: &m.text,
                    at: m.at,
                })
                .collect(),
            calls: r.calls,
            body_bytes: r.body_bytes,
            attempt: r.attempt,
            blocks: r
                .blocks
                .iter()
                .map(|b| BlockWriteOut {
                    agent: q.text(b.agent_name),
                    label: q.text(b.block),
                    value: &b.text,
                })
                .collect(),
        }
    }

    /// Emits everything pending now, whatever its schedule (batch interval, debounce,
    /// retry backoff, chat window); the budget and a `Retry-After` pause still hold. For a
    /// server shutting down: call it until `isIdle()` or your deadline.
    ///
    /// ```js
    /// for (const r of q.flush(now)) send(r);
    /// ```
    #[wasm_bindgen(unchecked_return_type = "SyncRequest[]")]
    pub fn flush(&mut self, now: f64) -> Result<JsValue, JsError> {
        let requests = self.q.flush(now)?;
        let out: Vec<RequestOut<'_>> = requests.iter().map(|r| self.request_out(r)).collect();
        to_js(&out)
    }

    /// Letta's API: the agent-block is being read from Letta; nothing of it is written
    /// until `loadBlock` takes the answer in (changes are still taken meanwhile).
    ///
    /// ```js
    /// q.awaitBlock("npc-1", "status");
    /// ```
    #[wasm_bindgen(js_name = awaitBlock)]
    pub fn await_block(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] agent: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] block: JsValue,
    ) -> Result<(), JsError> {
        let a = self.agent(&agent)?;
        let block = string("block", &block)?;
        Ok(self.q.await_block(a, &block)?)
    }

    /// Letta's API: asks the budget for one block read (a `GET` of an agent-block) now:
    /// `true` when it is counted and may be made, `false` when the budget has no room.
    ///
    /// ```js
    /// if (q.takeReadCall(now)) getBlock("npc-1", "status").then((b) => q.loadBlock(clock(), "npc-1", "status", b.value));
    /// ```
    #[wasm_bindgen(js_name = takeReadCall)]
    pub fn take_read_call(&mut self, now: f64) -> Result<bool, JsError> {
        Ok(self.q.take_read_call(now)?)
    }

    /// Letta's API: an agent-block's text as read by `GET
    /// /v1/agents/{id}/core-memory/blocks/{label}` (`""` for a 404) becomes what the queue
    /// knows Letta holds. Returns the number of lines that are not fields of the block
    /// format (reported as a `blockUnreadable` event; the next write replaces them).
    ///
    /// ```js
    /// q.loadBlock(now, "npc-1", "status", (await getBlock("npc-1", "status")).value);
    /// ```
    #[wasm_bindgen(js_name = loadBlock)]
    pub fn load_block(
        &mut self,
        now: f64,
        #[wasm_bindgen(unchecked_param_type = "string")] agent: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] block: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] text: JsValue,
    ) -> Result<u32, JsError> {
        let a = self.agent(&agent)?;
        let block = string("block", &block)?;
        let text = string("text", &text)?;
        Ok(self.q.load_block(now, a, &block, &text)? as u32)
    }

    /// Reports that a request succeeded, with the backend's confirmed state of any fields
    /// it returned (merged when not older than what the queue holds).
    ///
    /// ```js
    /// q.ack(r.id);
    /// q.ack(r.id, [{ agent: "npc-1", block: "status", field: "mood", value: "calm", seq: 41 }]);
    /// ```
    pub fn ack(
        &mut self,
        #[wasm_bindgen(js_name = requestId)] request_id: f64,
        confirmed: Option<ConfirmedArg>,
    ) -> Result<(), JsError> {
        let id = request(request_id)?;
        let list: Vec<ConfirmedIn> = match confirmed {
            Some(v) => self.confirmed_shape.objects_in("confirmed", &v.into())?,
            None => Vec::new(),
        };
        let mut native = Vec::with_capacity(list.len());
        for (i, c) in list.into_iter().enumerate() {
            let agent = self.q.agent(&c.agent)?;
            if c.seq.fract() != 0.0 || c.seq < 0.0 {
                return Err(JsError::input(
                    alloc::format!("confirmed[{i}].seq"),
                    "must be a whole number of 0 or more",
                ));
            }
            native.push(Confirmed {
                agent,
                block: c.block,
                field: c.field,
                value: c.value.0,
                seq: Seq(c.seq as u64),
            });
        }
        Ok(self.q.ack(id, &native)?)
    }

    /// Reports that a request failed (HTTP error, timeout, lost answer). Its changes return
    /// to pending and are retried with backoff; `retryAfter` (seconds, from a 429's
    /// `Retry-After`) pauses all traffic at least that long.
    ///
    /// ```js
    /// q.fail(now, r.id, 2);     // 429 with Retry-After: 2
    /// q.fail(now, r.id);        // 5xx or timeout
    /// ```
    pub fn fail(
        &mut self,
        now: f64,
        #[wasm_bindgen(js_name = requestId)] request_id: f64,
        #[wasm_bindgen(js_name = retryAfter)] retry_after: Option<f64>,
    ) -> Result<(), JsError> {
        let id = request(request_id)?;
        Ok(self.q.fail(now, id, retry_after)?)
    }

    /// Asks whether an agent's LLM decision may proceed now: `fresh`, or `syncing` (its
    /// changes go out urgently at the next `poll`; ask again once that is acked).
    ///
    /// ```js
    /// if (q.decide(now, "npc-1").kind === "fresh") callTheLlm();
    /// ```
    #[wasm_bindgen(unchecked_return_type = "Decision")]
    pub fn decide(
        &mut self,
        now: f64,
        #[wasm_bindgen(unchecked_param_type = "string")] agent: JsValue,
    ) -> Result<JsValue, JsError> {
        let a = self.agent(&agent)?;
        to_js(&DecisionOut::from(self.q.decide(a, now)?))
    }

    /// Buffers a chat message to an agent; it leaves with the agent's other waiting
    /// messages as one `inference` request.
    ///
    /// ```js
    /// q.chat(now, "npc-1", "player_7", "Where is the smith?");
    /// ```
    pub fn chat(
        &mut self,
        now: f64,
        #[wasm_bindgen(unchecked_param_type = "string")] agent: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] sender: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] text: JsValue,
    ) -> Result<(), JsError> {
        let a = self.agent(&agent)?;
        let sender = string("sender", &sender)?;
        let text = string("text", &text)?;
        Ok(self.q.chat(now, a, &sender, &text)?)
    }

    /// Removes an agent (a despawned NPC): what it still had waiting is dropped and
    /// reported as events. Using its id again later registers it anew (a respawn).
    ///
    /// ```js
    /// q.removeAgent("npc-1");
    /// q.drainEvents(); // [{ type: "agentRemoved", agent: "npc-1", ... }]
    /// ```
    #[wasm_bindgen(js_name = removeAgent)]
    pub fn remove_agent(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] agent: JsValue,
    ) -> Result<(), JsError> {
        let name = string("agent", &agent)?;
        let known = self
            .q
            .symbols
            .lookup(&name)
            .and_then(|s| self.q.agent_index.get(&s).copied());
        let a = known.ok_or(JsError::NoSuchAgent { agent: name })?;
        Ok(self.q.remove_agent(a)?)
    }

    /// A snapshot of the counters.
    ///
    /// ```js
    /// const { calls, queueDepth, staleness } = q.metrics();
    /// ```
    #[wasm_bindgen(unchecked_return_type = "Metrics")]
    pub fn metrics(&mut self) -> Result<JsValue, JsError> {
        to_js(&MetricsOut::from(self.q.metrics()))
    }

    /// Events since the last call, oldest first: agent removals, released dependencies,
    /// trimmed groups.
    ///
    /// ```js
    /// for (const e of q.drainEvents()) if (e.type === "dependencyReleased") log(e);
    /// ```
    #[wasm_bindgen(js_name = drainEvents, unchecked_return_type = "QueueEvent[]")]
    pub fn drain_events(&mut self) -> Result<JsValue, JsError> {
        let events = self.q.drain_events();
        let out: Vec<EventOut> = events
            .into_iter()
            .map(|e| match e {
                Event::AgentRemoved {
                    name,
                    pending_fields,
                    chat_messages,
                    ..
                } => EventOut::AgentRemoved {
                    agent: name,
                    pending_fields,
                    chat_messages,
                },
                Event::DependencyReleased {
                    dependent,
                    dependency,
                } => EventOut::DependencyReleased {
                    dependent: dependent.into(),
                    dependency: dependency.into(),
                },
                Event::GroupTrimmed { group, agent } => EventOut::GroupTrimmed {
                    group: group.0 as f64,
                    agent: String::from(self.q.agent_name(agent).unwrap_or("?")),
                },
                Event::BlockUnreadable {
                    agent,
                    block,
                    lines,
                } => EventOut::BlockUnreadable {
                    agent: String::from(self.q.agent_name(agent).unwrap_or("?")),
                    block,
                    lines: lines
                        .into_iter()
                        .map(|l| LineOut {
                            line: l.line as u32,
                            text: l.text,
                            reason: l.reason,
                        })
                        .collect(),
                },
            })
            .collect();
        to_js(&out)
    }

    /// Whether nothing is waiting: no pending field, no chat, nothing in flight.
    #[wasm_bindgen(js_name = isIdle)]
    pub fn is_idle(&self) -> bool {
        self.q.is_idle()
    }
}

/// A request id from JavaScript (a whole number; the queue checks it is in flight).
fn request(id: f64) -> JsResult<RequestId> {
    if id.fract() != 0.0 || !(0.0..=9007199254740992.0).contains(&id) {
        return Err(JsError::input(
            "requestId",
            alloc::format!("must be the whole-number id of a request, got {id}"),
        ));
    }
    Ok(RequestId(id as u64))
}

/// `joinGroup`'s fields: `[[field, value], ...]` in order, or an object (in its key order).
fn member_fields(v: JsValue) -> JsResult<Vec<(String, Value)>> {
    if v.is_undefined() || v.is_null() {
        return Ok(Vec::new());
    }
    let entries: js_sys::Array = if js_sys::Array::is_array(&v) {
        v.unchecked_into()
    } else if v.is_object() {
        js_sys::Object::entries(v.unchecked_ref())
    } else {
        return Err(JsError::input(
            "fields",
            alloc::format!(
                "must be a list of [field, value] pairs or an object, got {}",
                config::type_of(&v)
            ),
        ));
    };
    let mut out = Vec::with_capacity(entries.length() as usize);
    for (i, e) in entries.iter().enumerate() {
        let what = alloc::format!("fields[{i}]");
        let pair: (String, ValueIn) = from_js(&what, &e)?;
        out.push((pair.0, pair.1 .0));
    }
    Ok(out)
}
