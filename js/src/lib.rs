//! The npm package `npc-sync-node` (`pkg/node`): the core's `js` facade, linked into one
//! WebAssembly module by wasm-pack. See `src/js/` in the core for the API.
#![forbid(unsafe_code)]

pub use npc_sync::js::*;
