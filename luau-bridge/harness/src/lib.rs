//! A stand-in for the parts of Roblox that `pkg/roblox` and the examples touch, so the
//! generated core and the hand-written bridge run in a real Luau 0.740 VM (mlua), sandboxed
//! as Roblox runs scripts, interpreted or with native code generation:
//!
//! - `game:GetService` with `HttpService` (`RequestAsync` does real HTTP from Rust and yields
//!   the calling coroutine until the answer; `JSONEncode`/`JSONDecode` with Roblox's quirks;
//!   `GetSecret`), `RunService.Heartbeat`, `ReplicatedStorage`, `ServerScriptService`;
//! - `task.spawn/defer/delay/wait/cancel` and `os.clock` on a test clock advanced one
//!   Heartbeat frame at a time;
//! - `script` and `require` over folders of `.luau` files mounted as ModuleScripts
//!   (`init.luau` makes a folder a ModuleScript, as Rojo does).
//!
//! [`server::TestServer`] (from `npc-sync-testkit`) is the HTTP server the tests talk to:
//! the project's batch endpoint and Letta's block and message endpoints, with failures
//! injected on demand.

pub mod http;
pub mod json;
pub mod roblox;
pub mod tree;

/// The stand-in server (Letta and the batch endpoint) the tests talk to; it lives in
/// `npc-sync-testkit`, shared with the gateway's tests.
pub use npc_sync_testkit::server;
pub use roblox::{Options, Roblox};
