//! One step of the walk: what every operator does to the translator's state, then the family
//! that lowers it.
use super::*;

impl Translator<'_, '_, '_> {
    /// Lowers one operator.
    pub(in crate::lower) fn op(&mut self, op: &Operator<'_>) -> Result<()> {
        use Operator as O;
        if matches!(op, O::Loop { .. } | O::Else | O::End) {
            self.ub.clear();
            self.tzl.clear();
        }
        if self.cur_unreachable() {
            match op {
                O::Block { .. } | O::Loop { .. } | O::If { .. } => {
                    self.dead += 1;
                    self.next_id += 1;
                    return Ok(());
                }
                O::Else if self.dead == 0 => {}
                O::End if self.dead == 0 => {}
                O::Else => return Ok(()),
                O::End => {
                    self.dead -= 1;
                    return Ok(());
                }
                _ => return Ok(()),
            }
        }
        let handled = self.control_op(op)?
            || self.call_op(op)?
            || self.parametric_op(op)?
            || self.variable_op(op)?
            || self.constant_op(op)?
            || self.memory_op(op)?
            || self.table_op(op)?
            || self.i32_op(op)?
            || self.i64_compare_op(op)?
            || self.i64_op(op)?
            || self.convert_op(op)?
            || self.float_op(op)?;
        if !handled {
            return Err(Error::new(format!("unsupported operator {op:?}")));
        }
        Ok(())
    }
}
