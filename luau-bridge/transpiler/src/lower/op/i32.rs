//! i32 arithmetic, comparisons and bit operations.
use super::*;

impl Translator<'_, '_, '_> {
    /// Lowers one of the i32 arithmetic, comparisons and bit operations; `Ok(false)` when `op` is another operator.
    pub(in crate::lower) fn i32_op(&mut self, op: &Operator<'_>) -> Result<bool> {
        use Operator as O;
        use ValType::I32;
        const M32: &str = "W";
        match op {
            O::I32Eqz => {
                let a = self.pop();
                let e = if a.boolean {
                    Expr::Group(format!("not {}", a.e))
                } else {
                    Expr::Group(format!("{}==0", a.e))
                };
                let mut v = Self::derive(I32, e, String::new(), &[&a]);
                v.boolean = true;
                self.push(v);
            }
            O::I32Eq => self.cmp(|a, b| format!("{a}=={b}")),
            O::I32Ne => self.cmp(|a, b| format!("{a}~={b}")),
            O::I32LtU => self.cmp(|a, b| format!("{a}<{b}")),
            O::I32GtU => self.cmp(|a, b| format!("{a}>{b}")),
            O::I32LeU => self.cmp(|a, b| format!("{a}<={b}")),
            O::I32GeU => self.cmp(|a, b| format!("{a}>={b}")),
            O::I32LtS if self.signed_cmp_loads("<") => {}
            O::I32GtS if self.signed_cmp_loads(">") => {}
            O::I32LeS if self.signed_cmp_loads("<=") => {}
            O::I32GeS if self.signed_cmp_loads(">=") => {}
            O::I32LtS if self.signed_cmp_const(0) => {}
            O::I32GtS if self.signed_cmp_const(1) => {}
            O::I32LeS if self.signed_cmp_const(2) => {}
            O::I32GeS if self.signed_cmp_const(3) => {}
            O::I32LtS => self.signed_cmp("<"),
            O::I32GtS => self.signed_cmp(">"),
            O::I32LeS => self.signed_cmp("<="),
            O::I32GeS => self.signed_cmp(">="),
            O::I32Clz => self.un(I32, |a| format!("clz({a})")),
            O::I32Ctz => self.un(I32, |a| format!("ctz({a})")),
            O::I32Popcnt => {
                let h = self.helper(Helper::Popcnt32);
                self.un(I32, |a| format!("{h}({a})"))
            }
            O::I32Add | O::I32Sub => {
                let mut add = matches!(op, O::I32Add);
                let b = self.pop();
                let a = self.pop();
                let mut be = Self::num(&b);
                // `x + 0xFFFFFFFF` reads better, and reduces cheaper, as `x - 1`.
                if let Some(c) = b.const_lo() {
                    if c >= 0x8000_0000 {
                        be = ((1u64 << 32) - c).to_string();
                        add = !add;
                    }
                }
                let op = if add { "+" } else { "-" };
                if add {
                    if let (Some(x), Some(y)) = (self.ub_of(&a), self.ub_of(&b)) {
                        if x + y < 1 << 32 {
                            // Provably no wrap: no reduction.
                            let e = Expr::Group(format!("{}+{be}", Self::num(&a)));
                            let mut v = Self::derive(I32, e, String::new(), &[&a, &b]);
                            v.bound = Some(x + y);
                            self.push(v);
                            return Ok(true);
                        }
                    }
                }
                let raw = Expr::Group(format!("{}{}{be}", Self::num(&a), text::op(op)));
                let mut v = Self::derive(I32, format!("{raw}%{M32}"), String::new(), &[&a, &b]);
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
                    self.bin(I32, |a, b| format!("({a}*{b})%{M32}"))
                } else {
                    let h = self.helper(Helper::Mul32);
                    self.bin(I32, |a, b| format!("{h}({a},{b})"))
                }
            }
            O::I32DivU | O::I32RemU | O::I32DivS | O::I32RemS => {
                let divisor = self.stack.last().unwrap().const_lo();
                let signed = matches!(op, O::I32DivS | O::I32RemS);
                let safe = divisor.is_some_and(|c| c != 0 && !(signed && c == 0xFFFF_FFFF));
                let (name, pure): (Helper, Option<&str>) = match op {
                    O::I32DivU => (Helper::Divu32, Some("//")),
                    O::I32RemU => (Helper::Remu32, Some("%")),
                    O::I32DivS => (Helper::Divs32, None),
                    _ => (Helper::Rems32, None),
                };
                if safe {
                    if let Some(p) = pure {
                        self.bin(I32, |a, b| Expr::Group(format!("{a}{}{b}", text::op(p))));
                    } else {
                        let h = self.helper(name);
                        self.bin(I32, |a, b| format!("{h}({a},{b})"));
                    }
                } else {
                    self.eager_bin(I32, name);
                }
            }
            O::I32And => self.bin_bits(|a, b| format!("band({a},{b})")),
            O::I32Or if self.or_low() => {}
            O::I32Or => self.bin_bits(|a, b| format!("bor({a},{b})")),
            O::I32Xor => self.bin_bits(|a, b| format!("bxor({a},{b})")),
            O::I32Shl if self.shl_small() => {}
            O::I32Shl => self.shift("lshift"),
            O::I32ShrS => self.shift("arshift"),
            O::I32ShrU => self.shift("rshift"),
            O::I32Rotl => self.shift("lrotate"),
            O::I32Rotr => self.shift("rrotate"),
            O::I32Extend8S => {
                let h = self.helper(Helper::Ext8);
                self.un(I32, |a| format!("{h}({a})"))
            }
            O::I32Extend16S => {
                let h = self.helper(Helper::Ext16);
                self.un(I32, |a| format!("{h}({a})"))
            }
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
            Some(u) if u < lim => (Expr::Group(format!("{x}*{m}")), Some(u * m)),
            _ if self.ctx.native => return false,
            _ => (
                Expr::Group(format!("if {x}<KL{k} then {x}*{m} else lsh({x},{k})")),
                None,
            ),
        };
        // Without a bound, the expression compares with the register `KL{k}`.
        self.regs.kl[k as usize] |= bound.is_none();
        let b = self.pop();
        let a = self.pop();
        let mut v = Self::derive(ValType::I32, e, String::new(), &[&a, &b]);
        v.bound = bound;
        v.tz = Some(k as u32);
        self.push(v);
        true
    }

    /// A signed compare: flipping the sign bit maps signed order on canonical u32 values to
    /// unsigned order (folded into a constant operand).
    pub(in crate::lower) fn signed_cmp(&mut self, rel: &str) {
        let b = self.pop();
        let a = self.pop();
        let flip = |v: &Val| match v.const_lo() {
            Some(c) => (c ^ 0x8000_0000).to_string(),
            None => format!("bxor({},2147483648)", Self::num(v)),
        };
        let e = Expr::Group(format!("{}{}{}", flip(&a), text::op(rel), flip(&b)));
        let v = Self::derive(ValType::I32, e, String::new(), &[&a, &b]);
        self.push(v);
        self.stack.last_mut().unwrap().boolean = true;
    }

    /// `bit32.<f>(a, b % 32)`: a shift or rotate, the count masked (folded into a constant).
    pub(in crate::lower) fn shift(&mut self, f: &str) {
        let b = self.pop();
        let a = self.pop();
        let count = match b.const_lo() {
            Some(c) => (c & 31).to_string(),
            None => format!("band({},31)", Self::bits(&b)),
        };
        let e = format!("{}({},{count})", builtin("bit32", f), Self::bits(&a));
        let v = Self::derive(ValType::I32, e, String::new(), &[&a, &b]);
        self.push(v);
    }

    pub(in crate::lower) fn bin_bits(&mut self, f: impl Fn(&str, &str) -> String) {
        let b = self.pop();
        let a = self.pop();
        let e = f(&Self::bits(&a), &Self::bits(&b));
        let v = Self::derive(ValType::I32, e, String::new(), &[&a, &b]);
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
        let u = (k + (1 << 32)) % (1 << 32);
        const H: u64 = 0x8000_0000;
        let e = match (op == 0, k > 0) {
            (true, true) => format!("{x}<{u} or {x}>={H}"),
            (true, false) => format!("{x}>={H} and {x}<{u}"),
            (false, true) => format!("{x}>={u} and {x}<{H}"),
            (false, false) => format!("{x}<{H} or {x}>={u}"),
        };
        // Two pairs: users strip one (`cond`) and may embed the rest in `and`/`or` chains.
        let e = Expr::Group(format!("({e})"));
        let b = self.pop();
        let a = self.pop();
        let mut v = Self::derive(ValType::I32, e, String::new(), &[&a, &b]);
        v.boolean = true;
        self.push(v);
        true
    }

    /// Signed compare of two i32 loads just made into the top two slots, with nothing in
    /// between: load them signed (`readi32`) and compare directly. The slots are read by
    /// nothing but this compare. Returns false (nothing changed) when the pattern differs.
    pub(in crate::lower) fn signed_cmp_loads(&mut self, op: &str) -> bool {
        let n = self.stack.len();
        if self.stack[n - 2].slot != Some(n - 2) || self.stack[n - 1].slot != Some(n - 1) {
            return false;
        }
        let (na, nb) = (self.slot_name(n - 2), self.slot_name(n - 1));
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
        let mut v = Self::derive(
            ValType::I32,
            Expr::Group(format!("{na}{}{nb}", text::op(op))),
            String::new(),
            &[&a, &b],
        );
        v.boolean = true;
        self.push(v);
        true
    }
}
