//! One (or a few) integration tests per rule and default of `docs/semantics.md`, one
//! module per topic, plus the bad-input rules: every refused call names what was wrong and
//! leaves the queue as it was.

#[path = "../common/mod.rs"]
mod common;

mod atomic_groups;
mod bad_input;
mod budget;
mod chat;
mod coalescing;
mod combat;
mod critical;
mod decisions;
mod dependencies;
mod found_by_properties;
mod outcomes;
mod priorities;
mod removal_and_targets;
mod request_size;

// What every topic module takes in with `use super::*`.
use common::*;
use npc_sync::{
    AgentId, Change, ChangeId, Config, Confirmed, Decision, Error, Event, Priority, Queue, Request,
    RequestId, RequestKind, Seq, Target, Value,
};
