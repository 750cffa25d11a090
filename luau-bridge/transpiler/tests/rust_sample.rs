//! Real Rust: samples/rust-sample built for wasm32-unknown-unknown (std) and wasm32v1-none
//! (no_std + alloc), transpiled, run in Luau (interpreted and native); every result must equal
//! the natively built sample's. Needs `rustup target add wasm32-unknown-unknown wasm32v1-none`.
mod common;

use mlua::Table;
use std::path::{Path, PathBuf};
use std::process::Command;
use wasm_to_luau::Options;

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/rust-sample")
}

fn target_dir() -> PathBuf {
    let base = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/../../target", env!("CARGO_MANIFEST_DIR")));
    Path::new(&base).join("rust-sample")
}

fn cargo(args: &[&str]) -> String {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .arg("--manifest-path")
        .arg(sample_dir().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn build_wasm(target: &str, extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["build", "--release", "--lib", "--target", target];
    args.extend_from_slice(extra);
    cargo(&args);
    std::fs::read(target_dir().join(target).join("release/rust_sample.wasm")).expect("sample wasm")
}

/// The same lines as src/bin/native.rs, computed through the transpiled module.
fn luau_lines(wasm: &[u8], native: bool) -> Vec<String> {
    let (lua, chunk) = common::load(wasm, native, "rust_sample");
    let inst: Table = chunk
        .get::<mlua::Function>("instantiate")
        .unwrap()
        .call(lua.create_table().unwrap())
        .expect("instantiate");
    let ex: Table = inst.get("exports").unwrap();
    let f = |name: &str| {
        ex.get::<mlua::Function>(name)
            .unwrap_or_else(|_| panic!("export {name}"))
    };
    let mut out = vec![];
    for n in [0u32, 1, 10, 200] {
        let words: i32 = f("sample_words").call(n).unwrap();
        out.push(format!("words {n} {}", words as u32));
        let shapes: f64 = f("sample_shapes").call(n).unwrap();
        out.push(format!("shapes {n} {:016x}", shapes.to_bits()));
        let x: f64 = f("sample_f32").call(n).unwrap();
        out.push(format!("f32 {n} {:08x}", (x as f32).to_bits()));
        let s: i32 = f("sample_sorting").call((n, n + 7)).unwrap();
        out.push(format!("sorting {n} {}", s as u32));
        let s: i32 = f("sample_formatting").call(n).unwrap();
        out.push(format!("formatting {n} {}", s as u32));
        let (lo, hi): (f64, f64) = f("sample_i64").call(n).unwrap();
        out.push(format!(
            "i64 {n} {}",
            ((hi as u64) << 32 | lo as u64) as i64
        ));
        let ptr: i32 = f("sample_greeting").call(n).unwrap();
        let len: i32 = f("sample_greeting_len").call(n).unwrap();
        // Memory is reached through exports.memory.buffer (re-read after calls: growth
        // replaces the buffer).
        let text: mlua::LuaString = lua
            .load("local mem, p, n = ... return buffer.readstring(mem.buffer, p, n)")
            .call((ex.get::<Table>("memory").unwrap(), ptr as u32, len))
            .unwrap();
        out.push(format!("greeting {n} {}", text.to_str().unwrap()));
    }
    out
}

fn check_variant(target: &str, wasm_extra: &[&str], native_features: &[&str]) {
    let wasm = build_wasm(target, wasm_extra);
    let mut args = vec!["run", "--release", "--quiet", "--bin", "native"];
    args.extend_from_slice(native_features);
    let want: Vec<String> = cargo(&args).lines().map(String::from).collect();
    assert!(!want.is_empty());
    for native in [false, true] {
        let got = luau_lines(&wasm, native);
        assert_eq!(got, want, "{target} (native codegen: {native})");
    }
    let luau = wasm_to_luau::transpile(&wasm, &Options::default()).unwrap();
    println!(
        "{target}: .wasm {} bytes, .luau {} bytes, ratio {:.2}",
        wasm.len(),
        luau.len(),
        luau.len() as f64 / wasm.len() as f64
    );
}

#[test]
fn std_sample_on_wasm32_unknown_unknown() {
    check_variant("wasm32-unknown-unknown", &[], &[]);
}

#[test]
fn no_std_sample_on_wasm32v1_none() {
    check_variant(
        "wasm32v1-none",
        &["--no-default-features"],
        &["--features", "soft-sqrt"],
    );
}
