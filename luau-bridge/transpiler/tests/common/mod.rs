//! What every Luau-running test shares: a state set up as Roblox runs code, and loading a
//! transpiled module into one.
#![allow(dead_code)] // each test binary uses part of it

use mlua::{Lua, Table};
use wasm_to_luau::{Options, WasmFeatures};

/// A fresh Luau state, sandboxed (safeenv) as in Roblox, so builtin calls take the fastcall
/// paths; with native code generation when `native`.
pub fn luau(native: bool) -> Lua {
    let lua = Lua::new();
    lua.enable_jit(native);
    lua.sandbox(true).unwrap();
    lua
}

/// Transpiles `wasm` (with `--native` when `native`) and loads the chunk, named `name`, in a
/// fresh state. Returns the state and the chunk's table (`instantiate`).
pub fn load(wasm: &[u8], native: bool, name: &str) -> (Lua, Table) {
    let src = wasm_to_luau::transpile(
        wasm,
        &Options {
            native,
            ..Options::default()
        },
    )
    .expect("transpile");
    let lua = luau(native);
    let chunk: Table = lua
        .load(&src)
        .set_name(format!("={name}"))
        .eval()
        .expect("chunk loads");
    (lua, chunk)
}

/// The wasm features the spec suite enables for the `.wast` files under `parent` (the
/// suite's proposal folders), shared by the spec run and the byte-identity check.
pub fn features_for(parent: &str) -> WasmFeatures {
    let base = WasmFeatures::WASM1;
    match parent {
        "sign-extension-ops" => base | WasmFeatures::SIGN_EXTENSION,
        "nontrapping-float-to-int-conversions" => base | WasmFeatures::SATURATING_FLOAT_TO_INT,
        "bulk-memory" => {
            // The suite's copy of the proposal tests also uses typed function references, and
            // one table_init.wast module a GC array type.
            base | WasmFeatures::BULK_MEMORY
                | WasmFeatures::REFERENCE_TYPES
                | WasmFeatures::FUNCTION_REFERENCES
                | WasmFeatures::GC
        }
        "multi-value" => base | WasmFeatures::MULTI_VALUE,
        _ => base,
    }
}
