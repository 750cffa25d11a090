//! npc-sync: one deterministic queue between a Roblox game server and an LLM agent
//! backend (Letta).
//!
//! Game code reports every change as it happens; the queue decides what is sent, when,
//! in which request and in which order. The queue never reads a clock and never does
//! I/O: `now` (seconds, any monotonic origin) is passed in, requests come out as data and
//! outcomes go back in. The same input trace therefore gives the same output natively,
//! in Node and in Luau.
//!
//! ```
//! use npc_sync::{Config, Queue, Value, Priority, Decision};
//!
//! let mut q = Queue::new(Config::default()).unwrap();
//! let guard = q.agent("agent-guard-1").unwrap();
//! q.set_location(0.0, guard, "plaza").unwrap();
//! q.set_health(0.0, guard, 100.0).unwrap();
//! // A drop of 30 points is critical: it goes out at the next poll, in an urgent request.
//! q.set_health(0.5, guard, 70.0).unwrap();
//! let requests = q.poll(0.5).unwrap();
//! assert_eq!(requests.len(), 1);
//! assert_eq!(requests[0].kind, npc_sync::RequestKind::Urgent);
//! q.ack(requests[0].id, &[]).unwrap();
//! assert!(matches!(q.decide(guard, 1.0).unwrap(), Decision::Fresh { .. }));
//! ```
#![no_std]
// wasm-bindgen's generated glue needs `unsafe`; everything hand-written stays without it.
#![cfg_attr(not(feature = "js"), forbid(unsafe_code))]
#![cfg_attr(feature = "js", deny(unsafe_code))]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod backoff;
pub mod block_text;
mod budget;
mod chat;
mod config;
mod error;
mod ids;
/// The Node facade: a `SyncQueue` class for JavaScript (feature `js`, built into `pkg/node`).
#[cfg(feature = "js")]
#[allow(unsafe_code)]
pub mod js;
mod metrics;
mod queue;
mod request;
mod stats;
mod symbols;
mod value;
mod window;

pub use config::{Config, ConfigError, Target, HTTP_SERVICE_LIMIT_PER_MINUTE};
pub use error::Error;
pub use ids::{AgentId, ChangeId, RequestId, Seq, Sym};
pub use metrics::{LatencySummary, Metrics};
pub use queue::{
    AbsorbTarget, Absorbable, Absorbed, Change, Decision, Event, GrantChange, KeptValue, Priority,
    Queue, Slot,
};
pub use request::{
    BlockWrite, ChatMessage, Confirmed, ConfirmedKey, Request, RequestKind, SentChange,
};
pub use symbols::Limits;
pub use value::Value;
pub use window::RollingWindow;

/// Well-known block and field names used by the convenience change calls.
pub mod names {
    /// The agent's status block.
    pub const STATUS: &str = "status";
    /// The agent's group block: one set of fields per member entity.
    pub const GROUP_MEMBERS: &str = "group_members";
    /// `status.location`.
    pub const LOCATION: &str = "location";
    /// `status.health`.
    pub const HEALTH: &str = "health";
    /// `status.state`.
    pub const STATE: &str = "state";
    /// `status.description`.
    pub const DESCRIPTION: &str = "description";
    /// The state that puts an agent into combat mode.
    pub const COMBAT_STATE: &str = "Combat";
    /// `group_members.<member>.is_present`.
    pub const IS_PRESENT: &str = "is_present";
}
