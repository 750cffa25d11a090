//! Module-level emission: the chunk, `instantiate`, imports, memories, tables, globals,
//! segments, exports and the boundary wrappers.
use crate::error::Result;
use crate::lower;
use crate::module::{ConstVal, ElemMode, FuncType, ImportKind, Module};
use crate::names::{f32_lit, f64_lit, lua_string, sig_key};
use crate::prelude::Helper;
use crate::Options;
use std::collections::BTreeSet;
use std::fmt::Write;
use wasmparser::{ExternalKind, ValType};

// The helpers the instance code calls by name, for use in format strings.
const FSIG: Helper = Helper::Fsig;
const GMT: Helper = Helper::Gmt;
const LINKERR: Helper = Helper::Linkerr;
const MEMGROW: Helper = Helper::Memgrow;
const RETHROW: Helper = Helper::Rethrow;
const SIGNED: Helper = Helper::Signed;
const TRAP: Helper = Helper::Trap;

fn type_name(t: ValType) -> &'static str {
    match t {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
        ValType::F32 => "f32",
        ValType::F64 => "f64",
        ValType::V128 => "v128",
        ValType::Ref(r) if r.is_func_ref() => "funcref",
        ValType::Ref(_) => "externref",
    }
}

/// Budget of `instantiate`'s 200 locals, and of each function's 200 upvalues (a function
/// may reference every local function and global plus the helpers and aliases).
const MAX_LOCAL_FUNCS: usize = 50;
const MAX_LOCAL_GLOBALS: usize = 40;

/// The most called functions become locals (upvalue calls); the rest live in table `F`.
/// Returns every function's name and the indices of the locals, in index order.
fn plan_functions(m: &Module<'_>) -> Result<(Vec<String>, Vec<usize>)> {
    let n = m.func_types.len();
    let mut calls = vec![0u64; n];
    for body in &m.bodies {
        let mut r = body.get_operators_reader()?;
        while !r.eof() {
            if let wasmparser::Operator::Call { function_index } = r.read()? {
                calls[function_index as usize] += 1;
            }
        }
    }
    let mut order: Vec<usize> = (0..n).filter(|&i| calls[i] > 0).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(calls[i]), i));
    let mut names: Vec<String> = (0..n).map(|i| format!("F[{}]", i + 1)).collect();
    let mut locals: Vec<usize> = order.iter().copied().take(MAX_LOCAL_FUNCS).collect();
    locals.sort_unstable();
    for &i in &locals {
        names[i] = format!("f{i}");
    }
    Ok((names, locals))
}

struct Emitter<'m, 'a> {
    m: &'m Module<'a>,
    /// Output split into several chunks: every global lives in a table (`GT`, cells in
    /// `GC`) the parts share.
    split: bool,
    helpers: BTreeSet<Helper>,
    global_names: Vec<(String, String)>,
    /// Where each global lives, decided with its name.
    global_homes: Vec<GlobalHome>,
    func_names: Vec<String>,
    out: String,
}

/// Where a wasm global lives in the chunk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum GlobalHome {
    /// A cell table `{v, h, …}` shared with importers or exporters (mutable and imported or
    /// exported): a local `G{i}` or an entry of `GC`.
    Cell,
    /// Entries of the table `GT` (many globals, or split output).
    Table,
    /// Locals `g{i}`, `h{i}` of `instantiate`.
    Local,
}

pub fn emit(m: &Module<'_>, opts: &Options) -> Result<String> {
    let mut e = Emitter {
        m,
        split: false,
        helpers: BTreeSet::new(),
        global_names: vec![],
        global_homes: vec![],
        func_names: vec![],
        out: String::new(),
    };
    e.helpers.insert(Helper::Rethrow);
    let (func_names, local_funcs) = plan_functions(m)?;
    e.func_names = func_names;
    e.plan_globals();

    let mut body = String::new();
    let locals: Vec<&str> = local_funcs
        .iter()
        .map(|&i| e.func_names[i].as_str())
        .collect();
    for chunk in locals.chunks(20) {
        let _ = writeln!(body, "\tlocal {}", chunk.join(", "));
    }
    e.emit_imports(&mut body);
    e.emit_definitions(&mut body);

    // Function bodies.
    for i in 0..m.bodies.len() {
        let fi = m.num_imported_funcs as usize + i;
        let text = {
            let mut ctx = lower::Ctx {
                module: m,
                helpers: &mut e.helpers,
                global_names: &e.global_names,
                func_names: &e.func_names,
                native: opts.native,
            };
            lower::translate(&mut ctx, i)?
        };
        let _ = writeln!(body, "{} = {}", e.func_names[fi], text);
    }
    // Signatures of function values, for references stored by instructions or taken from
    // globals (segments of function indices carry their signatures directly).
    let refs_from_globals = m
        .elems
        .iter()
        .any(|s| s.items.iter().any(|c| matches!(c, ConstVal::GlobalGet(_))));
    if refs_from_globals
        || [Helper::Tset, Helper::Tgrow, Helper::Tfill]
            .iter()
            .any(|h| e.helpers.contains(h))
    {
        for i in 0..m.func_types.len() {
            let sig = sig_key(&m.types[m.func_types[i] as usize]);
            let _ = writeln!(body, "\t{FSIG}[{}] = \"{sig}\"", e.func_names[i]);
        }
        e.helpers.insert(Helper::Fsig);
    }
    e.finish_globals(&mut body);
    e.emit_segments(&mut body, opts);
    let exports = e.emit_exports(&mut body);
    if let Some(s) = m.start {
        let _ = writeln!(
            body,
            "\tdo\n\t\tlocal ok, err = pcall({})\n\t\tif not ok then {RETHROW}(err) end\n\tend",
            e.func_names[s as usize]
        );
    }
    let _ = writeln!(body, "\treturn {{exports = {exports}}}");

    let mut out = String::new();
    out.push_str("--!optimize 2\n");
    if opts.native {
        out.push_str("--!native\n");
    }
    out.push_str("-- Generated by wasm-to-luau. Do not edit.\n");
    out.push_str(&crate::prelude::emit_used(&e.helpers));
    out.push_str("local function instantiate(imports)\n");
    out.push_str("\tlocal F = {}\n");
    out.push_str(&body);
    out.push_str("end\n");
    out.push_str("return {instantiate = instantiate}\n");
    e.out = out;
    Ok(e.out)
}

impl Emitter<'_, '_> {
    /// Globals live in table `GT` rather than in locals of `instantiate`.
    fn many_globals(&self) -> bool {
        self.split || self.m.globals.len() > MAX_LOCAL_GLOBALS
    }

    /// The Luau name of shared global `i`'s cell.
    fn cell_name(&self, i: usize) -> String {
        if i < MAX_LOCAL_CELLS && !self.split {
            format!("G{i}")
        } else {
            format!("GC[{i}]")
        }
    }

    fn local_kw(&self, i: usize) -> &'static str {
        if i < MAX_LOCAL_CELLS && !self.split {
            "local "
        } else {
            ""
        }
    }

    fn plan_globals(&mut self) {
        let m = self.m;
        let exported: BTreeSet<u32> = m
            .exports
            .iter()
            .filter(|(_, k, _)| *k == ExternalKind::Global)
            .map(|(_, _, i)| *i)
            .collect();
        let many = self.many_globals();
        for (i, g) in m.globals.iter().enumerate() {
            let imported = (i as u32) < m.num_imported_globals;
            let shared = g.mutable && (imported || exported.contains(&(i as u32)));
            let (home, names) = if shared {
                let cell = self.cell_name(i);
                (GlobalHome::Cell, (format!("{cell}.v"), format!("{cell}.h")))
            } else if many {
                let names = (format!("GT[{}]", 2 * i + 1), format!("GT[{}]", 2 * i + 2));
                (GlobalHome::Table, names)
            } else {
                (GlobalHome::Local, (format!("g{i}"), format!("h{i}")))
            };
            self.global_homes.push(home);
            self.global_names.push(names);
        }
    }

    fn const_expr(&mut self, c: &ConstVal) -> (String, String) {
        match c {
            ConstVal::I32(v) => ((*v as u32).to_string(), String::new()),
            ConstVal::I64(v) => (
                ((*v as u64) as u32).to_string(),
                (((*v as u64) >> 32) as u32).to_string(),
            ),
            ConstVal::F32(b) => (f32_lit(*b, &mut self.helpers), String::new()),
            ConstVal::F64(b) => (f64_lit(*b, &mut self.helpers), String::new()),
            ConstVal::GlobalGet(g) => self.global_names[*g as usize].clone(),
            ConstVal::RefNull => ("nil".into(), String::new()),
            ConstVal::RefFunc(f) => (self.func_names[*f as usize].clone(), String::new()),
            ConstVal::NewArray(n) => (format!("{{n = {n}}}"), String::new()),
        }
    }

    fn emit_imports(&mut self, o: &mut String) {
        let m = self.m;
        let (mut fi, mut ti, mut mi, mut gi) = (0usize, 0usize, 0usize, 0usize);
        self.helpers.insert(Helper::Linkerr);
        let _ = writeln!(
            o,
            "\timports = imports or {{}}\n\tlocal IMPM, IMP, GC = nil, nil, {{}}"
        );
        if self.many_globals() {
            let _ = writeln!(o, "\tlocal GT = {{}}");
        }
        for imp in &m.imports {
            let md = lua_string(imp.module.as_bytes());
            let nm = lua_string(imp.name.as_bytes());
            let what = lua_string(format!("{}.{}", imp.module, imp.name).as_bytes());
            let _ = writeln!(o, "\tIMPM = imports[{md}]");
            let _ = writeln!(o, "\tIMP = IMPM and IMPM[{nm}]");
            let _ = writeln!(
                o,
                "\tif IMP == nil then {LINKERR}(\"unknown import \" .. {what}) end"
            );
            match &imp.kind {
                ImportKind::Func(t) => {
                    let ty = &m.types[*t as usize];
                    let sig = sig_key(ty);
                    let name = self.func_names[fi].clone();
                    let _ = writeln!(o, "\tif type(IMP) ~= \"function\" then {LINKERR}(\"incompatible import type for \" .. {what}) end");
                    let _ = writeln!(o, "\tdo\n\t\tlocal mt = getmetatable(IMPM)\n\t\tlocal info = type(mt) == \"table\" and mt.__wasm and mt.__wasm[IMP]");
                    let _ = writeln!(o, "\t\tif info then\n\t\t\tif info[2] ~= \"{sig}\" then {LINKERR}(\"incompatible import type for \" .. {what}) end\n\t\t\t{name} = info[1]");
                    let _ = writeln!(
                        o,
                        "\t\telse\n\t\t\tlocal host = IMP\n\t\t\t{name} = {}\n\t\tend\n\tend",
                        self.host_wrapper(ty)
                    );
                    fi += 1;
                }
                ImportKind::Memory { initial, maximum } => {
                    let _ = writeln!(o, "\tif type(IMP) ~= \"table\" or type(IMP.buffer) ~= \"buffer\" then {LINKERR}(\"incompatible import type for \" .. {what}) end");
                    let _ = writeln!(o, "\tif buffer.len(IMP.buffer) // 65536 < {initial} then {LINKERR}(\"incompatible import type for \" .. {what}) end");
                    if let Some(mx) = maximum {
                        let _ = writeln!(o, "\tif IMP.max == nil or IMP.max > {mx} then {LINKERR}(\"incompatible import type for \" .. {what}) end");
                    }
                    let _ = writeln!(o, "\tlocal MO = IMP\n\tlocal M = MO.buffer\n\ttable.insert(MO.listeners, function(b) M = b end)");
                    mi += 1;
                }
                ImportKind::Table { initial, maximum } => {
                    let _ = writeln!(o, "\tif type(IMP) ~= \"table\" or type(IMP.f) ~= \"table\" or IMP.n == nil then {LINKERR}(\"incompatible import type for \" .. {what}) end");
                    let _ = writeln!(o, "\tif IMP.n < {initial} then {LINKERR}(\"incompatible import type for \" .. {what}) end");
                    if let Some(mx) = maximum {
                        let _ = writeln!(o, "\tif IMP.max == nil or IMP.max > {mx} then {LINKERR}(\"incompatible import type for \" .. {what}) end");
                    }
                    let _ = writeln!(
                        o,
                        "\tlocal T{ti} = IMP\n\tlocal TF{ti}, TS{ti} = T{ti}.f, T{ti}.s"
                    );
                    ti += 1;
                }
                ImportKind::Global { ty, mutable } => {
                    let tn = type_name(*ty);
                    self.helpers.insert(Helper::Gmt);
                    if *mutable {
                        let _ = writeln!(o, "\tif type(IMP) ~= \"table\" or IMP.type ~= \"{tn}\" or IMP.mutable ~= true then {LINKERR}(\"incompatible import type for \" .. {what}) end");
                        let _ = writeln!(o, "\t{}{} = IMP", self.local_kw(gi), self.cell_name(gi));
                    } else {
                        // Plain Luau numbers are accepted for immutable globals.
                        let (lo, hi) = self.global_names[gi].clone();
                        let conv = match ty {
                            ValType::I32 => "IMP % 4294967296",
                            _ => "IMP",
                        };
                        if self.global_homes[gi] != GlobalHome::Table {
                            let _ = writeln!(o, "\tlocal {}, {}", lo, hi);
                        }
                        let _ = writeln!(o, "\tif type(IMP) == \"table\" then\n\t\tif IMP.type ~= \"{tn}\" or IMP.mutable then {LINKERR}(\"incompatible import type for \" .. {what}) end\n\t\t{lo}, {hi} = IMP.v, IMP.h");
                        let num_ok = matches!(ty, ValType::I32 | ValType::F32 | ValType::F64);
                        if num_ok {
                            let _ = writeln!(
                                o,
                                "\telseif type(IMP) == \"number\" then\n\t\t{lo} = {conv}"
                            );
                        }
                        let _ = writeln!(o, "\telse\n\t\tlinkerr(\"incompatible import type for \" .. {what})\n\tend");
                    }
                    gi += 1;
                }
            }
        }
        let _ = (fi, ti, mi, gi);
    }

    /// Wrap a host function so it is called with the internal value conventions.
    fn host_wrapper(&mut self, ty: &FuncType) -> String {
        let hf = Helper::Signed;
        self.helpers.insert(hf);
        // Internal i32 is unsigned; a host sees it signed. i64 halves pass as they are.
        let (params, args) =
            boundary_params(&ty.params, |a| format!("{hf}({a})"), |h| h.to_string());
        let mut rs = vec![];
        let mut conv = vec![];
        let mut k = 0;
        for t in &ty.results {
            match t {
                ValType::I32 => {
                    rs.push(format!("r{k}"));
                    conv.push(format!("r{k} % 4294967296"));
                    k += 1;
                }
                ValType::I64 => {
                    rs.push(format!("r{k}"));
                    rs.push(format!("r{}", k + 1));
                    conv.push(format!("r{k} % 4294967296"));
                    conv.push(format!("r{} % 4294967296", k + 1));
                    k += 2;
                }
                _ => {
                    rs.push(format!("r{k}"));
                    conv.push(format!("r{k}"));
                    k += 1;
                }
            }
        }
        let call = format!("host({})", args.join(", "));
        if rs.is_empty() {
            format!("function({}) {call} end", params.join(", "))
        } else {
            format!(
                "function({}) local {} = {call} return {} end",
                params.join(", "),
                rs.join(", "),
                conv.join(", ")
            )
        }
    }

    fn emit_definitions(&mut self, o: &mut String) {
        let m = self.m;
        // Memory.
        if m.memories.len() > m.num_imported_memories as usize {
            let hf = Helper::Newmem;
            self.helpers.insert(hf);
            let l = &m.memories[m.num_imported_memories as usize];
            let max = l.maximum.map_or("nil".to_string(), |x| x.to_string());
            let _ = writeln!(o, "\tlocal MO = {hf}({}, {max})\n\tlocal M = MO.buffer\n\ttable.insert(MO.listeners, function(b) M = b end)", l.initial.min(1 << 20));
        }
        if !m.memories.is_empty() {
            let hf = Helper::Memgrow;
            self.helpers.insert(hf);
            let _ = writeln!(o, "\tlocal function MG(n) return {hf}(MO, n) end");
        }
        // Tables.
        for t in m.num_imported_tables as usize..m.tables.len() {
            let l = &m.tables[t];
            let max = l.maximum.map_or("nil".to_string(), |x| x.to_string());
            let _ = writeln!(o, "\tlocal T{t} = {{n = {}, max = {max}, f = {{}}, s = {{}}}}\n\tlocal TF{t}, TS{t} = T{t}.f, T{t}.s", l.initial);
        }
        // Globals.
        let many = self.many_globals();
        for i in m.num_imported_globals as usize..m.globals.len() {
            let g = &m.globals[i];
            let init = match g.init.as_ref().expect("defined global") {
                // Functions are defined later; `finish_globals` assigns these.
                ConstVal::RefFunc(_) => ("nil".to_string(), String::new()),
                c => self.const_expr(c),
            };
            let (lo, hi) = self.global_names[i].clone();
            let wide = g.ty == ValType::I64;
            if self.global_homes[i] == GlobalHome::Cell {
                self.helpers.insert(Helper::Gmt);
                let h = if wide { init.1.clone() } else { "nil".into() };
                let _ = writeln!(o, "\t{}{} = setmetatable({{type = \"{}\", mutable = true, v = {}, h = {h}}}, {GMT})", self.local_kw(i), self.cell_name(i), type_name(g.ty), init.0);
            } else if many {
                let _ = writeln!(o, "\t{lo} = {}", init.0);
                if wide {
                    let _ = writeln!(o, "\t{hi} = {}", init.1);
                }
            } else if wide {
                let _ = writeln!(o, "\tlocal {lo}, {hi} = {}, {}", init.0, init.1);
            } else {
                let _ = writeln!(o, "\tlocal {lo} = {}", init.0);
            }
        }
        let _ = writeln!(o, "\tlocal D, E = {{}}, {{}}");
    }

    fn finish_globals(&mut self, o: &mut String) {
        let m = self.m;
        for i in m.num_imported_globals as usize..m.globals.len() {
            if let Some(ConstVal::RefFunc(f)) = m.globals[i].init {
                let _ = writeln!(
                    o,
                    "\t{} = {}",
                    self.global_names[i].0, self.func_names[f as usize]
                );
            }
        }
    }

    fn emit_segments(&mut self, o: &mut String, opts: &Options) {
        let m = self.m;
        self.helpers.insert(Helper::Trap);
        // Element segments as lists of (function, signature).
        for (i, seg) in m.elems.iter().enumerate() {
            let mut fs = vec![];
            let mut ss = vec![];
            for (j, item) in seg.items.iter().enumerate() {
                match item {
                    ConstVal::RefFunc(f) => {
                        fs.push(format!("[{}] = {}", j + 1, self.func_names[*f as usize]));
                        ss.push(format!(
                            "[{}] = \"{}\"",
                            j + 1,
                            sig_key(&m.types[m.func_types[*f as usize] as usize])
                        ));
                    }
                    ConstVal::GlobalGet(g) => {
                        let (lo, _) = self.global_names[*g as usize].clone();
                        fs.push(format!("[{}] = {lo}", j + 1));
                        ss.push(format!("[{}] = {lo} and {FSIG}[{lo}]", j + 1));
                    }
                    ConstVal::NewArray(n) => fs.push(format!("[{}] = {{n = {n}}}", j + 1)),
                    _ => {}
                }
            }
            let _ = writeln!(
                o,
                "\tE[{}] = {{n = {}, f = {{{}}}, s = {{{}}}}}",
                i + 1,
                seg.items.len(),
                fs.join(", "),
                ss.join(", ")
            );
        }
        for (i, d) in m.datas.iter().enumerate() {
            let _ = writeln!(
                o,
                "\tD[{}] = buffer.fromstring({})",
                i + 1,
                lua_string(d.bytes)
            );
        }
        // Segments apply in order; a failing one traps after earlier ones took effect (the
        // current spec, also for 1.0 modules). The 2017 text checked all of them first.
        if opts.legacy_instantiation {
            for seg in &m.elems {
                if let ElemMode::Active { table, offset } = &seg.mode {
                    let off = self.const_expr(offset).0;
                    let _ = writeln!(o, "\tif {off} + {} > T{table}.n then {TRAP}(\"out of bounds table access\") end", seg.items.len());
                }
            }
            for d in &m.datas {
                if let Some((_, offset)) = &d.active {
                    let off = self.const_expr(offset).0;
                    let _ = writeln!(o, "\tif {off} + {} > buffer.len(M) then {TRAP}(\"out of bounds memory access\") end", d.bytes.len());
                }
            }
        }
        for (i, seg) in m.elems.iter().enumerate() {
            match &seg.mode {
                ElemMode::Active { table, offset } => {
                    let ti = Helper::Tinit;
                    self.helpers.insert(ti);
                    let hf = Helper::Edropped;
                    self.helpers.insert(hf);
                    let off = self.const_expr(offset).0;
                    let _ = writeln!(
                        o,
                        "\t{ti}(T{table}, E[{}], {off}, 0, {})\n\tE[{}] = {hf}",
                        i + 1,
                        seg.items.len(),
                        i + 1
                    );
                }
                ElemMode::Declared => {
                    let hf = Helper::Edropped;
                    self.helpers.insert(hf);
                    let _ = writeln!(o, "\tE[{}] = {hf}", i + 1);
                }
                ElemMode::Passive => {}
            }
        }
        for (i, d) in m.datas.iter().enumerate() {
            if let Some((_, offset)) = &d.active {
                let mi = Helper::Minit;
                self.helpers.insert(mi);
                let hf = Helper::Dropped;
                self.helpers.insert(hf);
                let off = self.const_expr(offset).0;
                let _ = writeln!(
                    o,
                    "\t{mi}(M, D[{}], {off}, 0, {})\n\tD[{}] = {hf}",
                    i + 1,
                    d.bytes.len(),
                    i + 1
                );
            }
        }
    }

    /// Wrapper for an exported function: boundary conventions in and out, traps normalised.
    /// Indented for its place in `emit_exports` (inside a `do` block of `instantiate`).
    fn export_wrapper(&mut self, f: u32) -> String {
        let m = self.m;
        let ty = &m.types[m.func_types[f as usize] as usize];
        self.helpers.insert(Helper::Signed);
        // Callers may pass any integral number: i32 and both i64 halves are taken mod 2^32.
        let wrap = |a: &str| format!("{a} % 4294967296");
        let (params, args) = boundary_params(&ty.params, wrap, wrap);
        let mut rs = vec![];
        let mut conv = vec![];
        for (k, t) in ty.results.iter().enumerate() {
            match t {
                ValType::I32 => {
                    rs.push(format!("r{k}"));
                    conv.push(format!("{SIGNED}(r{k})"));
                }
                ValType::I64 => {
                    rs.push(format!("r{k}"));
                    rs.push(format!("q{k}"));
                    conv.push(format!("r{k}"));
                    conv.push(format!("q{k}"));
                }
                _ => {
                    rs.push(format!("r{k}"));
                    conv.push(format!("r{k}"));
                }
            }
        }
        let mut call_args = vec![self.func_names[f as usize].clone()];
        call_args.extend(args);
        let mut lhs = vec!["ok".to_string()];
        if rs.is_empty() {
            lhs.push("err".into());
        } else {
            lhs.extend(rs);
        }
        format!(
            "function({})\n\t\t\tlocal {} = pcall({})\n\t\t\tif not ok then {RETHROW}({}) end\n\t\t\treturn {}\n\t\tend",
            params.join(", "),
            lhs.join(", "),
            call_args.join(", "),
            lhs[1],
            conv.join(", ")
        )
    }

    fn emit_exports(&mut self, o: &mut String) -> String {
        let m = self.m;
        let _ = writeln!(o, "\tlocal exports, META = {{}}, {{}}");
        for (name, kind, idx) in &m.exports {
            let key = lua_string(name.as_bytes());
            match kind {
                ExternalKind::Func => {
                    let w = self.export_wrapper(*idx);
                    let sig = sig_key(&m.types[m.func_types[*idx as usize] as usize]);
                    let _ = writeln!(o, "\tdo\n\t\tlocal w = {}\n\t\texports[{key}] = w\n\t\tMETA[w] = {{{}, \"{sig}\"}}\n\tend", w, self.func_names[*idx as usize]);
                }
                ExternalKind::Memory => {
                    let _ = writeln!(o, "\texports[{key}] = MO");
                }
                ExternalKind::Table => {
                    let _ = writeln!(o, "\texports[{key}] = T{idx}");
                }
                ExternalKind::Global => {
                    let g = &m.globals[*idx as usize];
                    let (lo, hi) = self.global_names[*idx as usize].clone();
                    if self.global_homes[*idx as usize] == GlobalHome::Cell {
                        let _ = writeln!(o, "\texports[{key}] = {}", self.cell_name(*idx as usize));
                    } else {
                        self.helpers.insert(Helper::Gmt);
                        let h = if g.ty == ValType::I64 {
                            hi
                        } else {
                            "nil".into()
                        };
                        let _ = writeln!(o, "\texports[{key}] = setmetatable({{type = \"{}\", mutable = false, v = {lo}, h = {h}}}, {GMT})", type_name(g.ty));
                    }
                }
                _ => {}
            }
        }
        let _ = writeln!(o, "\tsetmetatable(exports, {{__wasm = META}})");
        "exports".into()
    }
}

/// Shared (imported or exported mutable) globals live in cells; the first ones are locals of
/// `instantiate`, the rest entries of table `GC` (a function has at most 200 locals).
const MAX_LOCAL_CELLS: usize = 40;

/// Parameter names and the converted arguments of a boundary wrapper: one name per value
/// (an i64 takes two, low and high), `i32` and `i64_half` converting a name into the argument
/// passed on; floats and references pass unchanged.
fn boundary_params(
    types: &[ValType],
    i32: impl Fn(&str) -> String,
    i64_half: impl Fn(&str) -> String,
) -> (Vec<String>, Vec<String>) {
    let mut params = vec![];
    let mut args = vec![];
    for (i, t) in types.iter().enumerate() {
        let (a, b) = (format!("a{i}"), format!("b{i}"));
        match t {
            ValType::I32 => args.push(i32(&a)),
            ValType::I64 => {
                args.push(i64_half(&a));
                args.push(i64_half(&b));
            }
            _ => args.push(a.clone()),
        }
        params.push(a);
        if *t == ValType::I64 {
            params.push(b);
        }
    }
    (params, args)
}

/// How a module is split into several chunks (see the README, "Splitting the output").
#[derive(Clone, Debug)]
pub struct Split {
    /// Most characters (bytes) one output chunk may have.
    pub max_chars: usize,
    /// Luau expression that loads part `n` (2, 3, ...) from the main chunk; `{n}` stands for
    /// the number, e.g. `require(script.Parent.Core_{n})`.
    pub require: String,
}

/// Calls from the given function bodies to each function index.
fn call_counts(m: &Module<'_>, bodies: &[usize]) -> Result<Vec<u64>> {
    let mut calls = vec![0u64; m.func_types.len()];
    for &b in bodies {
        let mut r = m.bodies[b].get_operators_reader()?;
        while !r.eof() {
            if let wasmparser::Operator::Call { function_index } = r.read()? {
                calls[function_index as usize] += 1;
            }
        }
    }
    Ok(calls)
}

/// Translates function body `def` with the given names, collecting its helpers.
fn translate_one(
    m: &Module<'_>,
    helpers: &mut BTreeSet<Helper>,
    global_names: &[(String, String)],
    func_names: &[String],
    native: bool,
    def: usize,
) -> Result<String> {
    let mut ctx = lower::Ctx {
        module: m,
        helpers,
        global_names,
        func_names,
        native,
    };
    lower::translate(&mut ctx, def)
}

/// The chunk header every output starts with.
fn chunk_header(opts: &Options, what: &str) -> String {
    let mut out = String::from("--!optimize 2\n");
    if opts.native {
        out.push_str("--!native\n");
    }
    let _ = writeln!(out, "-- Generated by wasm-to-luau{what}. Do not edit.");
    out
}

/// The module as a main chunk (the instance interface, as [`emit`] gives it) and parts
/// holding the function bodies, each at most `split.max_chars` long. Deterministic:
/// functions are packed into parts in index order.
pub fn emit_split(m: &Module<'_>, opts: &Options, split: &Split) -> Result<Vec<String>> {
    let n = m.func_types.len();
    let via_table: Vec<String> = (0..n).map(|i| format!("F[{}]", i + 1)).collect();
    let mut e = Emitter {
        m,
        split: true,
        helpers: BTreeSet::new(),
        global_names: vec![],
        global_homes: vec![],
        func_names: via_table.clone(),
        out: String::new(),
    };
    e.helpers.insert(Helper::Rethrow);
    e.plan_globals();
    let parts = pack_parts(&e, opts, split)?;
    let mut outs: Vec<String> = vec![String::new()];
    let mut shared_used: BTreeSet<Helper> = BTreeSet::new();
    for (k, part) in parts.iter().enumerate() {
        outs.push(emit_part(
            &e,
            opts,
            part,
            (k, parts.len()),
            &mut shared_used,
        )?);
    }
    outs[0] = emit_main_chunk(e, opts, split, parts.len(), &shared_used)?;
    Ok(outs)
}

/// Packs the function bodies into parts (lists of defined-function indices) in index order,
/// measuring each function translated with every call through `F`.
fn pack_parts(e: &Emitter<'_, '_>, opts: &Options, split: &Split) -> Result<Vec<Vec<usize>>> {
    let m = e.m;
    let nimp = m.num_imported_funcs as usize;
    let has_mem = !m.memories.is_empty();
    // Pass 1: every call through `F`, to measure each function and pack the parts.
    let mut sized: Vec<(usize, BTreeSet<Helper>)> = Vec::with_capacity(m.bodies.len());
    for i in 0..m.bodies.len() {
        let mut h = BTreeSet::new();
        let text = translate_one(m, &mut h, &e.global_names, &e.func_names, opts.native, i)?;
        if has_mem {
            h.insert(Helper::Memgrow);
        }
        sized.push((text.len() + 16, h));
    }
    // Part header, table and local declarations (at most MAX_LOCAL_FUNCS locals), the
    // closing lines: bounded by this.
    let fixed = 1600 + 80 * m.tables.len();
    let mut parts: Vec<Vec<usize>> = vec![];
    let (mut cur, mut cur_len, mut cur_helpers) = (Vec::new(), 0usize, BTreeSet::new());
    for (i, (len, h)) in sized.iter().enumerate() {
        let mut with: BTreeSet<Helper> = cur_helpers.clone();
        with.extend(h.iter().copied());
        let prelude = crate::prelude::emit_used_split(&with, crate::prelude::SHARED).len();
        if !cur.is_empty() && cur_len + len + prelude + fixed > split.max_chars {
            parts.push(std::mem::take(&mut cur));
            cur_len = 0;
            with = h.clone();
        }
        let prelude = crate::prelude::emit_used_split(&with, crate::prelude::SHARED).len();
        if len + prelude + fixed > split.max_chars {
            return Err(crate::error::Error::new(format!(
                "function {} alone takes {} characters of Luau with the runtime helpers it needs: more than the split limit of {}",
                nimp + i,
                len + prelude + fixed,
                split.max_chars
            )));
        }
        cur.push(i);
        cur_len += len;
        cur_helpers = with;
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    Ok(parts)
}

/// Part `k` of `of` (the chunk numbered k + 2): the bodies of `part`, its most called own
/// functions as locals; the shared helpers it closes over are added to `shared_used`.
fn emit_part(
    e: &Emitter<'_, '_>,
    opts: &Options,
    part: &[usize],
    (k, of): (usize, usize),
    shared_used: &mut BTreeSet<Helper>,
) -> Result<String> {
    let m = e.m;
    let nimp = m.num_imported_funcs as usize;
    let has_mem = !m.memories.is_empty();
    let calls = call_counts(m, part)?;
    let mut own: Vec<usize> = part.iter().map(|&d| nimp + d).collect();
    own.sort_by_key(|&f| (std::cmp::Reverse(calls[f]), f));
    let mut names = e.func_names.clone();
    let mut locals: Vec<usize> = own
        .iter()
        .copied()
        .filter(|&f| calls[f] > 0)
        .take(MAX_LOCAL_FUNCS)
        .collect();
    locals.sort_unstable();
    for &f in &locals {
        names[f] = format!("f{f}");
    }
    let mut helpers = BTreeSet::new();
    let mut body = String::new();
    for &d in part {
        let text = translate_one(m, &mut helpers, &e.global_names, &names, opts.native, d)?;
        let _ = writeln!(body, "{} = {}", names[nimp + d], text);
    }
    if has_mem {
        helpers.insert(Helper::Memgrow);
    }
    let mut o = chunk_header(opts, &format!(" (part {} of {})", k + 2, of + 1));
    o.push_str(&crate::prelude::emit_used_split(
        &helpers,
        crate::prelude::SHARED,
    ));
    o.push_str("return function(SH)\n\tlocal F, GT, GC, D, E = SH.F, SH.GT, SH.GC, SH.D, SH.E\n");
    if has_mem {
        let _ = writeln!(o, "\tlocal MO = SH.MO\n\tlocal M = MO.buffer\n\ttable.insert(MO.listeners, function(b) M = b end)\n\tlocal function MG(n) return {MEMGROW}(MO, n) end");
    }
    for t in 0..m.tables.len() {
        let _ = writeln!(
            o,
            "\tlocal T{t} = SH.T[{t}]\n\tlocal TF{t}, TS{t} = T{t}.f, T{t}.s"
        );
    }
    for &h in crate::prelude::SHARED {
        if crate::prelude::closes_over(&helpers, h) {
            shared_used.insert(h);
            let name = h.name();
            let _ = writeln!(o, "\t{name} = SH.{name}");
        }
    }
    let local_names: Vec<String> = locals.iter().map(|f| format!("f{f}")).collect();
    for chunk in local_names.chunks(20) {
        let _ = writeln!(o, "\tlocal {}", chunk.join(", "));
    }
    o.push_str(&body);
    for &f in &locals {
        let _ = writeln!(o, "\tF[{}] = f{f}", f + 1);
    }
    o.push_str("end\n");
    Ok(o)
}

/// The main chunk of a split output: `instantiate` as in [`emit`], linking the `nparts`
/// parts in place of the bodies and sharing with them the helpers in `shared_used`.
fn emit_main_chunk(
    mut e: Emitter<'_, '_>,
    opts: &Options,
    split: &Split,
    nparts: usize,
    shared_used: &BTreeSet<Helper>,
) -> Result<String> {
    let m = e.m;
    let n = m.func_types.len();
    let has_mem = !m.memories.is_empty();
    let mut body = String::new();
    e.emit_imports(&mut body);
    e.emit_definitions(&mut body);
    let mut sh = vec![
        "F = F".to_string(),
        "GT = GT".into(),
        "GC = GC".into(),
        "D = D".into(),
        "E = E".into(),
    ];
    if has_mem {
        sh.push("MO = MO".into());
    }
    let tables: Vec<String> = (0..m.tables.len())
        .map(|t| format!("[{t}] = T{t}"))
        .collect();
    sh.push(format!("T = {{{}}}", tables.join(", ")));
    for &h in shared_used {
        e.helpers.insert(h);
        let name = h.name();
        sh.push(format!("{name} = {name}"));
    }
    let _ = writeln!(body, "\tlocal SH = {{{}}}", sh.join(", "));
    for k in 0..nparts {
        let _ = writeln!(body, "\tP{}(SH)", k + 2);
    }
    let refs_from_globals = m
        .elems
        .iter()
        .any(|s| s.items.iter().any(|c| matches!(c, ConstVal::GlobalGet(_))));
    let parts_use_fsig = shared_used.contains(&Helper::Fsig);
    if refs_from_globals
        || parts_use_fsig
        || [Helper::Tset, Helper::Tgrow, Helper::Tfill]
            .iter()
            .any(|h| e.helpers.contains(h))
    {
        for i in 0..n {
            let sig = sig_key(&m.types[m.func_types[i] as usize]);
            let _ = writeln!(body, "\t{FSIG}[{}] = \"{sig}\"", e.func_names[i]);
        }
        e.helpers.insert(Helper::Fsig);
    }
    e.finish_globals(&mut body);
    e.emit_segments(&mut body, opts);
    let exports = e.emit_exports(&mut body);
    if let Some(s) = m.start {
        let _ = writeln!(
            body,
            "\tdo\n\t\tlocal ok, err = pcall({})\n\t\tif not ok then {RETHROW}(err) end\n\tend",
            e.func_names[s as usize]
        );
    }
    let _ = writeln!(body, "\treturn {{exports = {exports}}}");
    let mut out = chunk_header(opts, &format!(" (main chunk; parts 2 to {})", nparts + 1));
    out.push_str(&crate::prelude::emit_used(&e.helpers));
    for k in 0..nparts {
        let _ = writeln!(
            out,
            "local P{} = {}",
            k + 2,
            split.require.replace("{n}", &(k + 2).to_string())
        );
    }
    out.push_str("local function instantiate(imports)\n\tlocal F = {}\n");
    out.push_str(&body);
    out.push_str("end\nreturn {instantiate = instantiate}\n");
    if out.len() > split.max_chars {
        return Err(crate::error::Error::new(format!(
            "the main chunk (imports, data segments, exports) takes {} characters: more than the split limit of {}",
            out.len(),
            split.max_chars
        )));
    }
    Ok(out)
}
