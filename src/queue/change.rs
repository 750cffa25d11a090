//! The public description of a change: its priority and the change itself.

use crate::ids::{AgentId, ChangeId};
use crate::value::Value;
use alloc::vec::Vec;

/// How urgently a change must reach the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Routine refreshes: next routine batch, first to wait when the budget is tight.
    Low,
    /// Location, state, description: next routine batch.
    Normal,
    /// Notable health changes, group joins and leaves, tool results: within 1 s.
    High,
    /// Combat health drops, entering or leaving `Combat`, critical tool results: next poll.
    Critical,
}

/// One field change, for [`crate::Queue::set`] and [`crate::Queue::atomic`].
///
/// ```
/// use npc_sync::{Change, Priority, Queue, Config, Value};
/// let mut q = Queue::new(Config::default()).unwrap();
/// let a = q.agent("npc-1").unwrap();
/// let moved = q.set(0.0, Change::new(a, "status", "location", "cave".into())).unwrap();
/// let c = Change::new(a, "status", "torch", Value::Bool(true))
///     .priority(Priority::High)
///     .after(moved);
/// q.set(0.0, c).unwrap();
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Change<'a> {
    /// The agent.
    pub agent: AgentId,
    /// Block label.
    pub block: &'a str,
    /// Field name.
    pub field: &'a str,
    /// New value.
    pub value: Value,
    /// Priority (default normal).
    pub priority: Priority,
    /// Changes that must be delivered before this one.
    pub depends_on: Vec<ChangeId>,
}

impl<'a> Change<'a> {
    /// A normal-priority change with no dependency.
    pub fn new(agent: AgentId, block: &'a str, field: &'a str, value: Value) -> Self {
        Change {
            agent,
            block,
            field,
            value,
            priority: Priority::Normal,
            depends_on: Vec::new(),
        }
    }

    /// Sets the priority.
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self
    }

    /// Adds a dependency.
    pub fn after(mut self, dep: ChangeId) -> Self {
        self.depends_on.push(dep);
        self
    }
}
