//! The npc-sync core's Luau facade (contract: `luau-bridge/ABI.md`).
//!
//! Built for `wasm32v1-none` this crate is the module `wasm-to-luau` turns into the
//! ModuleScript of `pkg/roblox`: plain `extern "C"` exports taking and returning numbers,
//! strings passed through a scratch area, outputs written as fixed-layout records the Luau
//! bridge reads with `buffer.read*`. No wasm-bindgen, no imports, no JSON.
//!
//! [`Facade`] holds the whole logic and is safe Rust, tested natively; `exports` (wasm
//! only) is the one place with `unsafe`: the single instance a wasm module has.
#![cfg_attr(target_arch = "wasm32", no_std)]
#![warn(missing_docs)]

extern crate alloc;

mod facade;
mod message;
mod records;

pub use facade::{ErrorCode, Facade, ABSORB_RECORD, CONFIRM_RECORD, GRANT_RECORD, SCRATCH_CAP};
pub use records::{
    BLOCK_RECORD, CHANGE_RECORD, EVENT_RECORD, HEADER_BYTES, MESSAGE_RECORD, METRICS_COUNT,
    REQUEST_RECORD,
};

#[cfg(target_arch = "wasm32")]
mod exports;
#[cfg(target_arch = "wasm32")]
mod wasm_alloc;
