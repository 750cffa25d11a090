//! End-to-end runs (issue 10 items 1 and 2): a simulator scenario's calls
//! (`npc-sync-sim --calls`) drive the real product, the generated ModuleScript
//! (`pkg/roblox`, in a sandboxed Luau VM) or `pkg/node`, whose HTTP requests go through a
//! seeded fault-injecting [`proxy`] to the real batch endpoint server (`npc-sync-gateway`)
//! in front of a Letta stand-in, or to the Letta stand-in directly; [`check`] then judges
//! what arrived against what the game did. A Luau run can also measure the demo's
//! [`timeline`] (`docs/demo-timeline.md`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
pub mod budget;
pub mod check;
pub mod faults;
pub mod luau;
pub mod node;
pub mod proxy;
pub mod run;
pub mod runtime;
pub mod scenario;
pub mod timeline;
pub mod wire;
