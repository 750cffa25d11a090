//! Linear memory: loads, stores, size, grow, bulk operations, data segments.
use super::*;

/// The address `n` bytes after `addr` (the high word of an i64): folded when constant.
fn plus(addr: &Expr, n: u64) -> Expr {
    match addr.int() {
        Some(c) => Expr::Int(c + n),
        None => tight(addr.clone(), BinOp::Add, Expr::Int(n)),
    }
}

/// The buffer local.
const M: Expr = Expr::Sym("M");

impl Translator<'_, '_, '_> {
    /// Lowers one of the linear memory: loads, stores, size, grow, bulk operations, data segments; `Ok(false)` when `op` is another operator.
    pub(in crate::lower) fn memory_op(&mut self, op: &Operator<'_>) -> Result<bool> {
        use Operator as O;
        use ValType::{F32, F64, I32, I64};
        match op {
            O::I32Load { memarg } => self.load(I32, memarg, Builtin::Readu32, false),
            O::I64Load { memarg } => {
                let a = self.pop();
                let k = self.stack.len();
                let a = self.simple_at(a, k);
                let addr = self.addr(&a, memarg);
                let hi_addr = plus(&addr, 4);
                self.clobber_slot(k);
                let s = self.slot_name(k);
                let t = self.slot_hi_name(k);
                self.assign(&t, builtin_call(Builtin::Readu32, vec![M, hi_addr]));
                self.assign(&s, builtin_call(Builtin::Readu32, vec![M, addr]));
                let v = self.slot_val(k, I64);
                self.stack.push(v);
                self.note_access(&a);
            }
            O::F32Load { memarg } => {
                let a = self.pop();
                let addr = self.addr(&a, memarg);
                let f32load = self.helper(Helper::F32load);
                self.push_eager(F32, helper_call(f32load, vec![M, addr]));
                self.note_access(&a);
            }
            O::F64Load { memarg } => self.load(F64, memarg, Builtin::Readf64, false),
            O::I32Load8S { memarg } => self.load(I32, memarg, Builtin::Readi8, true),
            O::I32Load8U { memarg } => self.load(I32, memarg, Builtin::Readu8, false),
            O::I32Load16S { memarg } => self.load(I32, memarg, Builtin::Readi16, true),
            O::I32Load16U { memarg } => self.load(I32, memarg, Builtin::Readu16, false),
            O::I64Load8S { memarg } => self.load64(memarg, Builtin::Readi8, true),
            O::I64Load8U { memarg } => self.load64(memarg, Builtin::Readu8, false),
            O::I64Load16S { memarg } => self.load64(memarg, Builtin::Readi16, true),
            O::I64Load16U { memarg } => self.load64(memarg, Builtin::Readu16, false),
            O::I64Load32S { memarg } => self.load64(memarg, Builtin::Readi32, true),
            O::I64Load32U { memarg } => self.load64(memarg, Builtin::Readu32, false),
            O::I32Store { memarg } => self.store(memarg, Builtin::Writeu32, false),
            O::I64Store { memarg } => self.store(memarg, Builtin::Writeu32, true),
            O::F32Store { memarg } => {
                let v = self.pop();
                let a = self.pop();
                let addr = self.addr(&a, memarg);
                let h = self.helper(Helper::F32store);
                self.call_stmt(helper_call(h, vec![M, addr, v.e]));
                self.note_access(&a);
            }
            O::F64Store { memarg } => self.store(memarg, Builtin::Writef64, false),
            O::I32Store8 { memarg } | O::I64Store8 { memarg } => {
                self.store(memarg, Builtin::Writeu8, false)
            }
            O::I32Store16 { memarg } | O::I64Store16 { memarg } => {
                self.store(memarg, Builtin::Writeu16, false)
            }
            O::I64Store32 { memarg } => self.store(memarg, Builtin::Writeu32, false),
            O::MemorySize { .. } => {
                let len = builtin_call(Builtin::Len, vec![M]);
                self.push_eager(I32, tight(len, BinOp::IDiv, Expr::Int(65536)))
            }
            O::MemoryGrow { .. } => {
                let a = self.pop();
                let grow = Expr::Call(Callee::Chunk("MG"), vec![Self::num(&a)].into());
                self.push_eager(I32, grow);
                self.reload_mem();
            }
            O::MemoryFill { .. } => {
                let n = self.pop();
                let v = self.pop();
                let d = self.pop();
                let h = self.helper(Helper::Mfill);
                let args = vec![M, Self::num(&d), Self::num(&v), Self::num(&n)];
                self.call_stmt(helper_call(h, args));
            }
            O::MemoryCopy { .. } => {
                let n = self.pop();
                let s = self.pop();
                let d = self.pop();
                let h = self.helper(Helper::Mcopy);
                let args = vec![M, Self::num(&d), Self::num(&s), Self::num(&n)];
                self.call_stmt(helper_call(h, args));
            }
            O::MemoryInit { data_index, .. } => {
                let n = self.pop();
                let s = self.pop();
                let d = self.pop();
                let h = self.helper(Helper::Minit);
                let seg = Expr::Text(format!("D[{}]", data_index + 1));
                let args = vec![M, seg, Self::num(&d), Self::num(&s), Self::num(&n)];
                self.call_stmt(helper_call(h, args));
            }
            O::DataDrop { data_index } => {
                let dropped = self.helper(Helper::Dropped);
                self.line(&format!("D[{}]={dropped}", data_index + 1))
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The address `a` plus the static offset: a constant when `a` is one.
    pub(in crate::lower) fn addr(&mut self, a: &Val, m: &MemArg) -> Expr {
        match a.const_lo() {
            Some(c) => Expr::Int(c + m.offset),
            None if m.offset == 0 => Self::num(a),
            None => tight(Self::num(a), BinOp::Add, Expr::Int(m.offset)),
        }
    }

    /// A load through `buffer.<f>`; a signed narrow load (`wrap`) reduced modulo 2^32.
    pub(in crate::lower) fn load(&mut self, ty: ValType, m: &MemArg, f: Builtin, wrap: bool) {
        self.canon_at(self.stack.len() - 1, 1);
        let a = self.pop();
        let addr = self.addr(&a, m);
        if let (ValType::I32, Builtin::Readu32, false) = (ty, f, wrap) {
            // Recorded for the signed-compare fusion, which may make it a signed load.
            let rec = LoadStmt {
                slot: self.stack.len(),
                at: self.out.len(),
            };
            self.push_eager_value(
                ty,
                Rvalue::Load32 {
                    addr,
                    signed: false,
                },
            );
            self.loads = [self.loads[1].take(), Some(rec)];
        } else {
            let read = builtin_call(f, vec![M, addr]);
            let e = if wrap {
                tight(read, BinOp::Mod, Expr::Sym("W"))
            } else {
                read
            };
            self.push_eager(ty, e);
        }
        self.note_access(&a);
    }

    /// i64 loads narrower than 64 bits: low half from `f`, high half sign or zero.
    pub(in crate::lower) fn load64(&mut self, m: &MemArg, f: Builtin, signed: bool) {
        let a = self.pop();
        let addr = self.addr(&a, m);
        let k = self.stack.len();
        self.clobber_slot(k);
        let s = self.slot_name(k);
        let t = self.slot_hi_name(k);
        self.assign(&s, builtin_call(f, vec![M, addr]));
        let low = Expr::Var(Var::Slot(k), self.slot_var(k));
        if signed {
            let neg = tight(low.clone(), BinOp::Lt, Expr::Int(0));
            let ones = tight(neg, BinOp::And, Expr::Int(0xFFFF_FFFF));
            self.assign(&t, tight(ones, BinOp::Or, Expr::Int(0)));
            self.assign(&s, tight(low, BinOp::Mod, Expr::Sym("W")));
        } else {
            self.assign(&t, Expr::Int(0));
        }
        let v = self.slot_val(k, ValType::I64);
        self.stack.push(v);
        self.note_access(&a);
    }

    pub(in crate::lower) fn store(&mut self, m: &MemArg, f: Builtin, wide: bool) {
        self.canon_at(self.stack.len() - 2, 1);
        let v = self.pop();
        let a = self.pop();
        let k = self.stack.len();
        let a = if wide { self.simple_at(a, k) } else { a };
        let addr = self.addr(&a, m);
        let val = if v.ty == ValType::I32 {
            Self::bits(&v)
        } else {
            v.e.clone()
        };
        if wide {
            let hi_addr = plus(&addr, 4);
            self.call_stmt(builtin_call(Builtin::Writeu32, vec![M, hi_addr, v.h]));
            self.call_stmt(builtin_call(Builtin::Writeu32, vec![M, addr, val]));
        } else {
            self.call_stmt(builtin_call(f, vec![M, addr, val]));
        }
        self.note_access(&a);
    }
}

/// Whether `op` reads the memory's buffer `M` (every memory operator but `memory.grow` and
/// `data.drop`): a function with one keeps `M` in a local.
pub(in crate::lower) fn reads_memory(op: &Operator<'_>) -> bool {
    use Operator as O;
    matches!(
        op,
        O::I32Load { .. }
            | O::I64Load { .. }
            | O::F32Load { .. }
            | O::F64Load { .. }
            | O::I32Load8S { .. }
            | O::I32Load8U { .. }
            | O::I32Load16S { .. }
            | O::I32Load16U { .. }
            | O::I64Load8S { .. }
            | O::I64Load8U { .. }
            | O::I64Load16S { .. }
            | O::I64Load16U { .. }
            | O::I64Load32S { .. }
            | O::I64Load32U { .. }
            | O::I32Store { .. }
            | O::I64Store { .. }
            | O::F32Store { .. }
            | O::F64Store { .. }
            | O::I32Store8 { .. }
            | O::I64Store8 { .. }
            | O::I32Store16 { .. }
            | O::I64Store16 { .. }
            | O::I64Store32 { .. }
            | O::MemorySize { .. }
            | O::MemoryFill { .. }
            | O::MemoryCopy { .. }
            | O::MemoryInit { .. }
    )
}
