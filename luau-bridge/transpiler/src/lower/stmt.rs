//! The body as a list of statements, printed once when the function is finished. The
//! statements a later fusion changes are kept structured, so the fusion edits a field instead
//! of patching emitted text: an eager assignment into a stack slot (the `local.set` fusion
//! retargets it to the local) whose value may be an i32 load (the signed-compare fusion makes
//! it a signed load).
use std::fmt;

/// One statement of a function body.
pub(in crate::lower) enum Stmt {
    /// A rendered statement (possibly several lines).
    Line(String),
    /// `target = value`: a value computed eagerly into stack slot `slot`.
    Eager {
        slot: usize,
        /// The slot's variable (`name` or `name, high`), or what a fusion put there instead.
        target: String,
        value: Rvalue,
    },
}

/// The right-hand side of an eager assignment.
pub(in crate::lower) enum Rvalue {
    /// Any expression, rendered.
    Expr(String),
    /// `buffer.readu32(M, addr)`, or `buffer.readi32(M, addr)` once `signed`.
    Load32 { addr: String, signed: bool },
}

impl fmt::Display for Rvalue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rvalue::Expr(e) => f.write_str(e),
            Rvalue::Load32 { addr, signed } => {
                let w = if *signed { "i32" } else { "u32" };
                write!(f, "buffer.read{w}(M, {addr})")
            }
        }
    }
}

/// Prints `body`, one statement a line. No indentation: it would be a large share of the
/// output.
pub(in crate::lower) fn print(body: &[Stmt], out: &mut String) {
    use fmt::Write as _;
    for s in body {
        let _ = match s {
            Stmt::Line(l) => writeln!(out, "{l}"),
            Stmt::Eager { target, value, .. } => writeln!(out, "{target} = {value}"),
        };
    }
}
