//! Inputs that break naive transpilers on Luau's limits (200 locals, 255 registers, parser
//! nesting, jump distances). Each module is built with wasm-encoder, transpiled, run in Luau
//! (interpreted and native) and checked against the answer computed here in Rust.
mod common;

use wasm_encoder::{
    BlockType, CodeSection, ExportKind, ExportSection, Function, FunctionSection, Instruction as I,
    Module, TypeSection, ValType,
};

/// A module exporting one function `f: (i32) -> i32` with the given locals and body.
fn module(locals: Vec<(u32, ValType)>, body: impl FnOnce(&mut Function)) -> Vec<u8> {
    let mut m = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    m.section(&types);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    m.section(&funcs);
    let mut exports = ExportSection::new();
    exports.export("f", ExportKind::Func, 0);
    m.section(&exports);
    let mut f = Function::new(locals);
    body(&mut f);
    f.instruction(&I::End);
    let mut code = CodeSection::new();
    code.function(&f);
    m.section(&code);
    m.finish()
}

/// Run `f(arg)` for each arg, interpreted and native; returns results as i32.
fn run(wasm: &[u8], args: &[i32]) -> Vec<Vec<i32>> {
    let mut out = vec![];
    for native in [false, true] {
        let (_lua, chunk) = common::load(wasm, native, "stress");
        let inst: mlua::Table = chunk
            .get::<mlua::Function>("instantiate")
            .unwrap()
            .call(())
            .unwrap();
        let f: mlua::Function = inst
            .get::<mlua::Table>("exports")
            .unwrap()
            .get("f")
            .unwrap();
        out.push(
            args.iter()
                .map(|&a| f.call::<i32>(a).expect("call"))
                .collect(),
        );
    }
    out
}

fn check(wasm: &[u8], args: &[i32], expect: impl Fn(i32) -> i32) {
    let want: Vec<i32> = args.iter().map(|&a| expect(a)).collect();
    for got in run(wasm, args) {
        assert_eq!(got, want);
    }
}

#[test]
fn thousand_locals() {
    // 1000 i32 locals and 200 i64 locals, each set from the argument and summed.
    let wasm = module(vec![(1000, ValType::I32), (200, ValType::I64)], |f| {
        for k in 0..1000u32 {
            f.instruction(&I::LocalGet(0));
            f.instruction(&I::I32Const(k as i32 * 3));
            f.instruction(&I::I32Add);
            f.instruction(&I::LocalSet(1 + k));
        }
        for k in 0..200u32 {
            f.instruction(&I::LocalGet(0));
            f.instruction(&I::I64ExtendI32S);
            f.instruction(&I::I64Const(k as i64 * 0x1_0000_0001));
            f.instruction(&I::I64Mul);
            f.instruction(&I::LocalSet(1001 + k));
        }
        f.instruction(&I::I32Const(0));
        for k in 0..1000u32 {
            f.instruction(&I::LocalGet(1 + k));
            f.instruction(&I::I32Xor);
            f.instruction(&I::I32Const(31));
            f.instruction(&I::I32Rotl);
        }
        for k in 0..200u32 {
            f.instruction(&I::LocalGet(1001 + k));
            f.instruction(&I::I64Const(17));
            f.instruction(&I::I64ShrU);
            f.instruction(&I::I32WrapI64);
            f.instruction(&I::I32Add);
        }
    });
    check(&wasm, &[0, 1, -7, 123456], |a| {
        let mut acc = 0i32;
        for k in 0..1000 {
            acc = (acc ^ a.wrapping_add(k * 3)).rotate_left(31);
        }
        for k in 0..200i64 {
            let v = (a as i64).wrapping_mul(k * 0x1_0000_0001);
            acc = acc.wrapping_add(((v as u64) >> 17) as i32);
        }
        acc
    });
}

#[test]
fn thousand_nested_blocks() {
    // A switch: 1000 nested blocks, a br_table at the bottom, a distinct return after each end.
    let n = 1000u32;
    let wasm = module(vec![], |f| {
        for _ in 0..n {
            f.instruction(&I::Block(BlockType::Empty));
        }
        f.instruction(&I::LocalGet(0));
        let targets: Vec<u32> = (0..n).collect();
        f.instruction(&I::BrTable(targets.into(), n - 1));
        for j in (0..n).rev() {
            f.instruction(&I::End);
            f.instruction(&I::I32Const(j as i32 * 7 + 1));
            if j % 3 == 0 {
                f.instruction(&I::Return);
            } else {
                // Fall into the enclosing block's tail with a value dropped.
                f.instruction(&I::Drop);
            }
        }
        f.instruction(&I::I32Const(-1));
    });
    let args: Vec<i32> = (0..1005).step_by(7).chain([999, 1000, -1]).collect();
    check(&wasm, &args, |p| {
        let d = if (0..1000).contains(&p) {
            p as u32
        } else {
            999
        };
        let mut j = 999 - d;
        loop {
            if j % 3 == 0 {
                return j as i32 * 7 + 1;
            }
            j -= 1;
        }
    });
}

#[test]
fn br_table_ten_thousand_targets() {
    let blocks = 8u32;
    let wasm = module(vec![], |f| {
        for _ in 0..blocks {
            f.instruction(&I::Block(BlockType::Empty));
        }
        f.instruction(&I::LocalGet(0));
        let targets: Vec<u32> = (0..10_000u32)
            .map(|i| (i * 7919 + i / 13) % blocks)
            .collect();
        f.instruction(&I::BrTable(targets.into(), 3));
        for j in (0..blocks).rev() {
            f.instruction(&I::End);
            f.instruction(&I::I32Const(100 + j as i32));
            f.instruction(&I::Return);
        }
        f.instruction(&I::I32Const(-1));
    });
    let args: Vec<i32> = (0..10_010).step_by(37).chain([9_999, 10_000, -5]).collect();
    check(&wasm, &args, |p| {
        let d = if (0..10_000).contains(&p) {
            (p as u32 * 7919 + p as u32 / 13) % blocks
        } else {
            3
        };
        100 + (blocks - 1 - d) as i32
    });
}

#[test]
fn thousand_deep_expression() {
    // local.get; const; op; ... nested 1000 deep: operands pushed first, operators applied last.
    let n = 1000;
    let wasm = module(vec![], |f| {
        for k in 0..n {
            f.instruction(&I::LocalGet(0));
            f.instruction(&I::I32Const(k));
            f.instruction(&I::I32Add);
        }
        for k in 0..n - 1 {
            f.instruction(&if k % 2 == 0 { I::I32Xor } else { I::I32Sub });
        }
    });
    check(&wasm, &[0, 5, -1000, 77777], |a| {
        let vals: Vec<i32> = (0..n).map(|k| a.wrapping_add(k)).collect();
        let mut stack = vals;
        for k in 0..n - 1 {
            let b = stack.pop().unwrap();
            let x = stack.pop().unwrap();
            stack.push(if k % 2 == 0 { x ^ b } else { x.wrapping_sub(b) });
        }
        stack[0]
    });
}

#[test]
fn two_hundred_thousand_instructions() {
    let reps = 34_000;
    let wasm = module(vec![(1, ValType::I32)], |f| {
        for k in 0..reps {
            f.instruction(&I::LocalGet(1));
            f.instruction(&I::LocalGet(0));
            f.instruction(&I::I32Add);
            f.instruction(&I::I32Const((k % 5) + 3));
            f.instruction(&I::I32Mul);
            f.instruction(&I::LocalSet(1));
        }
        f.instruction(&I::LocalGet(1));
    });
    check(&wasm, &[0, 1, -3, 99], |a| {
        let mut l = 0i32;
        for k in 0..reps {
            l = l.wrapping_add(a).wrapping_mul((k % 5) + 3);
        }
        l
    });
}

#[test]
fn many_globals_and_imports() {
    // 80 imported immutable globals and 120 exported mutable globals: more than the 200
    // locals `instantiate` may declare if each became one.
    use wasm_encoder::{ConstExpr, EntityType, GlobalSection, GlobalType, ImportSection};
    let (ni, ng) = (80u32, 120u32);
    let mut m = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    m.section(&types);
    let mut imports = ImportSection::new();
    for i in 0..ni {
        let gt = GlobalType {
            val_type: ValType::I32,
            mutable: false,
            shared: false,
        };
        imports.import("env", &format!("c{i}"), EntityType::Global(gt));
    }
    m.section(&imports);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    m.section(&funcs);
    let mut globals = GlobalSection::new();
    for i in 0..ng {
        let gt = GlobalType {
            val_type: ValType::I32,
            mutable: true,
            shared: false,
        };
        globals.global(gt, &ConstExpr::i32_const(i as i32));
    }
    m.section(&globals);
    let mut exports = ExportSection::new();
    exports.export("f", ExportKind::Func, 0);
    for i in 0..ng {
        exports.export(&format!("g{i}"), ExportKind::Global, ni + i);
    }
    m.section(&exports);
    let mut f = Function::new(vec![]);
    for i in 0..ng {
        f.instruction(&I::GlobalGet(ni + i));
        f.instruction(&I::GlobalGet(i % ni));
        f.instruction(&I::I32Add);
        f.instruction(&I::LocalGet(0));
        f.instruction(&I::I32Add);
        f.instruction(&I::GlobalSet(ni + i));
    }
    f.instruction(&I::I32Const(0));
    for i in 0..ng {
        f.instruction(&I::GlobalGet(ni + i));
        f.instruction(&I::I32Add);
    }
    f.instruction(&I::End);
    let mut code = CodeSection::new();
    code.function(&f);
    m.section(&code);
    let wasm = m.finish();
    for native in [false, true] {
        let (lua, chunk) = common::load(&wasm, native, "stress");
        let env = lua.create_table().unwrap();
        for i in 0..ni {
            env.set(format!("c{i}"), i * 3).unwrap();
        }
        let imports = lua.create_table().unwrap();
        imports.set("env", env).unwrap();
        let inst: mlua::Table = chunk
            .get::<mlua::Function>("instantiate")
            .unwrap()
            .call(imports)
            .unwrap();
        let ex: mlua::Table = inst.get("exports").unwrap();
        let f: mlua::Function = ex.get("f").unwrap();
        let got: i32 = f.call(5).unwrap();
        let want: i32 = (0..ng as i32).map(|i| i + (i % ni as i32) * 3 + 5).sum();
        assert_eq!(got, want);
        let g7: mlua::Table = ex.get("g119").unwrap();
        let get: mlua::Function = lua
            .load("local g = ... return g:get()")
            .into_function()
            .unwrap();
        let v: i32 = get.call(g7).unwrap();
        assert_eq!(v, 119 + (119 % 80) * 3 + 5);
    }
}
