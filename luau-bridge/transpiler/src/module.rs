//! Validation and decoding of a module into the plain facts the emitter needs.
//! Nothing is emitted for a module the validator rejects.
use crate::error::{Error, Result};
use wasmparser::{
    ElementItems, ElementKind, ExternalKind, FuncToValidate, FuncValidator, FunctionBody, Operator,
    Parser, Payload, TypeRef, ValType, ValidPayload, Validator, ValidatorResources, WasmFeatures,
};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FuncType {
    pub params: Vec<ValType>,
    pub results: Vec<ValType>,
}

/// Value of a constant expression (globals, segment offsets, element items).
#[derive(Debug, Clone, Copy)]
pub enum ConstVal {
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
    GlobalGet(u32),
    RefNull,
    RefFunc(u32),
    /// `array.new_default` with a constant length: a fresh GC array (a Luau table).
    NewArray(u32),
}

#[derive(Debug, Clone)]
pub enum ImportKind {
    Func(u32),
    Table { initial: u64, maximum: Option<u64> },
    Memory { initial: u64, maximum: Option<u64> },
    Global { ty: ValType, mutable: bool },
}

#[derive(Debug, Clone)]
pub struct Import {
    pub module: String,
    pub name: String,
    pub kind: ImportKind,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub initial: u64,
    pub maximum: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Global {
    pub ty: ValType,
    pub mutable: bool,
    /// `None` for imported globals.
    pub init: Option<ConstVal>,
}

#[derive(Debug, Clone)]
pub enum ElemMode {
    Passive,
    Declared,
    Active { table: u32, offset: ConstVal },
}

#[derive(Debug, Clone)]
pub struct Elem {
    pub mode: ElemMode,
    pub items: Vec<ConstVal>,
}

#[derive(Debug, Clone)]
pub struct Data<'a> {
    pub active: Option<(u32, ConstVal)>,
    pub bytes: &'a [u8],
}

/// A decoded module: the facts the emitter reads.
#[derive(Default)]
pub struct Module<'a> {
    pub types: Vec<FuncType>,
    pub imports: Vec<Import>,
    /// Type index of every function, imported ones first.
    pub func_types: Vec<u32>,
    pub num_imported_funcs: u32,
    pub tables: Vec<Limits>,
    pub num_imported_tables: u32,
    pub memories: Vec<Limits>,
    pub num_imported_memories: u32,
    pub globals: Vec<Global>,
    pub num_imported_globals: u32,
    pub exports: Vec<(String, ExternalKind, u32)>,
    pub start: Option<u32>,
    pub elems: Vec<Elem>,
    pub datas: Vec<Data<'a>>,
    pub bodies: Vec<FunctionBody<'a>>,
    /// What validating each body again needs (the analysis walk reads operand types from
    /// the validator), in the order of `bodies`.
    pub checks: Vec<FuncCheck>,
}

/// The validator's view of one defined function, kept to walk its body again.
#[derive(Clone)]
pub struct FuncCheck {
    resources: ValidatorResources,
    index: u32,
    ty: u32,
    features: WasmFeatures,
}

impl FuncCheck {
    /// A fresh validator for the function's body.
    pub fn validator(&self) -> FuncValidator<ValidatorResources> {
        FuncToValidate {
            resources: self.resources.clone(),
            index: self.index,
            ty: self.ty,
            features: self.features,
        }
        .into_validator(Default::default())
    }
}

/// Validates the whole module as `Validator::validate_all` does (same checks, same first
/// error), keeping each function's validation resources.
fn validate(wasm: &[u8], features: WasmFeatures) -> Result<Vec<FuncCheck>> {
    let mut validator = Validator::new_with_features(features);
    let mut parser = Parser::new(0);
    parser.set_features(features);
    let mut funcs = vec![];
    for payload in parser.parse_all(wasm) {
        if let ValidPayload::Func(f, body) = validator.payload(&payload?)? {
            funcs.push((f, body));
        }
    }
    let mut checks = Vec::with_capacity(funcs.len());
    let mut allocs = Default::default();
    for (f, body) in funcs {
        checks.push(FuncCheck {
            resources: f.resources.clone(),
            index: f.index,
            ty: f.ty,
            features: f.features,
        });
        let mut v = f.into_validator(allocs);
        v.validate(&body)?;
        allocs = v.into_allocations();
    }
    Ok(checks)
}

/// The feature set rustc emits for wasm32-unknown-unknown by default, which is what we accept.
pub fn default_features() -> WasmFeatures {
    WasmFeatures::WASM1
        | WasmFeatures::MULTI_VALUE
        | WasmFeatures::SIGN_EXTENSION
        | WasmFeatures::SATURATING_FLOAT_TO_INT
        | WasmFeatures::BULK_MEMORY
        | WasmFeatures::REFERENCE_TYPES
        | WasmFeatures::CALL_INDIRECT_OVERLONG
}

fn const_val(expr: &wasmparser::ConstExpr<'_>) -> Result<ConstVal> {
    let mut reader = expr.get_operators_reader();
    let offset = reader.original_position();
    let op = reader.read()?;
    let v = match op {
        Operator::I32Const { value } if !reader.eof() => {
            // `i32.const n; array.new_default` is the one extended form supported.
            let mut peek = reader.clone();
            match peek.read()? {
                Operator::ArrayNewDefault { .. } => {
                    reader = peek;
                    ConstVal::NewArray(value as u32)
                }
                _ => ConstVal::I32(value),
            }
        }
        Operator::I32Const { value } => ConstVal::I32(value),
        Operator::I64Const { value } => ConstVal::I64(value),
        Operator::F32Const { value } => ConstVal::F32(value.bits()),
        Operator::F64Const { value } => ConstVal::F64(value.bits()),
        Operator::GlobalGet { global_index } => ConstVal::GlobalGet(global_index),
        Operator::RefNull { .. } => ConstVal::RefNull,
        Operator::RefFunc { function_index } => ConstVal::RefFunc(function_index),
        other => {
            return Err(Error::at(
                format!("unsupported constant expression {other:?}"),
                offset,
            ))
        }
    };
    match reader.read()? {
        Operator::End => Ok(v),
        other => Err(Error::at(
            format!("unsupported extended constant expression (found {other:?})"),
            reader.original_position(),
        )),
    }
}

/// Index (in the function index space) of the function whose body holds byte `offset`.
fn function_at(wasm: &[u8], offset: usize) -> Option<u32> {
    let mut imported = 0u32;
    let mut defined = 0u32;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.ok()? {
            Payload::ImportSection(r) => {
                for imp in r.into_imports() {
                    if matches!(imp.ok()?.ty, TypeRef::Func(_)) {
                        imported += 1;
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                if body.range().contains(&(offset as u64)) {
                    return Some(imported + defined);
                }
                defined += 1;
            }
            _ => {}
        }
    }
    None
}

/// Validates `wasm` with `features` and decodes it; an invalid module is an error naming the
/// byte offset (and the function, for an error inside code).
pub fn parse(wasm: &[u8], features: WasmFeatures) -> Result<Module<'_>> {
    let checks = validate(wasm, features).map_err(|mut err| {
        if let Some(f) = err.offset.and_then(|off| function_at(wasm, off)) {
            err = err.in_func(f);
        }
        err
    })?;
    let mut m = Module {
        checks,
        ..Module::default()
    };
    for payload in Parser::new(0).parse_all(wasm) {
        m.read(payload?)?;
    }
    if m.memories.len() > 1 {
        return Err(Error::new("unsupported: more than one memory"));
    }
    Ok(m)
}

impl<'a> Module<'a> {
    /// Takes in one section (or code entry) of a validated module.
    fn read(&mut self, payload: Payload<'a>) -> Result<()> {
        match payload {
            Payload::TypeSection(r) => {
                for rec in r {
                    for sub in rec?.types() {
                        self.types.push(func_type(&sub.composite_type.inner));
                    }
                }
            }
            Payload::ImportSection(r) => {
                for imp in r.into_imports_with_offsets() {
                    let (off, imp) = imp?;
                    self.read_import(off as usize, imp)?;
                }
            }
            Payload::FunctionSection(r) => {
                for t in r {
                    self.func_types.push(t?);
                }
            }
            Payload::TableSection(r) => {
                for t in r {
                    let t = t?;
                    self.tables.push(Limits {
                        initial: t.ty.initial,
                        maximum: t.ty.maximum,
                    });
                    if let wasmparser::TableInit::Expr(_) = t.init {
                        return Err(Error::new("unsupported table initializer expression"));
                    }
                }
            }
            Payload::MemorySection(r) => {
                for t in r {
                    let t = t?;
                    self.memories.push(Limits {
                        initial: t.initial,
                        maximum: t.maximum,
                    });
                }
            }
            Payload::GlobalSection(r) => {
                for g in r {
                    let g = g?;
                    self.globals.push(Global {
                        ty: g.ty.content_type,
                        mutable: g.ty.mutable,
                        init: Some(const_val(&g.init_expr)?),
                    });
                }
            }
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e?;
                    self.exports.push((e.name.to_string(), e.kind, e.index));
                }
            }
            Payload::StartSection { func, .. } => self.start = Some(func),
            Payload::ElementSection(r) => {
                for e in r {
                    self.elems.push(elem(e?)?);
                }
            }
            Payload::DataSection(r) => {
                for d in r {
                    self.datas.push(data(d?)?);
                }
            }
            Payload::CodeSectionEntry(body) => self.bodies.push(body),
            _ => {}
        }
        Ok(())
    }

    /// Takes in one import (at byte `off`), counting it among the imported items of its kind.
    fn read_import(&mut self, off: usize, imp: wasmparser::Import<'_>) -> Result<()> {
        let kind = match imp.ty {
            TypeRef::Func(t) => {
                self.func_types.push(t);
                self.num_imported_funcs += 1;
                ImportKind::Func(t)
            }
            TypeRef::Table(t) => {
                self.tables.push(Limits {
                    initial: t.initial,
                    maximum: t.maximum,
                });
                self.num_imported_tables += 1;
                ImportKind::Table {
                    initial: t.initial,
                    maximum: t.maximum,
                }
            }
            TypeRef::Memory(t) => {
                self.memories.push(Limits {
                    initial: t.initial,
                    maximum: t.maximum,
                });
                self.num_imported_memories += 1;
                ImportKind::Memory {
                    initial: t.initial,
                    maximum: t.maximum,
                }
            }
            TypeRef::Global(g) => {
                self.globals.push(Global {
                    ty: g.content_type,
                    mutable: g.mutable,
                    init: None,
                });
                self.num_imported_globals += 1;
                ImportKind::Global {
                    ty: g.content_type,
                    mutable: g.mutable,
                }
            }
            other => return Err(Error::at(format!("unsupported import {other:?}"), off)),
        };
        self.imports.push(Import {
            module: imp.module.to_string(),
            name: imp.name.to_string(),
            kind,
        });
        Ok(())
    }
}

/// A type section entry: a function type, or (GC array/struct types, which keep their index;
/// only arrays made by `array.new_default` in constant expressions are supported) an empty one.
fn func_type(inner: &wasmparser::CompositeInnerType) -> FuncType {
    match inner {
        wasmparser::CompositeInnerType::Func(f) => FuncType {
            params: f.params().to_vec(),
            results: f.results().to_vec(),
        },
        _ => FuncType {
            params: vec![],
            results: vec![],
        },
    }
}

/// An element segment: its mode and constant items.
fn elem(e: wasmparser::Element<'_>) -> Result<Elem> {
    let mode = match e.kind {
        ElementKind::Passive => ElemMode::Passive,
        ElementKind::Declared => ElemMode::Declared,
        ElementKind::Active {
            table_index,
            offset_expr,
        } => ElemMode::Active {
            table: table_index.unwrap_or(0),
            offset: const_val(&offset_expr)?,
        },
    };
    let mut items = vec![];
    match e.items {
        ElementItems::Functions(r) => {
            for f in r {
                items.push(ConstVal::RefFunc(f?));
            }
        }
        ElementItems::Expressions(_, r) => {
            for x in r {
                items.push(const_val(&x?)?);
            }
        }
    }
    Ok(Elem { mode, items })
}

/// A data segment: its placement (memory and offset, for an active one) and bytes.
fn data<'a>(d: wasmparser::Data<'a>) -> Result<Data<'a>> {
    let active = match d.kind {
        wasmparser::DataKind::Passive => None,
        wasmparser::DataKind::Active {
            memory_index,
            offset_expr,
        } => Some((memory_index, const_val(&offset_expr)?)),
    };
    Ok(Data {
        active,
        bytes: d.data,
    })
}
