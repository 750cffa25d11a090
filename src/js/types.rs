//! The shapes that cross the Node boundary: their TypeScript declarations (the generated
//! `.d.ts` carries them) and their serde forms.

use crate::ids::{AgentId, ChangeId, Sym};
use crate::metrics::{LatencySummary, Metrics};
use crate::queue::{Decision, Priority};
use crate::value::Value;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::{wasm_bindgen, JsValue};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** A field's value: a finite number, a string, a boolean, or `null` (the field is cleared). */
export type FieldValue = number | string | boolean | null;

/** How urgently a change must reach the backend (`set` and `atomic`; default `"normal"`). */
export type Priority = "low" | "normal" | "high" | "critical";

/**
 * Settings of a queue; every key is optional (the defaults of docs/semantics.md). Times
 * are seconds. A bad value throws an `Error` with `code` `"Config"` (out of range) or
 * `"BadInput"` (wrong type, unknown key) whose message names the key.
 */
export interface SyncQueueConfig {
  /** An agent's critical changes go out at most once per this window (default 5). */
  debounce?: number;
  /** The debounce window in combat (default 1). */
  combatDebounce?: number;
  /** A decision may use acknowledged state at most this old (default 15). */
  freshness?: number;
  /** The freshness threshold in combat (default 1). */
  combatFreshness?: number;
  /** Routine changes go out together at this period (default 30). */
  batchInterval?: number;
  /** High-priority changes go out within this time (default 1). */
  highPriorityDelay?: number;
  /** A health change of at least this many points is critical (default 20). */
  healthCriticalPoints?: number;
  /** A health change of at least this many points is high priority (default 10). */
  healthNotablePoints?: number;
  /** Combat mode ends this long after the last `Combat` state or critical hit (default 10). */
  combatExit?: number;
  /** HTTP calls per rolling minute (default 400; HttpService allows 500). */
  budgetPerMinute?: number;
  /** Share of the budget routine traffic may use (default 0.8). */
  routineShare?: number;
  /** Calls that may go out back to back before pacing (default 40). */
  budgetBurst?: number;
  /** Agent-block updates per request (default 100). */
  maxAgentBlocksPerRequest?: number;
  /** Bytes of JSON body per request (default 65536). */
  maxRequestBytes?: number;
  /** Batch requests one poll may open; a larger batch goes over the next polls (default 2). */
  batchRequestsPerPoll?: number;
  /** First retry delay (default 1). */
  retryBase?: number;
  /** Longest retry delay (default 30). */
  retryMax?: number;
  /** Retry jitter as a fraction of the delay, 0 to 1 (default 0.25). */
  retryJitter?: number;
  /** Seed of the jitter generator (default 0x5eed): a whole number, or a BigInt. */
  seed?: number | bigint;
  /** Chat: flush this long after the last message (default 0.5). */
  chatWindow?: number;
  /** Chat: flush at most this long after the first message (default 1.5). */
  chatMaxWait?: number;
  /** Chat: flush when this many messages wait (default 16). */
  chatMaxMessages?: number;
  /** `"batch"`: the project's batch endpoint (default); `"letta"`: Letta's own API. */
  target?: "batch" | "letta";
  /** Letta's API: characters a block's text may hold (default 5000; Letta 0.16.8's own default is 100000, unenforced). */
  defaultBlockLimit?: number;
  /** Letta's API: the limit of each block label that differs from `defaultBlockLimit`. */
  blockLimits?: Record<string, number>;
}

/**
 * The handle of one queued change, returned by every change call. Pass it back as is in
 * `after` to make another change wait for this one; `seq` is its sequence number.
 */
export interface ChangeHandle {
  readonly seq: number;
  readonly agentHandle: number;
  readonly blockSym: number;
  readonly fieldSym: number;
}

/** One field change for `set` and `atomic`. */
export interface FieldChange {
  /** The agent's backend id. */
  agent: string;
  /** Block label, e.g. `"status"`. */
  block: string;
  /** Field name inside the block. */
  field: string;
  value: FieldValue;
  priority?: Priority;
  /** Changes that must be delivered before this one. */
  after?: ChangeHandle[];
}

/** A group member's fields for `joinGroup`: ordered pairs, or an object. */
export type MemberFields = Array<[string, FieldValue]> | Record<string, FieldValue>;

/** The backend's confirmed state of one field, passed to `ack`. */
export interface ConfirmedField {
  agent: string;
  block: string;
  field: string;
  value: FieldValue;
  seq: number;
}

/** One field value in a request; the backend applies it only if `seq` is higher than its own. */
export interface SentChange {
  agent: string;
  block: string;
  field: string;
  value: FieldValue;
  seq: number;
  /** The atomic group it travels in, or `null`. */
  group: number | null;
}

/** One chat message of an inference request. */
export interface ChatMessage {
  sender: string;
  text: string;
  /** When it was received (the `now` of `chat`). */
  at: number;
}

/** One request for you to send; report its outcome with `ack(id)` or `fail(now, id, retryAfter)`. */
export interface SyncRequest {
  id: number;
  kind: "batch" | "urgent" | "inference";
  /** The agent of an inference request, `null` for batch and urgent requests. */
  agent: string | null;
  /** Field changes in the order the backend must apply them. */
  changes: SentChange[];
  /** Chat messages of an inference request, oldest first. */
  messages: ChatMessage[];
  /** HTTP calls it costs under the configured target. */
  calls: number;
  /** Upper bound of its JSON body in bytes (batch endpoint encoding). */
  bodyBytes: number;
  /** Which attempt this is for its oldest content (1 = first try). */
  attempt: number;
  /**
   * Letta's API: one `PATCH /v1/agents/{agent}/core-memory/blocks/{label}` per block the
   * request writes, with body `{ value }`; empty for the batch endpoint and inference.
   */
  blocks: BlockWrite[];
}

/** One block write on Letta's API: the block's whole text once this write lands. */
export interface BlockWrite {
  agent: string;
  label: string;
  value: string;
}

/** A line of a block read from Letta that is not a field of the block format. */
export interface UnreadableLine {
  /** 1-based line number. */
  line: number;
  text: string;
  reason: string;
}

/** The answer of `decide`. */
export type Decision =
  | { kind: "fresh"; staleness: number }
  | { kind: "syncing"; staleness: number; threshold: number };

/** A latency or staleness distribution in seconds. */
export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/** A snapshot of the queue's counters. */
export interface Metrics {
  requestsBatch: number;
  requestsUrgent: number;
  requestsInference: number;
  calls: number;
  callsLastMinute: number;
  changesIn: number;
  changesSent: number;
  coalesced: number;
  queueDepth: number;
  inFlight: number;
  failures: number;
  decisionsFresh: number;
  decisionsSynced: number;
  staleness: LatencySummary;
  stalenessCombat: LatencySummary;
  criticalLatency: LatencySummary;
  chatMessages: number;
  agentsRemoved: number;
}

/** Something the queue reports that is not a request: never a silent drop. */
export type QueueEvent =
  | { type: "agentRemoved"; agent: string; pendingFields: number; chatMessages: number }
  | { type: "dependencyReleased"; dependent: ChangeHandle; dependency: ChangeHandle }
  | { type: "groupTrimmed"; group: number; agent: string }
  | { type: "blockUnreadable"; agent: string; block: string; lines: UnreadableLine[] };
"#;

#[wasm_bindgen]
extern "C" {
    /// `SyncQueueConfig` (an optional argument: an imported type keeps the `?` in the
    /// `.d.ts`, which `unchecked_param_type` would drop).
    #[wasm_bindgen(typescript_type = "SyncQueueConfig")]
    pub type ConfigArg;
    /// `ConfirmedField[]`, optional in `ack`.
    #[wasm_bindgen(typescript_type = "ConfirmedField[]")]
    pub type ConfirmedArg;
    /// `MemberFields`, optional in `joinGroup`.
    #[wasm_bindgen(typescript_type = "MemberFields")]
    pub type MemberFieldsArg;
}

#[wasm_bindgen(inline_js = "
export function make_handle(seq, agentHandle, blockSym, fieldSym) {
  return { seq, agentHandle, blockSym, fieldSym };
}
export function unknown_key(obj, keys) {
  for (const k of Object.keys(obj)) if (!keys.includes(k)) return k;
  return undefined;
}
")]
extern "C" {
    /// A `ChangeHandle` object, built on the JavaScript side (one call with four numbers
    /// instead of building it property by property from Rust: change calls are the hot
    /// path).
    pub(crate) fn make_handle(
        seq: f64,
        agent_handle: u32,
        block_sym: u32,
        field_sym: u32,
    ) -> JsValue;
    /// The first own key of `obj` that is not in `keys`, if any.
    pub(crate) fn unknown_key(obj: &JsValue, keys: &JsValue) -> Option<String>;
}

// ----- inputs -----

/// A field value from JavaScript.
pub(crate) struct ValueIn(pub(crate) Value);

impl<'de> Deserialize<'de> for ValueIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ValueIn;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, a string, a boolean or null")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ValueIn, E> {
                Ok(ValueIn(Value::Number(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ValueIn, E> {
                Ok(ValueIn(Value::Number(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ValueIn, E> {
                Ok(ValueIn(Value::Number(v as f64)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ValueIn, E> {
                Ok(ValueIn(Value::Bool(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ValueIn, E> {
                Ok(ValueIn(Value::str(v)))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<ValueIn, E> {
                Ok(ValueIn(Value::Str(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ValueIn, E> {
                Ok(ValueIn(Value::Cleared))
            }
            fn visit_none<E: de::Error>(self) -> Result<ValueIn, E> {
                Ok(ValueIn(Value::Cleared))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PriorityIn {
    Low,
    Normal,
    High,
    Critical,
}

impl From<PriorityIn> for Priority {
    fn from(p: PriorityIn) -> Priority {
        match p {
            PriorityIn::Low => Priority::Low,
            PriorityIn::Normal => Priority::Normal,
            PriorityIn::High => Priority::High,
            PriorityIn::Critical => Priority::Critical,
        }
    }
}

/// A change handle as JavaScript holds it.
#[derive(Deserialize, Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HandleJs {
    pub(crate) seq: f64,
    pub(crate) agent_handle: u32,
    pub(crate) block_sym: u32,
    pub(crate) field_sym: u32,
}

impl From<ChangeId> for HandleJs {
    fn from(c: ChangeId) -> HandleJs {
        HandleJs {
            seq: c.seq as f64,
            agent_handle: c.agent.0,
            block_sym: c.block.0,
            field_sym: c.field.0,
        }
    }
}

impl HandleJs {
    /// The native handle (checked by the queue before use: see `SyncQueue::handle`).
    pub(crate) fn to_native(self) -> Option<ChangeId> {
        if self.seq.fract() != 0.0 || !(1.0..=9007199254740992.0).contains(&self.seq) {
            return None;
        }
        Some(ChangeId {
            seq: self.seq as u64,
            agent: AgentId(self.agent_handle),
            block: Sym(self.block_sym),
            field: Sym(self.field_sym),
        })
    }
}

#[derive(Deserialize)]
pub(crate) struct ChangeIn {
    pub(crate) agent: String,
    pub(crate) block: String,
    pub(crate) field: String,
    pub(crate) value: ValueIn,
    #[serde(default)]
    pub(crate) priority: Option<PriorityIn>,
    #[serde(default)]
    pub(crate) after: Vec<HandleJs>,
}

#[derive(Deserialize)]
pub(crate) struct ConfirmedIn {
    pub(crate) agent: String,
    pub(crate) block: String,
    pub(crate) field: String,
    pub(crate) value: ValueIn,
    pub(crate) seq: f64,
}

impl ChangeIn {
    /// The keys of a `FieldChange`.
    pub(crate) const KEYS: &'static [&'static str] =
        &["agent", "block", "field", "value", "priority", "after"];
}

impl ConfirmedIn {
    /// The keys of a `ConfirmedField`.
    pub(crate) const KEYS: &'static [&'static str] = &["agent", "block", "field", "value", "seq"];
}

// ----- outputs -----

/// A field value for JavaScript (`null` when cleared).
pub(crate) struct ValueOut<'a>(pub(crate) &'a Value);

impl Serialize for ValueOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Number(n) => s.serialize_f64(*n),
            Value::Str(t) => s.serialize_str(t),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Cleared => s.serialize_unit(),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct SentChangeOut<'a> {
    pub(crate) agent: &'a str,
    pub(crate) block: &'a str,
    pub(crate) field: &'a str,
    pub(crate) value: ValueOut<'a>,
    pub(crate) seq: f64,
    pub(crate) group: Option<f64>,
}

#[derive(Serialize)]
pub(crate) struct BlockWriteOut<'a> {
    pub(crate) agent: &'a str,
    pub(crate) label: &'a str,
    pub(crate) value: &'a str,
}

#[derive(Serialize)]
pub(crate) struct LineOut {
    pub(crate) line: u32,
    pub(crate) text: String,
    pub(crate) reason: &'static str,
}

#[derive(Serialize)]
pub(crate) struct MessageOut<'a> {
    pub(crate) sender: &'a str,
    pub(crate) text: &'a str,
    pub(crate) at: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RequestOut<'a> {
    pub(crate) id: f64,
    pub(crate) kind: &'static str,
    pub(crate) agent: Option<&'a str>,
    pub(crate) changes: Vec<SentChangeOut<'a>>,
    pub(crate) messages: Vec<MessageOut<'a>>,
    pub(crate) calls: u32,
    pub(crate) body_bytes: u32,
    pub(crate) attempt: u32,
    pub(crate) blocks: Vec<BlockWriteOut<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum DecisionOut {
    Fresh { staleness: f64 },
    Syncing { staleness: f64, threshold: f64 },
}

impl From<Decision> for DecisionOut {
    fn from(d: Decision) -> DecisionOut {
        match d {
            Decision::Fresh { staleness } => DecisionOut::Fresh { staleness },
            Decision::Syncing {
                staleness,
                threshold,
            } => DecisionOut::Syncing {
                staleness,
                threshold,
            },
        }
    }
}

#[derive(Serialize)]
pub(crate) struct LatencyOut {
    count: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

impl From<LatencySummary> for LatencyOut {
    fn from(l: LatencySummary) -> LatencyOut {
        LatencyOut {
            count: l.count as f64,
            p50: l.p50,
            p99: l.p99,
            max: l.max,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MetricsOut {
    requests_batch: f64,
    requests_urgent: f64,
    requests_inference: f64,
    calls: f64,
    calls_last_minute: u32,
    changes_in: f64,
    changes_sent: f64,
    coalesced: f64,
    queue_depth: f64,
    in_flight: f64,
    failures: f64,
    decisions_fresh: f64,
    decisions_synced: f64,
    staleness: LatencyOut,
    staleness_combat: LatencyOut,
    critical_latency: LatencyOut,
    chat_messages: f64,
    agents_removed: f64,
}

impl From<Metrics> for MetricsOut {
    fn from(m: Metrics) -> MetricsOut {
        MetricsOut {
            requests_batch: m.requests_batch as f64,
            requests_urgent: m.requests_urgent as f64,
            requests_inference: m.requests_inference as f64,
            calls: m.calls as f64,
            calls_last_minute: m.calls_last_minute,
            changes_in: m.changes_in as f64,
            changes_sent: m.changes_sent as f64,
            coalesced: m.coalesced as f64,
            queue_depth: m.queue_depth as f64,
            in_flight: m.in_flight as f64,
            failures: m.failures as f64,
            decisions_fresh: m.decisions_fresh as f64,
            decisions_synced: m.decisions_synced as f64,
            staleness: m.staleness.into(),
            staleness_combat: m.staleness_combat.into(),
            critical_latency: m.critical_latency.into(),
            chat_messages: m.chat_messages as f64,
            agents_removed: m.agents_removed as f64,
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub(crate) enum EventOut {
    #[serde(rename_all = "camelCase")]
    AgentRemoved {
        agent: String,
        pending_fields: u32,
        chat_messages: u32,
    },
    DependencyReleased {
        dependent: HandleJs,
        dependency: HandleJs,
    },
    GroupTrimmed {
        group: f64,
        agent: String,
    },
    BlockUnreadable {
        agent: String,
        block: String,
        lines: Vec<LineOut>,
    },
}

/// Handles of `atomic`'s changes, in order.
pub(crate) type HandlesOut = Vec<HandleJs>;
