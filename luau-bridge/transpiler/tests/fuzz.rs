//! Differential fuzzing: wasm-smith modules run by a reference interpreter (wasmi) and by the
//! transpiled Luau must agree on every exported function's results and traps, called in the
//! same order with the same arguments.
//!
//! The bounded run here is part of `cargo test`; a long run is
//! `cargo bench -p wasm-to-luau --bench fuzz_long` (100,000 seeds) or this test with
//! `FUZZ_ITERS=n` (and `FUZZ_SEED=n` to start elsewhere). Prints `fuzz: N passed, M failed`.
mod common;

use arbitrary::Unstructured;
use mlua::{MultiValue, Table, Value, VmState};
use std::time::{Duration, Instant};
use wasm_to_luau::Options;
use wasmi::{Engine, Linker, Module as WModule, Store, Val, ValType};

fn config() -> wasm_smith::Config {
    wasm_smith::Config {
        max_imports: 0,
        export_everything: true,
        allow_start_export: true,
        simd_enabled: false,
        relaxed_simd_enabled: false,
        gc_enabled: false,
        exceptions_enabled: false,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        tail_call_enabled: false,
        memory64_enabled: false,
        wide_arithmetic_enabled: false,
        custom_page_sizes_enabled: false,
        extended_const_enabled: false,
        bulk_memory_enabled: true,
        reference_types_enabled: true,
        multi_value_enabled: true,
        saturating_float_to_int_enabled: true,
        sign_extension_ops_enabled: true,
        max_memories: 1,
        max_memory32_bytes: 64 * 65536,
        memory_max_size_required: true,
        max_tables: 3,
        max_table_elements: 200,
        table_max_size_required: true,
        max_funcs: 12,
        max_instructions: 150,
        max_nesting_depth: 8,
        max_data_segments: 4,
        max_element_segments: 4,
        ..wasm_smith::Config::default()
    }
}

fn f32_to_lua(bits: u32) -> f64 {
    let v = f32::from_bits(bits);
    if v.is_nan() {
        let sign = ((bits >> 31) as u64) << 63;
        f64::from_bits(sign | 0x7ff0_0000_0000_0000 | ((bits & 0x7f_ffff) as u64) << 29)
    } else {
        v as f64
    }
}

fn lua_to_f32(x: f64) -> u32 {
    if x.is_nan() {
        let b = x.to_bits();
        ((b >> 63) as u32) << 31 | 0x7f80_0000 | ((b >> 29) as u32 & 0x7f_ffff)
    } else {
        (x as f32).to_bits()
    }
}

fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// Compare wasmi results to the Luau return values (NaNs compare equal to any NaN).
fn same(want: &[Val], got: &[Value]) -> bool {
    let mut i = 0;
    for w in want {
        let ok = match w {
            Val::I32(x) => num(got.get(i)).is_some_and(|v| v == *x as f64),
            Val::I64(x) => {
                let lo = num(got.get(i));
                i += 1;
                let hi = num(got.get(i));
                matches!((lo, hi), (Some(lo), Some(hi)) if ((hi as u64) << 32 | lo as u64) == *x as u64)
            }
            Val::F32(x) => num(got.get(i)).is_some_and(|v| {
                let b = lua_to_f32(v);
                b == x.to_bits()
                    || (f32::from_bits(b).is_nan() && f32::from_bits(x.to_bits()).is_nan())
            }),
            Val::F64(x) => num(got.get(i)).is_some_and(|v| {
                v.to_bits() == x.to_bits() || (v.is_nan() && x.to_float().is_nan())
            }),
            Val::FuncRef(r) => r.is_null() == matches!(got.get(i), None | Some(Value::Nil)),
            Val::ExternRef(r) => r.is_null() == matches!(got.get(i), None | Some(Value::Nil)),
            Val::V128(_) => false,
        };
        if !ok {
            return false;
        }
        i += 1;
    }
    i == got.len()
}

enum Outcome {
    Agree,
    /// Resource limits (fuel, stack) differ between the engines: stop comparing this module.
    Skip,
    Disagree(String),
}

fn run_module(wasm: &[u8], rng: &mut u64, native: bool) -> Outcome {
    let mut next = || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    // Reference.
    let mut cfg = wasmi::Config::default();
    cfg.consume_fuel(true);
    let engine = Engine::new(&cfg);
    let Ok(module) = WModule::new(&engine, wasm) else {
        return Outcome::Skip;
    };
    let mut store = Store::new(&engine, ());
    store.set_fuel(100_000).unwrap();
    let linker = Linker::<()>::new(&engine);
    let wi = linker.instantiate_and_start(&mut store, &module);

    // Transpiled.
    let src = match wasm_to_luau::transpile(
        wasm,
        &Options {
            native,
            ..Options::default()
        },
    ) {
        Ok(s) => s,
        Err(e) => return Outcome::Disagree(format!("transpile failed: {e}")),
    };
    let lua = common::luau(native);
    let deadline = std::rc::Rc::new(std::cell::Cell::new(
        Instant::now() + Duration::from_secs(5),
    ));
    let d2 = deadline.clone();
    lua.set_interrupt(move |_| {
        if Instant::now() > d2.get() {
            Err(mlua::Error::runtime("fuzz timeout"))
        } else {
            Ok(VmState::Continue)
        }
    });
    let chunk: Table = match lua.load(&src).set_name("=fuzz").eval() {
        Ok(c) => c,
        Err(e) => return Outcome::Disagree(format!("load failed: {e}")),
    };
    let li: Result<Table, String> = chunk
        .get::<mlua::Function>("instantiate")
        .unwrap()
        .call::<Table>(lua.create_table().unwrap())
        .map_err(|e| e.to_string());

    let instance = match (wi, li) {
        (Err(e), _) if e.to_string().contains("fuel") || e.to_string().contains("stack") => {
            return Outcome::Skip
        }
        (Err(_), Err(_)) => return Outcome::Agree,
        (Ok(i), Ok(l)) => (i, l.get::<Table>("exports").unwrap()),
        (Err(e), Ok(_)) => {
            return Outcome::Disagree(format!("wasmi failed to instantiate ({e}), Luau succeeded"))
        }
        (Ok(_), Err(e)) => {
            return Outcome::Disagree(format!("Luau failed to instantiate ({e}), wasmi succeeded"))
        }
    };
    let (winst, lexports) = instance;
    let funcs: Vec<(String, wasmi::Func)> = winst
        .exports(&store)
        .filter_map(|e| Some((e.name().to_string(), e.into_func()?)))
        .collect();
    for (name, f) in funcs {
        let ty = f.ty(&store);
        let mut wargs = vec![];
        let mut largs = MultiValue::new();
        for p in ty.params() {
            let r = next();
            let small = (r % 7) as i64 - 3;
            match p {
                ValType::I32 => {
                    let v = if r % 3 == 0 {
                        small as i32
                    } else {
                        (r >> 8) as i32
                    };
                    wargs.push(Val::I32(v));
                    largs.push_back(Value::Number(v as f64));
                }
                ValType::I64 => {
                    let v = if r % 3 == 0 { small } else { (r >> 3) as i64 };
                    wargs.push(Val::I64(v));
                    largs.push_back(Value::Number((v as u64 as u32) as f64));
                    largs.push_back(Value::Number(((v as u64 >> 32) as u32) as f64));
                }
                ValType::F32 => {
                    let b = if r % 3 == 0 {
                        (small as f32).to_bits()
                    } else {
                        (r >> 16) as u32
                    };
                    wargs.push(Val::F32(wasmi::F32::from_bits(b)));
                    largs.push_back(Value::Number(f32_to_lua(b)));
                }
                ValType::F64 => {
                    let b = if r % 3 == 0 {
                        (small as f64).to_bits()
                    } else {
                        r
                    };
                    wargs.push(Val::F64(wasmi::F64::from_bits(b)));
                    largs.push_back(Value::Number(f64::from_bits(b)));
                }
                ValType::FuncRef => {
                    wargs.push(Val::FuncRef(wasmi::Nullable::Null));
                    largs.push_back(Value::Nil);
                }
                ValType::ExternRef => {
                    wargs.push(Val::ExternRef(wasmi::Nullable::Null));
                    largs.push_back(Value::Nil);
                }
                ValType::V128 => return Outcome::Skip,
            }
        }
        let mut wres: Vec<Val> = ty
            .results()
            .iter()
            .map(|t| Val::default_for_ty(*t))
            .collect();
        store.set_fuel(100_000).unwrap();
        let wr = f.call(&mut store, &wargs, &mut wres);
        if let Err(e) = &wr {
            let s = e.to_string();
            if s.contains("fuel") || s.contains("stack") {
                return Outcome::Skip;
            }
        }
        deadline.set(Instant::now() + Duration::from_secs(5));
        let lf: mlua::Function = match lexports.get(lua.create_string(name.as_bytes()).unwrap()) {
            Ok(f) => f,
            Err(e) => return Outcome::Disagree(format!("export {name:?} missing in Luau: {e}")),
        };
        let lr: Result<Vec<Value>, String> = lf
            .call::<MultiValue>(largs)
            .map(|m| m.into_iter().collect())
            .map_err(|e| e.to_string());
        match (&wr, &lr) {
            (Ok(()), Ok(got)) if same(&wres, got) => {}
            (Err(_), Err(e)) if e.contains("wasm trap:") => {}
            (_, Err(e)) if e.contains("call stack exhausted") => return Outcome::Skip,
            _ => {
                return Outcome::Disagree(format!(
                    "{name:?}({wargs:?}): wasmi {wr:?} {wres:?}, Luau {lr:?}"
                ))
            }
        }
    }
    Outcome::Agree
}

#[test]
fn differential_against_wasmi() {
    run();
}

/// Also the body of the long-run bench target (benches/fuzz_long.rs).
pub fn run() {
    let iters: u64 = std::env::var("FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let seed0: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let (mut passed, mut failed, mut skipped) = (0u64, 0u64, 0u64);
    for seed in seed0..seed0 + iters {
        let mut rng = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
        let mut bytes = vec![0u8; 4096];
        for b in bytes.iter_mut() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            *b = (rng >> 24) as u8;
        }
        let mut u = Unstructured::new(&bytes);
        let Ok(m) = wasm_smith::Module::new(config(), &mut u) else {
            continue;
        };
        let wasm = m.to_bytes();
        // Odd seeds run with native codegen.
        match run_module(&wasm, &mut rng, seed % 2 == 1) {
            Outcome::Agree => passed += 1,
            Outcome::Skip => skipped += 1,
            Outcome::Disagree(why) => {
                failed += 1;
                let path = std::env::temp_dir().join(format!("wasm-to-luau-fuzz-{seed}.wasm"));
                let _ = std::fs::write(&path, &wasm);
                eprintln!("seed {seed}: {why} (module saved to {})", path.display());
            }
        }
    }
    println!("fuzz: {passed} passed, {failed} failed ({skipped} skipped on resource limits)");
    assert_eq!(failed, 0);
}
