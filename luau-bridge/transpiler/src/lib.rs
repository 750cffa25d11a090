//! wasm-to-luau: a WebAssembly to Luau transpiler with exact semantics.
//!
//! [`transpile`] validates a module with wasmparser and returns a Luau chunk; see the crate
//! README for the instance interface and value conventions at the boundary.
mod emit;
pub mod error;
mod func;
mod module;
mod names;
mod prelude;

pub use emit::Split;
pub use error::{Error, Result};
pub use wasmparser::WasmFeatures;

#[derive(Clone, Debug)]
pub struct Options {
    /// Add `--!native` so Luau compiles the chunk with native codegen where enabled.
    pub native: bool,
    /// Accepted WebAssembly features; anything else is rejected by validation.
    pub features: WasmFeatures,
    /// Instantiate as the 2017 WebAssembly 1.0 text did: bounds-check every active segment
    /// before writing any. Off by default: current semantics apply segments in order.
    pub legacy_instantiation: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            native: false,
            features: module::default_features(),
            legacy_instantiation: false,
        }
    }
}

/// The features accepted by default: WebAssembly 1.0 plus what rustc emits for
/// wasm32-unknown-unknown (sign extension, saturating conversions, bulk memory, multi-value,
/// mutable globals, reference types as far as tables and call_indirect go).
pub fn default_features() -> WasmFeatures {
    module::default_features()
}

/// Validate `wasm` and translate it to a Luau chunk.
pub fn transpile(wasm: &[u8], opts: &Options) -> Result<String> {
    let m = module::parse(wasm, opts.features)?;
    emit::emit(&m, opts)
}

/// Validate `wasm` and translate it to a main chunk and parts, each at most
/// `split.max_chars` characters (see the README, "Splitting the output"). The first string
/// is the main chunk (the instance interface); string `k` (from 1) is part `k + 1`, which
/// the main chunk loads with `split.require`.
pub fn transpile_split(wasm: &[u8], opts: &Options, split: &Split) -> Result<Vec<String>> {
    let m = module::parse(wasm, opts.features)?;
    emit::emit_split(&m, opts, split)
}
