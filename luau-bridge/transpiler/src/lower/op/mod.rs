//! The operators, one file per family; each family's `*_op` lowers its operators and
//! returns `Ok(false)` for any other. Shapes shared by several families live here.
mod call;
mod constant;
mod control;
mod convert;
mod float;
mod i32;
mod i64;
mod memory;
mod parametric;
mod table;
mod variable;

pub(in crate::lower) use memory::reads_memory;

use super::*;

impl Translator<'_, '_, '_> {
    /// A lazy operation `f(a)` on the numeric form of the top value.
    pub(in crate::lower) fn un(&mut self, ty: ValType, f: impl FnOnce(Expr) -> Expr) {
        let a = self.pop();
        let e = f(Self::num(&a));
        let v = Self::derive(ty, e, Expr::none(), &[&a]);
        self.push(v);
    }

    /// `h(a)`, lazy.
    pub(in crate::lower) fn un_call(&mut self, ty: ValType, h: Helper) {
        let h = self.helper(h);
        self.un(ty, |a| helper_call(h, vec![a]));
    }

    /// A lazy operation `f(a, b)` on the numeric forms of the top two values.
    pub(in crate::lower) fn bin(&mut self, ty: ValType, f: impl FnOnce(Expr, Expr) -> Expr) {
        let b = self.pop();
        let a = self.pop();
        let e = f(Self::num(&a), Self::num(&b));
        let v = Self::derive(ty, e, Expr::none(), &[&a, &b]);
        self.push(v);
    }

    /// `h(a, b)`, lazy.
    pub(in crate::lower) fn bin_call(&mut self, ty: ValType, h: Helper) {
        let h = self.helper(h);
        self.bin(ty, |a, b| helper_call(h, vec![a, b]));
    }

    /// A comparison `a op b`, grouped: `(a == b)`.
    pub(in crate::lower) fn cmp(&mut self, op: BinOp) {
        self.bin(ValType::I32, |a, b| group(a, op, b));
        self.stack.last_mut().unwrap().boolean = true;
    }

    /// `h(a, b)`, evaluated now (it may trap).
    pub(in crate::lower) fn eager_bin(&mut self, ty: ValType, h: Helper) {
        let b = self.pop();
        let a = self.pop();
        let h = self.helper(h);
        self.push_eager(ty, helper_call(h, vec![Self::num(&a), Self::num(&b)]));
    }

    /// `h(a)`, evaluated now (it may trap).
    pub(in crate::lower) fn eager_un(&mut self, ty: ValType, h: Helper) {
        let a = self.pop();
        let h = self.helper(h);
        self.push_eager(ty, helper_call(h, vec![Self::num(&a)]));
    }
}
