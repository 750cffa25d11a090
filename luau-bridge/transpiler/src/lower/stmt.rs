//! The body as a list of statements, printed once when the function is finished. The
//! statements a later fusion changes are kept structured, so the fusion edits a field instead
//! of patching emitted text: an eager assignment into a stack slot (the `local.set` fusion
//! retargets it to the local) whose value may be an i32 load (the signed-compare fusion makes
//! it a signed load).
use super::Expr;
use crate::prelude::Builtin;
use std::fmt;

/// One statement of a function body.
pub(in crate::lower) enum Stmt {
    /// A rendered statement (possibly several lines).
    Line(String),
    /// A call whose results are not used.
    Call(Expr),
    /// `target = value` (`target` may name both halves of an i64: `lo,hi`).
    Assign { target: String, value: Rvalue },
    /// `repeat`, opening a loop closed by [`Stmt::Until`].
    Repeat,
    /// `while true do`, opening a loop closed by [`Stmt::End`].
    While,
    /// `until …`, closing a `repeat`.
    Until(Until),
    /// `else`, within an `if`.
    Else,
    /// `return` with these values.
    Return(Vec<Expr>),
    /// `if cond then`, opening a branch closed by an [`Stmt::End`]; `cond` is printed as it
    /// is (a condition is built without enclosing parentheses).
    If(Expr),
    /// `break` or `continue`.
    Jump(Jump),
    /// `end`.
    End,
    /// `target = value`: a value computed eagerly into stack slot `slot`.
    Eager {
        slot: usize,
        /// The slot's variable (`name` or `name, high`), or what a fusion put there instead.
        target: String,
        value: Rvalue,
    },
}

/// How a `repeat` loop ends.
pub(in crate::lower) enum Until {
    /// `until true`: runs once (a block that `break` leaves).
    True,
    /// `until false`: runs until a `break`.
    False,
    /// `until not (c)`: runs again while `c` holds.
    Not(Expr),
}

/// A jump out of a Luau loop construct.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(in crate::lower) enum Jump {
    /// `break`: to after the construct (a wasm block's end).
    Break,
    /// `continue`: to the next iteration (a wasm loop's start).
    Continue,
}

impl fmt::Display for Jump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Jump::Break => "break",
            Jump::Continue => "continue",
        })
    }
}

/// The right-hand side of an eager assignment.
pub(in crate::lower) enum Rvalue {
    /// An expression (a call may return both halves of an i64), printed bare.
    Expr(Expr),
    /// The two halves of an i64: `low,high`.
    Pair(Expr, Expr),
    /// `buffer.readu32(M, addr)`, or `buffer.readi32(M, addr)` once `signed`.
    Load32 { addr: Expr, signed: bool },
}

impl fmt::Display for Rvalue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rvalue::Expr(e) => e.bare().fmt(f),
            Rvalue::Pair(lo, hi) => write!(f, "{lo},{hi}"),
            Rvalue::Load32 { addr, signed } => {
                let read = if *signed {
                    Builtin::Readi32
                } else {
                    Builtin::Readu32
                };
                write!(f, "{}(M,{addr})", read.alias())
            }
        }
    }
}

/// Prints `body`, one statement a line; a branch holding only a jump takes one line
/// (`if c then break end`). No indentation: it would be a large share of the output.
pub(in crate::lower) fn print(body: &[Stmt], out: &mut String) {
    use fmt::Write as _;
    let mut i = 0;
    while i < body.len() {
        if let [Stmt::If(c), Stmt::Jump(j), Stmt::End, ..] = &body[i..] {
            let _ = writeln!(out, "if {c} then {j} end");
            i += 3;
            continue;
        }
        let _ = match &body[i] {
            Stmt::Line(l) => writeln!(out, "{l}"),
            Stmt::Call(e) => writeln!(out, "{e}"),
            Stmt::Assign { target, value } => writeln!(out, "{target}={value}"),
            Stmt::Repeat => writeln!(out, "repeat"),
            Stmt::While => writeln!(out, "while true do"),
            Stmt::Until(Until::True) => writeln!(out, "until true"),
            Stmt::Until(Until::False) => writeln!(out, "until false"),
            Stmt::Until(Until::Not(c)) => writeln!(out, "until not ({c})"),
            Stmt::Else => writeln!(out, "else"),
            Stmt::Return(vals) if vals.is_empty() => writeln!(out, "return"),
            Stmt::Return(vals) => writeln!(out, "return {}", super::expr::list(vals)),
            Stmt::If(c) => writeln!(out, "if {c} then"),
            Stmt::Jump(j) => writeln!(out, "{j}"),
            Stmt::End => writeln!(out, "end"),
            Stmt::Eager { target, value, .. } => writeln!(out, "{target}={value}"),
        };
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(body: &[Stmt]) -> String {
        let mut out = String::new();
        print(body, &mut out);
        out
    }

    #[test]
    fn a_branch_holding_only_a_jump_takes_one_line() {
        let body = [
            Stmt::If(Expr::Text("a0==1".into())),
            Stmt::Jump(Jump::Break),
            Stmt::End,
            Stmt::If(Expr::Text("a1<2".into())),
            Stmt::Jump(Jump::Continue),
            Stmt::End,
        ];
        assert_eq!(
            printed(&body),
            "if a0==1 then break end\nif a1<2 then continue end\n"
        );
    }

    #[test]
    fn a_branch_with_more_than_a_jump_keeps_its_lines() {
        let body = [
            Stmt::If(Expr::Text("a0==1".into())),
            Stmt::Line("B=3".into()),
            Stmt::Jump(Jump::Break),
            Stmt::End,
            Stmt::Jump(Jump::Break),
        ];
        assert_eq!(printed(&body), "if a0==1 then\nB=3\nbreak\nend\nbreak\n");
    }

    #[test]
    fn constructs_and_assignments_print_from_their_parts() {
        use super::super::expr::{group, BinOp, Name, Var};
        let a = |i| Expr::Var(Var::Local(i), Name::a(i));
        let body = [
            Stmt::Repeat,
            Stmt::Assign {
                target: "a0".into(),
                value: Rvalue::Expr(group(a(0), BinOp::Sub, Expr::Int(1))),
            },
            Stmt::Until(Until::Not(group(a(0), BinOp::Ne, Expr::Int(0)))),
            Stmt::Assign {
                target: "a1,b1".into(),
                value: Rvalue::Pair(group(a(0), BinOp::Add, Expr::Int(1)), Expr::Int(0)),
            },
            Stmt::Return(vec![a(0), a(1)]),
            Stmt::Return(vec![]),
        ];
        assert_eq!(
            printed(&body),
            "repeat\na0=a0 - 1\nuntil not ((a0~=0))\na1,b1=(a0+1),0\nreturn a0,a1\nreturn\n"
        );
    }

    #[test]
    fn fusions_edit_the_recorded_statement() {
        let mut body = vec![Stmt::Eager {
            slot: 0,
            target: "s0".into(),
            value: Rvalue::Load32 {
                addr: Expr::Text("a0+4".into()),
                signed: false,
            },
        }];
        assert_eq!(printed(&body), "s0=ru32(M,a0+4)\n");
        if let Stmt::Eager { target, value, .. } = &mut body[0] {
            *target = "a1".into();
            if let Rvalue::Load32 { signed, .. } = value {
                *signed = true;
            }
        }
        assert_eq!(printed(&body), "a1=ri32(M,a0+4)\n");
    }
}
