//! Benchmarks: fib, an i32 memory loop, FNV-1a 64, a heapsort — each compiled Rust -> wasm ->
//! Luau and hand-written in Luau (benches/kernels.luau), run interpreted and with native
//! codegen. Prints times, the ratio transpiled / hand-written, and output size / .wasm size
//! (for the kernels and for the real-Rust sample).
//!
//! `cargo bench -p wasm-to-luau --bench kernels` (needs the wasm32-unknown-unknown target).
use mlua::{Function, Lua, MultiValue, Table, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use wasm_to_luau::Options;

fn target_dir() -> PathBuf {
    let base = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/../../target", env!("CARGO_MANIFEST_DIR")));
    PathBuf::from(base)
}

fn build(sample: &str, file: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(sample);
    let tdir = target_dir().join(sample);
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
            "--manifest-path",
        ])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &tdir)
        .status()
        .expect("cargo");
    assert!(st.success());
    std::fs::read(tdir.join("wasm32-unknown-unknown/release").join(file)).expect("wasm")
}

/// Best of `reps` timings (seconds, measured with os.clock inside Luau) and the results.
fn time(lua: &Lua, f: &Function, args: &MultiValue, reps: usize) -> (f64, Vec<Value>) {
    let timer: Function = lua
        .load("local f = ... return function(...) local t = os.clock() local a, b = f(...) return os.clock() - t, a, b end")
        .call(f.clone())
        .unwrap();
    let mut best = f64::MAX;
    let mut res = vec![];
    for _ in 0..reps {
        let r: MultiValue = timer.call(args.clone()).unwrap();
        let mut it = r.into_iter();
        let t = match it.next() {
            Some(Value::Number(t)) => t,
            _ => panic!("timer"),
        };
        best = best.min(t);
        res = it.collect();
    }
    (best, res)
}

fn main() {
    let wasm = build("bench-kernels", "bench_kernels.wasm");
    let hand_src =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/kernels.luau"))
            .unwrap();
    let kernels: [(&str, Vec<f64>); 4] = [
        ("fib", vec![27.0]),
        ("memloop", vec![40.0]),
        ("fnv", vec![200.0, 4096.0]),
        ("sort", vec![16384.0, 12345.0]),
    ];
    println!(
        "{:<8} {:>6} {:>12} {:>12} {:>7}",
        "kernel", "mode", "transpiled", "hand", "ratio"
    );
    for native in [false, true] {
        let lua = Lua::new();
        lua.enable_jit(native);
        // Sandboxed (safeenv), as in Roblox: builtin calls take the fastcall paths.
        lua.sandbox(true).unwrap();
        let src = wasm_to_luau::transpile(
            &wasm,
            &Options {
                native,
                ..Options::default()
            },
        )
        .unwrap();
        let chunk: Table = lua.load(&src).set_name("=kernels").eval().unwrap();
        let inst: Table = chunk
            .get::<Function>("instantiate")
            .unwrap()
            .call(lua.create_table().unwrap())
            .unwrap();
        let ex: Table = inst.get("exports").unwrap();
        let header = if native {
            "--!native\n--!optimize 2\n"
        } else {
            "--!optimize 2\n"
        };
        let hand: Table = lua
            .load(format!("{header}{hand_src}"))
            .set_name("=hand")
            .eval()
            .unwrap();
        let mode = if native { "native" } else { "interp" };
        for (name, args) in &kernels {
            let args: MultiValue = args.iter().map(|&a| Value::Number(a)).collect();
            let (tt, rt) = time(&lua, &ex.get::<Function>(*name).unwrap(), &args, 5);
            let (th, rh) = time(&lua, &hand.get::<Function>(*name).unwrap(), &args, 5);
            let same = format!("{rt:?}") == format!("{rh:?}");
            println!(
                "{name:<8} {mode:>6} {:>10.2}ms {:>10.2}ms {:>7.2}{}",
                tt * 1e3,
                th * 1e3,
                tt / th,
                if same { "" } else { "  RESULTS DIFFER" }
            );
            assert!(same, "{name}: transpiled {rt:?} vs hand-written {rh:?}");
        }
    }
    let out = wasm_to_luau::transpile(&wasm, &Options::default()).unwrap();
    println!(
        "kernels: .wasm {} bytes, .luau {} bytes, ratio {:.2}",
        wasm.len(),
        out.len(),
        out.len() as f64 / wasm.len() as f64
    );
    let sample = build("rust-sample", "rust_sample.wasm");
    let out = wasm_to_luau::transpile(&sample, &Options::default()).unwrap();
    println!(
        "rust-sample: .wasm {} bytes, .luau {} bytes, ratio {:.2}",
        sample.len(),
        out.len(),
        out.len() as f64 / sample.len() as f64
    );
}
