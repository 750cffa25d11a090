//! Handles. Each is a newtype so an agent can never be passed where a request is meant.

use core::fmt;

/// An agent (one NPC) known to a queue. Issued by [`crate::Queue::agent`]; never reused,
/// even after the agent is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentId(pub(crate) u32);

impl AgentId {
    /// The handle as a small integer (stable for the queue's lifetime).
    pub fn index(self) -> u32 {
        self.0
    }

    /// The handle with this index (for facades that pass handles as numbers; the queue
    /// checks it before use).
    pub fn from_index(index: u32) -> AgentId {
        AgentId(index)
    }
}

/// A position in the queue's single change counter. The backend applies a field value
/// only when its sequence number is higher than the one it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seq(pub u64);

/// The handle of one queued change, returned by every change call; dependencies name it.
/// It holds the change's sequence number and its field, so resolving it needs no table
/// that would grow with every change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeId {
    pub(crate) seq: u64,
    pub(crate) agent: AgentId,
    pub(crate) block: Sym,
    pub(crate) field: Sym,
}

impl ChangeId {
    /// The sequence number this change was given.
    pub fn seq(self) -> Seq {
        Seq(self.seq)
    }

    /// The agent whose field this change sets.
    pub fn agent(self) -> AgentId {
        self.agent
    }
}

/// One request emitted by [`crate::Queue::poll`]; report its outcome with `ack` or `fail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// An interned name: agent id, block label or field name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sym(pub u32);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request #{}", self.0)
    }
}

impl fmt::Display for ChangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "change #{}", self.seq)
    }
}

/// A pending unit of work: one field's coalesced change, or one atomic group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct UnitId(pub(crate) u64);

/// An atomic group, as submitted by [`crate::Queue::atomic`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u64);
