//! The native API's one error type. Every error leaves the queue exactly as it was.

use crate::block_text::BlockTextError;
use crate::config::ConfigError;
use crate::ids::RequestId;
use alloc::string::String;
use core::fmt;

/// Why a call was refused. The queue is unchanged after any error.
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// The configuration is invalid.
    Config(ConfigError),
    /// A time argument is NaN, infinite or negative.
    BadTime {
        /// Which argument.
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// `now` is earlier than a time the queue has already seen.
    TimeWentBackwards {
        /// The value given.
        now: f64,
        /// The latest time seen.
        latest: f64,
    },
    /// A number value is NaN or infinite.
    BadNumber {
        /// Agent id.
        agent: String,
        /// `block.field`.
        field: String,
        /// The value given.
        value: f64,
    },
    /// A name or string is empty or longer than allowed.
    BadString {
        /// Which argument (agent id, block label, field name, value, chat text...).
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// Why.
        reason: &'static str,
    },
    /// The agent handle was never issued by this queue.
    UnknownAgent {
        /// The handle's index.
        index: u32,
    },
    /// The agent was removed; its handle is dead.
    AgentRemoved {
        /// Agent id.
        agent: String,
    },
    /// A dependency names a change handle this queue never issued.
    UnknownChange {
        /// The handle's sequence number.
        seq: u64,
    },
    /// A dependency names a change of a removed agent.
    DependencyRemoved {
        /// The handle's sequence number.
        seq: u64,
        /// The removed agent's id.
        agent: String,
    },
    /// `ack` or `fail` names a request that is not in flight.
    UnknownRequest {
        /// The request.
        request: RequestId,
    },
    /// An atomic group cannot be queued.
    BadGroup {
        /// Why.
        reason: String,
    },
    /// A handle passed as a number (a slot, an interned string) was never issued.
    UnknownHandle {
        /// What kind of handle.
        what: &'static str,
        /// The number given.
        index: u32,
    },
    /// `forget_agent` names an agent that is still registered (remove it first).
    AgentLive {
        /// Agent id.
        agent: String,
    },
    /// `Retry-After` is NaN, infinite or negative.
    BadRetryAfter {
        /// The value given.
        value: f64,
    },
    /// Letta's API: the change would make a block's text unrenderable (over its limit, or
    /// a field name the block format cannot hold).
    BlockText {
        /// Agent id.
        agent: String,
        /// What is wrong, naming the block (and the field or the limit).
        error: BlockTextError,
    },
    /// Letta's API: a block read from Letta cannot be taken in while a write of that
    /// block is in flight (the read may or may not show the write).
    BlockBusy {
        /// Agent id.
        agent: String,
        /// Block label.
        block: String,
    },
    /// Changes kept outside the core by a facade cannot be taken in
    /// ([`crate::Queue::absorb`]): the facade broke the absorption contract. Nothing was
    /// applied.
    Absorb {
        /// The slot's index, when one record is at fault.
        slot: Option<u32>,
        /// Why.
        reason: &'static str,
    },
}

impl Error {
    /// The variant's name (`"UnknownRequest"`, `"BadGroup"`, ...): a stable code for
    /// facades (the Node package's `Error.code`) and the differential traces, whose
    /// messages may be worded per runtime.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "Config",
            Error::BadTime { .. } => "BadTime",
            Error::TimeWentBackwards { .. } => "TimeWentBackwards",
            Error::BadNumber { .. } => "BadNumber",
            Error::BadString { .. } => "BadString",
            Error::UnknownAgent { .. } => "UnknownAgent",
            Error::AgentRemoved { .. } => "AgentRemoved",
            Error::UnknownChange { .. } => "UnknownChange",
            Error::DependencyRemoved { .. } => "DependencyRemoved",
            Error::UnknownRequest { .. } => "UnknownRequest",
            Error::BadGroup { .. } => "BadGroup",
            Error::UnknownHandle { .. } => "UnknownHandle",
            Error::AgentLive { .. } => "AgentLive",
            Error::BadRetryAfter { .. } => "BadRetryAfter",
            Error::BlockText { .. } => "BlockText",
            Error::BlockBusy { .. } => "BlockBusy",
            Error::Absorb { .. } => "Absorb",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => e.fmt(f),
            Error::BadTime { what, value } => {
                write!(
                    f,
                    "`{what}` must be a finite time of 0 s or more, got {value}"
                )
            }
            Error::TimeWentBackwards { now, latest } => write!(
                f,
                "`now` went backwards: {now} is before {latest}, a time already seen"
            ),
            Error::BadNumber {
                agent,
                field,
                value,
            } => write!(
                f,
                "agent '{agent}', field `{field}`: number must be finite, got {value}"
            ),
            Error::BadString { what, len, reason } => {
                write!(f, "{what} ({len} bytes): {reason}")
            }
            Error::UnknownAgent { index } => {
                write!(f, "agent handle #{index} was not issued by this queue")
            }
            Error::AgentRemoved { agent } => write!(f, "agent '{agent}' was removed"),
            Error::UnknownChange { seq } => {
                write!(f, "change #{seq} was never issued by this queue")
            }
            Error::DependencyRemoved { seq, agent } => write!(
                f,
                "dependency on change #{seq} of agent '{agent}', which was removed: it will never be delivered"
            ),
            Error::UnknownRequest { request } => {
                write!(
                    f,
                    "{request} is not in flight (never emitted, or already reported)"
                )
            }
            Error::AgentLive { agent } => write!(
                f,
                "agent '{agent}' is still registered: remove it before forgetting it"
            ),
            Error::BadGroup { reason } => write!(f, "atomic group rejected: {reason}"),
            Error::UnknownHandle { what, index } => {
                write!(f, "{what} handle #{index} was not issued by this queue")
            }
            Error::BadRetryAfter { value } => {
                write!(
                    f,
                    "`retry_after` must be a finite number of seconds of 0 or more, got {value}"
                )
            }
            Error::BlockText { agent, error } => write!(f, "agent '{agent}': {error}"),
            Error::BlockBusy { agent, block } => write!(
                f,
                "agent '{agent}', block `{block}`: a write of it is in flight; take in what Letta holds before writing it"
            ),
            Error::Absorb {
                slot: Some(slot),
                reason,
            } => write!(f, "kept changes of slot #{slot} cannot be taken in: {reason}"),
            Error::Absorb { slot: None, reason } => {
                write!(f, "kept changes cannot be taken in: {reason}")
            }
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}
