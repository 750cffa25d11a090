//! Tables, element segments and references.
use super::*;

impl Translator<'_, '_, '_> {
    /// Lowers one of the tables, element segments and references; `Ok(false)` when `op` is another operator.
    pub(in crate::lower) fn table_op(&mut self, op: &Operator<'_>) -> Result<bool> {
        use Operator as O;
        use ValType::I32;
        match op {
            O::TableInit { elem_index, table } => {
                let n = self.pop();
                let s = self.pop();
                let d = self.pop();
                self.flush_where(|x| x.globals);
                let tinit = self.helper(Helper::Tinit);
                self.line(&format!(
                    "{tinit}(T{table},E[{}],{},{},{})",
                    elem_index + 1,
                    Self::num(&d),
                    Self::num(&s),
                    Self::num(&n)
                ));
            }
            O::ElemDrop { elem_index } => {
                let edropped = self.helper(Helper::Edropped);
                self.line(&format!("E[{}]={edropped}", elem_index + 1))
            }
            O::TableCopy {
                dst_table,
                src_table,
            } => {
                let n = self.pop();
                let s = self.pop();
                let d = self.pop();
                let tcopy = self.helper(Helper::Tcopy);
                self.line(&format!(
                    "{tcopy}(T{dst_table},T{src_table},{},{},{})",
                    Self::num(&d),
                    Self::num(&s),
                    Self::num(&n)
                ));
            }
            O::TableSize { table } => self.push_eager(I32, format!("T{table}.n")),
            O::TableGet { table } => {
                let a = self.pop();
                let t = ValType::Ref(wasmparser::RefType::FUNCREF);
                let tget = self.helper(Helper::Tget);
                let args = vec![Expr::Table(*table), Self::num(&a)];
                self.push_eager(t, helper_call(tget, args));
            }
            O::TableSet { table } => {
                let v = self.pop();
                let a = self.pop();
                let tset = self.helper(Helper::Tset);
                self.line(&format!("{tset}(T{table},{},{})", Self::num(&a), v.e));
            }
            O::TableGrow { table } => {
                let n = self.pop();
                let v = self.pop();
                let tgrow = self.helper(Helper::Tgrow);
                let args = vec![Expr::Table(*table), v.e, Self::num(&n)];
                self.push_eager(I32, helper_call(tgrow, args));
            }
            O::TableFill { table } => {
                let n = self.pop();
                let v = self.pop();
                let d = self.pop();
                let tfill = self.helper(Helper::Tfill);
                self.line(&format!(
                    "{tfill}(T{table},{},{},{})",
                    Self::num(&d),
                    v.e,
                    Self::num(&n)
                ));
            }
            O::RefNull { .. } => self.push(Self::lit(
                ValType::Ref(wasmparser::RefType::FUNCREF),
                Expr::Sym("nil"),
                Expr::none(),
            )),
            O::RefEq => {
                let b = self.pop();
                let a = self.pop();
                let e = group(a.e.clone(), BinOp::Eq, b.e.clone());
                let mut v = Self::derive(I32, e, Expr::none(), &[&a, &b]);
                v.boolean = true;
                self.push(v);
            }
            O::RefIsNull => {
                let a = self.pop();
                let e = group(a.e.clone(), BinOp::Eq, Expr::Sym("nil"));
                let mut v = Self::derive(I32, e, Expr::none(), &[&a]);
                v.boolean = true;
                self.push(v);
            }
            O::RefFunc { function_index } => {
                self.push_eager(
                    ValType::Ref(wasmparser::RefType::FUNCREF),
                    self.ctx.func_names[*function_index as usize].clone(),
                );
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}
