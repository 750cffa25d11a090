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
    pub(in crate::lower) fn un<E: Into<Expr>>(&mut self, ty: ValType, f: impl Fn(&str) -> E) {
        let a = self.pop();
        let e = f(&Self::num(&a));
        let v = Self::derive(ty, e, String::new(), &[&a]);
        self.push(v);
    }

    pub(in crate::lower) fn bin<E: Into<Expr>>(
        &mut self,
        ty: ValType,
        f: impl Fn(&str, &str) -> E,
    ) {
        let b = self.pop();
        let a = self.pop();
        let e = f(&Self::num(&a), &Self::num(&b));
        let v = Self::derive(ty, e, String::new(), &[&a, &b]);
        self.push(v);
    }

    /// A comparison `f(a, b)`, grouped: `(a == b)`.
    pub(in crate::lower) fn cmp(&mut self, f: impl Fn(&str, &str) -> String) {
        self.bin(ValType::I32, |a, b| Expr::Group(f(a, b)));
        self.stack.last_mut().unwrap().boolean = true;
    }

    pub(in crate::lower) fn eager_bin(&mut self, ty: ValType, helper: Helper) {
        let b = self.pop();
        let a = self.pop();
        let h = self.helper(helper);
        self.push_eager(ty, format!("{h}({},{})", Self::num(&a), Self::num(&b)));
    }

    pub(in crate::lower) fn eager_un(&mut self, ty: ValType, helper: Helper) {
        let a = self.pop();
        let h = self.helper(helper);
        self.push_eager(ty, format!("{h}({})", Self::num(&a)));
    }
}
