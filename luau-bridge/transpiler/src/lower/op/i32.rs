//! i32 arithmetic, comparisons and bit operations.
use super::*;

impl Translator<'_, '_, '_> {
    /// Lowers one of the i32 arithmetic, comparisons and bit operations; `Ok(false)` when `op` is another operator.
    pub(in crate::lower) fn i32_op(&mut self, op: &Operator<'_>) -> Result<bool> {
        use Operator as O;
        use ValType::I32;
        match op {
            O::I32Eqz => {
                let a = self.pop();
                let e = if a.boolean {
                    unary(UnOp::Not, a.e.clone())
                } else {
                    group(a.e.clone(), BinOp::Eq, Expr::Int(0))
                };
                let mut v = Self::derive(I32, e, Expr::none(), &[&a]);
                v.boolean = true;
                self.push(v);
            }
            O::I32Eq => self.cmp(BinOp::Eq),
            O::I32Ne => self.cmp(BinOp::Ne),
            O::I32LtU => self.cmp(BinOp::Lt),
            O::I32GtU => self.cmp(BinOp::Gt),
            O::I32LeU => self.cmp(BinOp::Le),
            O::I32GeU => self.cmp(BinOp::Ge),
            O::I32LtS if self.signed_cmp_loads(BinOp::Lt) => {}
            O::I32GtS if self.signed_cmp_loads(BinOp::Gt) => {}
            O::I32LeS if self.signed_cmp_loads(BinOp::Le) => {}
            O::I32GeS if self.signed_cmp_loads(BinOp::Ge) => {}
            O::I32LtS if self.signed_cmp_const(0) => {}
            O::I32GtS if self.signed_cmp_const(1) => {}
            O::I32LeS if self.signed_cmp_const(2) => {}
            O::I32GeS if self.signed_cmp_const(3) => {}
            O::I32LtS => self.signed_cmp(BinOp::Lt),
            O::I32GtS => self.signed_cmp(BinOp::Gt),
            O::I32LeS => self.signed_cmp(BinOp::Le),
            O::I32GeS => self.signed_cmp(BinOp::Ge),
            O::I32Clz => self.un(I32, |a| builtin_call(Builtin::Countlz, vec![a])),
            O::I32Ctz => self.un(I32, |a| builtin_call(Builtin::Countrz, vec![a])),
            O::I32Popcnt => self.un_call(I32, Helper::Popcnt32),
            O::I32Add | O::I32Sub => {
                let mut add = matches!(op, O::I32Add);
                let b = self.pop();
                let a = self.pop();
                let mut be = Self::num(&b);
                // `x + 0xFFFFFFFF` reads better, and reduces cheaper, as `x - 1`.
                if let Some(c) = b.const_lo() {
                    if c >= 0x8000_0000 {
                        be = Expr::Int((1u64 << 32) - c);
                        add = !add;
                    }
                }
                let op = if add { BinOp::Add } else { BinOp::Sub };
                if add {
                    if let (Some(x), Some(y)) = (self.ub_of(&a), self.ub_of(&b)) {
                        if x + y < 1 << 32 {
                            // Provably no wrap: no reduction.
                            let e = group(Self::num(&a), BinOp::Add, be);
                            let mut v = Self::derive(I32, e, Expr::none(), &[&a, &b]);
                            v.bound = Some(x + y);
                            self.push(v);
                            return Ok(true);
                        }
                    }
                }
                let raw = group(Self::num(&a), op, be);
                let e = tight(raw.clone(), BinOp::Mod, Expr::Sym("W"));
                let mut v = Self::derive(I32, e, Expr::none(), &[&a, &b]);
                v.raw = Some(raw);
                v.wrap = Some(add);
                self.push(v);
            }
            O::I32Mul => {
                let small = |v: &Val| v.const_lo().is_some_and(|c| c < (1 << 21));
                let (a_small, b_small) = {
                    let n = self.stack.len();
                    (small(&self.stack[n - 2]), small(&self.stack[n - 1]))
                };
                if a_small || b_small {
                    self.bin(I32, |a, b| {
                        tight(group(a, BinOp::Mul, b), BinOp::Mod, Expr::Sym("W"))
                    })
                } else {
                    self.bin_call(I32, Helper::Mul32)
                }
            }
            O::I32DivU | O::I32RemU | O::I32DivS | O::I32RemS => {
                let divisor = self.stack.last().unwrap().const_lo();
                let signed = matches!(op, O::I32DivS | O::I32RemS);
                let safe = divisor.is_some_and(|c| c != 0 && !(signed && c == 0xFFFF_FFFF));
                let (name, pure): (Helper, Option<BinOp>) = match op {
                    O::I32DivU => (Helper::Divu32, Some(BinOp::IDiv)),
                    O::I32RemU => (Helper::Remu32, Some(BinOp::Mod)),
                    O::I32DivS => (Helper::Divs32, None),
                    _ => (Helper::Rems32, None),
                };
                if safe {
                    if let Some(p) = pure {
                        self.bin(I32, |a, b| group(a, p, b));
                    } else {
                        self.bin_call(I32, name);
                    }
                } else {
                    self.eager_bin(I32, name);
                }
            }
            O::I32And => self.bin_bits(Builtin::Band),
            O::I32Or if self.or_low() => {}
            O::I32Or => self.bin_bits(Builtin::Bor),
            O::I32Xor => self.bin_bits(Builtin::Bxor),
            O::I32Shl if self.shl_small() => {}
            O::I32Shl => self.shift(Builtin::Lshift),
            O::I32ShrS => self.shift(Builtin::Arshift),
            O::I32ShrU => self.shift(Builtin::Rshift),
            O::I32Rotl => self.shift(Builtin::Lrotate),
            O::I32Rotr => self.shift(Builtin::Rrotate),
            O::I32Extend8S => self.un_call(I32, Helper::Ext8),
            O::I32Extend16S => self.un_call(I32, Helper::Ext16),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Binary i32 op whose Luau form reduces its operands (bit32 functions).
    /// `x << k` for a plain variable and a constant k in 1..=4 as a multiplication when it
    /// cannot wrap: always if bounds prove `x < 2^(32-k)`, else (interpreted output only)
    /// behind that compare with a register `KL{k}`, falling back to `bit32.lshift`.
    pub(in crate::lower) fn shl_small(&mut self) -> bool {
        let n = self.stack.len();
        let (a, b) = (&self.stack[n - 2], &self.stack[n - 1]);
        let Some(c) = b.const_lo() else {
            return false;
        };
        let k = c & 31;
        if !(1..=4).contains(&k)
            || a.ty != ValType::I32
            || a.boolean
            || !a.simple
            || a.raw.is_some()
            || a.const_lo().is_some()
        {
            return false;
        }
        let (lim, m) = (1u64 << (32 - k), 1u64 << k);
        let x = a.e.clone();
        let (e, bound) = match self.ub_of(a) {
            Some(u) if u < lim => (group(x, BinOp::Mul, Expr::Int(m)), Some(u * m)),
            _ if self.ctx.native => return false,
            _ => {
                let kl = Expr::Sym(["", "KL1", "KL2", "KL3", "KL4"][k as usize]);
                let shifted = builtin_call(Builtin::Lshift, vec![x.clone(), Expr::Int(k)]);
                let c = tight(x.clone(), BinOp::Lt, kl);
                let e = Expr::IfElse(Rc::new([c, tight(x, BinOp::Mul, Expr::Int(m)), shifted]));
                (e, None)
            }
        };
        // Without a bound, the expression compares with the register `KL{k}`.
        self.regs.kl[k as usize] |= bound.is_none();
        let b = self.pop();
        let a = self.pop();
        let mut v = Self::derive(ValType::I32, e, Expr::none(), &[&a, &b]);
        v.bound = bound;
        v.tz = Some(k as u32);
        self.push(v);
        true
    }

    /// A signed compare: flipping the sign bit maps signed order on canonical u32 values to
    /// unsigned order (folded into a constant operand).
    pub(in crate::lower) fn signed_cmp(&mut self, rel: BinOp) {
        let b = self.pop();
        let a = self.pop();
        let flip = |v: &Val| match v.const_lo() {
            Some(c) => Expr::Int(c ^ 0x8000_0000),
            None => builtin_call(Builtin::Bxor, vec![Self::num(v), Expr::Int(0x8000_0000)]),
        };
        let e = group(flip(&a), rel, flip(&b));
        let v = Self::derive(ValType::I32, e, Expr::none(), &[&a, &b]);
        self.push(v);
        self.stack.last_mut().unwrap().boolean = true;
    }

    /// `bit32.<f>(a, b % 32)`: a shift or rotate, the count masked (folded into a constant).
    pub(in crate::lower) fn shift(&mut self, f: Builtin) {
        let b = self.pop();
        let a = self.pop();
        let count = match b.const_lo() {
            Some(c) => Expr::Int(c & 31),
            None => builtin_call(Builtin::Band, vec![Self::bits(&b), Expr::Int(31)]),
        };
        let e = builtin_call(f, vec![Self::bits(&a), count]);
        let v = Self::derive(ValType::I32, e, Expr::none(), &[&a, &b]);
        self.push(v);
    }

    /// `bit32.<f>(a, b)`, which reduces its operands itself.
    pub(in crate::lower) fn bin_bits(&mut self, f: Builtin) {
        let b = self.pop();
        let a = self.pop();
        let e = builtin_call(f, vec![Self::bits(&a), Self::bits(&b)]);
        let v = Self::derive(ValType::I32, e, Expr::none(), &[&a, &b]);
        self.push(v);
    }

    /// Signed compare (`op`: 0 `<`, 1 `>`, 2 `<=`, 3 `>=`) of a plain variable with a
    /// constant, as one or two unsigned compares instead of flipping the sign bit with
    /// `bit32.bxor`. Returns false (nothing popped) when the operands do not fit.
    pub(in crate::lower) fn signed_cmp_const(&mut self, op: u8) -> bool {
        let n = self.stack.len();
        let (a, b) = (&self.stack[n - 2], &self.stack[n - 1]);
        let plain = |v: &Val| v.simple && !v.boolean && v.const_lo().is_none();
        let (x, c, mut op) = match (a.const_lo(), b.const_lo()) {
            (None, Some(c)) if plain(a) => (a.e.clone(), c, op),
            // c OP x is x OP' c with the sides swapped.
            (Some(c), None) if plain(b) => (b.e.clone(), c, [1, 0, 3, 2][op as usize]),
            _ => return false,
        };
        let mut k = c as u32 as i32 as i64;
        // x > k is x >= k + 1; x <= k is x < k + 1.
        if op == 1 || op == 2 {
            k += 1;
            op = if op == 1 { 3 } else { 0 };
        }
        if !(-(1 << 31) < k && k <= i32::MAX as i64) || k == 0 {
            return false;
        }
        let u = Expr::Int(((k + (1 << 32)) % (1 << 32)) as u64);
        let h = Expr::Int(0x8000_0000);
        let rel = |r: BinOp, y: &Expr| tight(x.clone(), r, y.clone());
        use BinOp::{And, Ge, Lt, Or};
        let e = match (op == 0, k > 0) {
            (true, true) => group(rel(Lt, &u), Or, rel(Ge, &h)),
            (true, false) => group(rel(Ge, &h), And, rel(Lt, &u)),
            (false, true) => group(rel(Ge, &u), And, rel(Lt, &h)),
            (false, false) => group(rel(Lt, &h), Or, rel(Ge, &u)),
        };
        // Two pairs: users strip one (`cond`) and may embed the rest in `and`/`or` chains.
        let e = Expr::Paren(Rc::new(e));
        let b = self.pop();
        let a = self.pop();
        let mut v = Self::derive(ValType::I32, e, Expr::none(), &[&a, &b]);
        v.boolean = true;
        self.push(v);
        true
    }

    /// Signed compare of two i32 loads just made into the top two slots, with nothing in
    /// between: load them signed (`readi32`) and compare directly. The slots are read by
    /// nothing but this compare. Returns false (nothing changed) when the pattern differs.
    pub(in crate::lower) fn signed_cmp_loads(&mut self, op: BinOp) -> bool {
        let n = self.stack.len();
        if self.stack[n - 2].slot() != Some(n - 2) || self.stack[n - 1].slot() != Some(n - 1) {
            return false;
        }
        if !self.slot_in_reg(n - 2) || !self.slot_in_reg(n - 1) {
            return false;
        }
        // The last two statements must be the two loads, in order. The second address cannot
        // read the first slot: the first load flushed every value reading that slot, and its
        // own value is still on the stack, so nothing computed since reads it.
        let [Some(la), Some(lb)] = self.loads else {
            return false;
        };
        if la.slot != n - 2 || lb.slot != n - 1 || la.at + 1 != lb.at || lb.at + 1 != self.out.len()
        {
            return false;
        }
        for at in [la.at, lb.at] {
            if let Stmt::Eager {
                value: Rvalue::Load32 { signed, .. },
                ..
            } = &mut self.out[at]
            {
                *signed = true;
            }
        }
        self.loads = [None, None];
        let b = self.pop();
        let a = self.pop();
        let e = group(a.e.clone(), op, b.e.clone());
        let mut v = Self::derive(ValType::I32, e, Expr::none(), &[&a, &b]);
        v.boolean = true;
        self.push(v);
        true
    }
}
