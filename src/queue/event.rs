//! What the queue reports besides requests ([`crate::Queue::drain_events`]).

use crate::ids::{AgentId, ChangeId, GroupId};
use alloc::string::String;
use alloc::vec::Vec;

/// Something the queue reports that is not a request: never a silent drop.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// An agent was removed; what it still had waiting is dropped.
    AgentRemoved {
        /// The agent.
        agent: AgentId,
        /// Its backend id.
        name: String,
        /// Fields that were waiting to be sent.
        pending_fields: u32,
        /// Chat messages that were waiting for inference.
        chat_messages: u32,
    },
    /// A change depended on one that will never be delivered (its agent was removed); the
    /// dependency is released and the dependent goes on its own.
    DependencyReleased {
        /// The dependent change.
        dependent: ChangeId,
        /// The change it waited for.
        dependency: ChangeId,
    },
    /// A pending atomic group lost the changes of a removed agent; the rest stays whole.
    GroupTrimmed {
        /// The group.
        group: GroupId,
        /// The removed agent.
        agent: AgentId,
    },
    /// Letta's API: a block read from Letta ([`crate::Queue::load_block`]) has lines that are
    /// not fields of the block format (written by someone else). The fields that parsed
    /// were taken in; the next write of the block replaces the whole text, these lines
    /// included.
    BlockUnreadable {
        /// The agent.
        agent: AgentId,
        /// Block label.
        block: String,
        /// The lines that could not be read.
        lines: Vec<crate::block_text::LineError>,
    },
}
