//! WebAssembly to Luau transpiler (work in progress).
