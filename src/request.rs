//! Requests are data: the bridge turns each into HTTP calls and reports the outcome.

use crate::ids::{AgentId, GroupId, RequestId, Seq, Sym};
use crate::value::Value;
use alloc::string::String;
use alloc::vec::Vec;

/// What a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestKind {
    /// Routine traffic: high, normal and low changes.
    Batch,
    /// Critical changes and decision syncs (with the agents' other pending fields).
    Urgent,
    /// Aggregated chat for one agent: one call of the backend's messages endpoint.
    Inference,
}

impl RequestKind {
    /// The lower-case name used in JSON and in the Luau API.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Batch => "batch",
            RequestKind::Urgent => "urgent",
            RequestKind::Inference => "inference",
        }
    }
}

/// One field value in a request. The backend applies it only if `seq` is higher than the
/// sequence number it holds for that field.
#[derive(Clone, Debug, PartialEq)]
pub struct SentChange {
    /// The agent.
    pub agent: AgentId,
    /// The agent's id at the backend.
    pub agent_name: Sym,
    /// Block label.
    pub block: Sym,
    /// Field name inside the block.
    pub field: Sym,
    /// The value (`Cleared` removes the field).
    pub value: Value,
    /// Its sequence number.
    pub seq: Seq,
    /// The atomic group it travels in, if any.
    pub group: Option<GroupId>,
}

/// One chat message waiting for an agent's inference.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatMessage {
    /// Who said it (a player or NPC id).
    pub sender: String,
    /// What was said.
    pub text: String,
    /// When it was received.
    pub at: f64,
}

/// One request for the bridge to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Report its outcome with this id.
    pub id: RequestId,
    /// Batch, urgent or inference.
    pub kind: RequestKind,
    /// Field changes, in the order the backend must apply them: by priority (critical,
    /// high, normal, low), then by the order the changes were made; an atomic group's
    /// changes stay together in the order given.
    pub changes: Vec<SentChange>,
    /// For inference requests: the agent whose messages these are.
    pub inference_agent: Option<AgentId>,
    /// For inference requests: the messages, oldest first.
    pub messages: Vec<ChatMessage>,
    /// HTTP calls this request costs under the configured target.
    pub calls: u32,
    /// Upper bound of the JSON body's size in bytes (batch endpoint encoding).
    pub body_bytes: u32,
    /// Which attempt this is for its oldest content (1 = first try).
    pub attempt: u32,
    /// Letta's API: one write per agent-block the request touches, in the order the
    /// blocks first appear in `changes`, each with the block's whole text as Letta will
    /// hold it once this write lands. Empty for the batch endpoint and for inference.
    pub blocks: Vec<BlockWrite>,
}

/// One PATCH of `/v1/agents/{agent_id}/core-memory/blocks/{label}` on Letta's API: the
/// block's full value, rendered by [`crate::block_text::render`] from the acknowledged
/// fields overlaid with what the request sends.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockWrite {
    /// The agent.
    pub agent: AgentId,
    /// The agent's id at the backend.
    pub agent_name: Sym,
    /// Block label.
    pub block: Sym,
    /// The block's whole text.
    pub text: String,
}

/// The backend's confirmed state of one field, passed to `ack` to be merged. It is merged
/// only if `seq` is not older than what the queue holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Confirmed {
    /// The agent.
    pub agent: AgentId,
    /// Block label.
    pub block: String,
    /// Field name.
    pub field: String,
    /// The value the backend holds.
    pub value: Value,
    /// The sequence number the backend holds for it.
    pub seq: Seq,
}

/// [`Confirmed`] with its names as symbols ([`crate::Queue::intern`]): the form a facade that
/// passes handles (the Luau facade) confirms fields in, with no string per field.
/// [`crate::Queue::ack_keyed`] merges it exactly as [`crate::Queue::ack`] merges a
/// [`Confirmed`] of the same names.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfirmedKey {
    /// The agent.
    pub agent: AgentId,
    /// Block label.
    pub block: Sym,
    /// Field name.
    pub field: Sym,
    /// The value the backend holds.
    pub value: Value,
    /// The sequence number the backend holds for it.
    pub seq: Seq,
}
