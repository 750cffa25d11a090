//! A value's Luau expression as a small tree (constants, variables, calls, operations),
//! printed only when it is materialised into a statement. Facts about a value (its constant,
//! the local or slot it is) are read from the tree, never parsed back out of printed text.
//!
//! Two printed forms: the operand form (inside another expression, a call's argument) and the
//! bare form (a whole right-hand side or condition), which leaves out the parentheses of a
//! grouped operation.
//!
//! Nodes are shared (`Rc`): a value's expression is cloned into every use (the operand
//! stack keeps values lazy), and a clone costs one count, not a copy of the tree.
use crate::prelude::{Builtin, Helper};
use std::collections::BTreeSet;
use std::fmt::{self, Display, Write as _};
use std::rc::Rc;

/// A Luau expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::lower) enum Expr {
    /// An integer constant: an i32 (unsigned) or one half of an i64, printed in decimal.
    Int(u64),
    /// A float constant: its value as f64 bits, and its literal.
    Float {
        bits: u64,
        text: String,
        /// The literal is a negation (`-1.5`): parenthesised as an operand.
        negated: bool,
    },
    /// A variable of the function: a wasm local's or a stack slot's (register or spilled).
    Var(Var, Name),
    /// Entry `i` of a helper that is a table (`NF[i]`).
    Entry(UsedHelper, u32),
    /// Wasm table `n`'s local in the chunk, `T{n}`.
    Table(u32),
    /// A name the chunk defines (`W`, `M`, a constant register), printed as is.
    Sym(&'static str),
    /// A call of a runtime helper or a builtin's alias.
    Call(Callee, Rc<[Expr]>),
    /// A binary operation.
    Bin(Rc<Bin>),
    /// A unary operation.
    Un(Rc<Un>),
    /// `if c then a else b`, parenthesised as an operand.
    IfElse(Rc<[Expr; 3]>),
    /// `(e)` around an expression that is itself grouped: a condition that keeps one pair of
    /// parentheses when printed bare.
    Paren(Rc<Expr>),
    /// A name the module's emitter gives as text (a global's cell, a function, a table's
    /// size field `T{n}.n`): printed as is.
    Text(String),
}

/// Which variable an [`Expr::Var`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::lower) enum Var {
    /// Wasm local `i`.
    Local(u32),
    /// The operand stack slot at height `k`.
    Slot(usize),
}

/// A runtime helper recorded as used by the module (so the chunk defines it). Only
/// [`record`] makes one, so no call of a helper can be built without recording it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::lower) struct UsedHelper(Helper);

/// Records `h` among the helpers the chunk must define.
pub(in crate::lower) fn record(helpers: &mut BTreeSet<Helper>, h: Helper) -> UsedHelper {
    helpers.insert(h);
    UsedHelper(h)
}

/// Formats as the helper's Luau name.
impl Display for UsedHelper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

/// A variable's Luau name, spelled once when the function's variables are assigned (copied
/// into every use; printing is a copy of its bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(in crate::lower) struct Name {
    buf: [u8; 14],
    len: u8,
}

impl Name {
    fn spelled(prefix: &str, n: u32, suffix: &str) -> Name {
        let mut digits = [0u8; 10];
        let d = decimal(n.into(), &mut digits);
        let mut buf = [0u8; 14];
        let mut len = 0;
        for &b in prefix.as_bytes().iter().chain(d).chain(suffix.as_bytes()) {
            buf[len] = b;
            len += 1;
        }
        Name {
            buf,
            len: len as u8,
        }
    }

    /// `a{i}`: local `i` (the low half of an i64) in a register.
    pub fn a(i: u32) -> Name {
        Name::spelled("a", i, "")
    }

    /// `b{i}`: the high half of i64 local `i` in a register.
    pub fn b(i: u32) -> Name {
        Name::spelled("b", i, "")
    }

    /// `s{k}`: stack slot `k` (the low half of an i64) in a register.
    pub fn s(k: usize) -> Name {
        Name::spelled("s", k as u32, "")
    }

    /// `t{k}`: the high half of an i64 in stack slot `k`, in a register.
    pub fn t(k: usize) -> Name {
        Name::spelled("t", k as u32, "")
    }

    /// `R[n]`: cell `n` of the per-call spill table.
    pub fn r(n: u32) -> Name {
        Name::spelled("R[", n, "]")
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len as usize]).expect("ASCII")
    }

    fn len(self) -> usize {
        self.len as usize
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `n` in decimal, in the tail of `buf`.
fn decimal(mut n: u64, buf: &mut [u8]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// What an [`Expr::Call`] calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::lower) enum Callee {
    Helper(UsedHelper),
    /// A function the chunk defines outside the helpers (`MG`, memory.grow).
    Chunk(&'static str),
    /// A builtin, through its chunk-level alias.
    Builtin(Builtin),
}

/// `l op r`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::lower) struct Bin {
    pub l: Expr,
    pub op: BinOp,
    pub r: Expr,
    /// Parenthesised as an operand. An ungrouped operation binds tighter than any operation
    /// it is an operand of (checked by the printer).
    pub grouped: bool,
}

/// `op e`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::lower) struct Un {
    pub op: UnOp,
    pub e: Expr,
    /// Parenthesised as an operand.
    pub grouped: bool,
}

/// A unary operator of Luau (binding tighter than every binary one used here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::lower) enum UnOp {
    Not,
    Neg,
}

impl UnOp {
    fn spelling(self) -> &'static str {
        match self {
            UnOp::Not => "not ",
            UnOp::Neg => "-",
        }
    }
}

/// A binary operator of Luau.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::lower) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    IDiv,
    Mod,
}

impl BinOp {
    /// As printed between its operands: compact, except ` - ` (next to a negative operand
    /// `-` would start a `--` comment) and the keywords.
    pub fn spelling(self) -> &'static str {
        match self {
            BinOp::Or => " or ",
            BinOp::And => " and ",
            BinOp::Eq => "==",
            BinOp::Ne => "~=",
            BinOp::Lt => "<",
            BinOp::Gt => ">",
            BinOp::Le => "<=",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => " - ",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::IDiv => "//",
            BinOp::Mod => "%",
        }
    }

    /// Luau's binding strength (higher binds tighter); all these are left-associative.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => 3,
            BinOp::Add | BinOp::Sub => 5,
            BinOp::Mul | BinOp::Div | BinOp::IDiv | BinOp::Mod => 6,
        }
    }
}

/// `l op r`, parenthesised as an operand.
pub(in crate::lower) fn group(l: Expr, op: BinOp, r: Expr) -> Expr {
    Expr::Bin(Rc::new(Bin {
        l,
        op,
        r,
        grouped: true,
    }))
}

/// `l op r`, never parenthesised: `op` must bind tighter than whatever it is an operand of.
pub(in crate::lower) fn tight(l: Expr, op: BinOp, r: Expr) -> Expr {
    Expr::Bin(Rc::new(Bin {
        l,
        op,
        r,
        grouped: false,
    }))
}

/// `op e`, parenthesised as an operand.
pub(in crate::lower) fn unary(op: UnOp, e: Expr) -> Expr {
    Expr::Un(Rc::new(Un {
        op,
        e,
        grouped: true,
    }))
}

/// A call of runtime helper `h`.
pub(in crate::lower) fn helper_call(h: UsedHelper, args: Vec<Expr>) -> Expr {
    Expr::Call(Callee::Helper(h), args.into())
}

/// A call of the builtin `lib.f`, through its alias.
pub(in crate::lower) fn builtin_call(b: Builtin, args: Vec<Expr>) -> Expr {
    Expr::Call(Callee::Builtin(b), args.into())
}

/// Expressions printed as a list: `a,b,c`.
pub(in crate::lower) fn list(es: &[Expr]) -> String {
    let mut s = String::new();
    for (i, e) in es.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{e}");
    }
    s
}

impl Expr {
    /// No expression: the high half of a value that is not an i64.
    pub fn none() -> Expr {
        Expr::Text(String::new())
    }

    /// The expression as an assignment's right-hand side or a condition: without the
    /// parentheses of a group.
    pub fn bare(&self) -> Bare<'_> {
        Bare(self)
    }

    /// The same expression with no enclosing parentheses even as an operand: for a
    /// condition printed whole.
    pub fn ungrouped(self) -> Expr {
        match self {
            Expr::Bin(b) => {
                let mut b = Rc::unwrap_or_clone(b);
                b.grouped = false;
                Expr::Bin(Rc::new(b))
            }
            Expr::Un(u) => {
                let mut u = Rc::unwrap_or_clone(u);
                u.grouped = false;
                Expr::Un(Rc::new(u))
            }
            Expr::Paren(e) => Rc::unwrap_or_clone(e),
            e => e,
        }
    }

    /// Length of the printed expression (operand form).
    pub fn len(&self) -> usize {
        match self {
            Expr::Int(c) => decimal_len(*c),
            Expr::Float { text, negated, .. } => text.len() + if *negated { 2 } else { 0 },
            Expr::Var(_, name) => name.len(),
            Expr::Sym(s) => s.len(),
            Expr::Table(n) => 1 + decimal_len((*n).into()),
            Expr::Entry(h, i) => h.0.name().len() + 2 + decimal_len((*i).into()),
            Expr::Call(c, args) => {
                let commas = args.len().saturating_sub(1);
                c.name().len() + 2 + commas + args.iter().map(Expr::len).sum::<usize>()
            }
            Expr::Bin(b) => {
                let inner = b.l.len() + b.op.spelling().len() + b.r.len();
                inner + if b.grouped { 2 } else { 0 }
            }
            Expr::Un(u) => u.op.spelling().len() + u.e.len() + if u.grouped { 2 } else { 0 },
            Expr::IfElse(p) => {
                let [c, a, b] = &**p;
                "(if  then  else )".len() + c.len() + a.len() + b.len()
            }
            Expr::Paren(e) => e.len() + 2,
            Expr::Text(s) => s.len(),
        }
    }

    /// The integer constant this is.
    pub fn int(&self) -> Option<u64> {
        match self {
            Expr::Int(c) => Some(*c),
            _ => None,
        }
    }

    /// The variable this is.
    pub fn var(&self) -> Option<Var> {
        match self {
            Expr::Var(v, _) => Some(*v),
            _ => None,
        }
    }

    /// An operation's precedence when printed without parentheses as an operand.
    fn loose_precedence(&self) -> Option<u8> {
        match self {
            Expr::Bin(b) if !b.grouped => Some(b.op.precedence()),
            _ => None,
        }
    }

    /// Prints `l op r` without enclosing parentheses.
    fn print_bin(b: &Bin, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = b.op.precedence();
        assert!(b.l.loose_precedence().is_none_or(|q| q >= p), "{b:?}");
        assert!(b.r.loose_precedence().is_none_or(|q| q > p), "{b:?}");
        write!(f, "{}{}{}", b.l, b.op.spelling(), b.r)
    }
}

fn decimal_len(mut c: u64) -> usize {
    let mut n = 1;
    while c >= 10 {
        c /= 10;
        n += 1;
    }
    n
}

impl Callee {
    fn name(self) -> &'static str {
        match self {
            Callee::Helper(h) => h.0.name(),
            Callee::Chunk(name) => name,
            Callee::Builtin(b) => b.alias(),
        }
    }
}

/// An expression printed bare (see [`Expr::bare`]).
pub(in crate::lower) struct Bare<'e>(&'e Expr);

impl Display for Bare<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Expr::Bin(b) => Expr::print_bin(b, f),
            Expr::Float { text, .. } => f.write_str(text),
            Expr::Un(u) => write!(f, "{}{}", u.op.spelling(), u.e),
            Expr::IfElse(p) => write!(f, "if {} then {} else {}", p[0], p[1], p[2]),
            Expr::Paren(e) => e.fmt(f),
            e => e.fmt(f),
        }
    }
}

impl From<String> for Expr {
    fn from(s: String) -> Self {
        Expr::Text(s)
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Int(c) => {
                let mut digits = [0u8; 20];
                let d = decimal(*c, &mut digits);
                f.write_str(std::str::from_utf8(d).expect("digits"))
            }
            Expr::Float {
                text,
                negated: true,
                ..
            } => write!(f, "({text})"),
            Expr::Float { text, .. } => f.write_str(text),
            Expr::Var(_, name) => name.fmt(f),
            Expr::Sym(s) => f.write_str(s),
            Expr::Table(n) => write!(f, "T{n}"),
            Expr::Entry(h, i) => write!(f, "{h}[{i}]"),
            Expr::Call(c, args) => {
                f.write_str(c.name())?;
                f.write_char('(')?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    a.fmt(f)?;
                }
                f.write_char(')')
            }
            Expr::Bin(b) if b.grouped => {
                f.write_char('(')?;
                Expr::print_bin(b, f)?;
                f.write_char(')')
            }
            Expr::Bin(b) => Expr::print_bin(b, f),
            Expr::Un(u) if u.grouped => write!(f, "({}{})", u.op.spelling(), u.e),
            Expr::Un(u) => write!(f, "{}{}", u.op.spelling(), u.e),
            Expr::IfElse(p) => write!(f, "(if {} then {} else {})", p[0], p[1], p[2]),
            Expr::Paren(e) => write!(f, "({e})"),
            Expr::Text(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(n: u32) -> Expr {
        Expr::Var(Var::Local(n), Name::a(n))
    }

    #[test]
    fn a_group_is_bare_at_the_top_and_parenthesised_inside() {
        let sum = group(var(0), BinOp::Add, Expr::Int(4));
        assert_eq!(sum.bare().to_string(), "a0+4");
        let e = tight(sum.clone(), BinOp::Mod, Expr::Sym("W"));
        assert_eq!(e.to_string(), "(a0+4)%W");
        assert_eq!(e.len(), e.to_string().len());
        let mul = record(&mut BTreeSet::new(), Helper::Mul32);
        let call = helper_call(mul, vec![sum, Expr::Int(12)]);
        assert_eq!(call.to_string(), "mul32((a0+4),12)");
        assert_eq!(call.len(), call.to_string().len());
    }

    #[test]
    fn names_and_integers_are_spelled_in_decimal() {
        assert_eq!(Name::a(0).to_string(), "a0");
        assert_eq!(Name::t(12).to_string(), "t12");
        assert_eq!(Name::r(u32::MAX).to_string(), "R[4294967295]");
        assert_eq!(Name::r(7).len(), 4);
        for c in [0, 9, 10, 4294967296, u64::MAX] {
            assert_eq!(Expr::Int(c).to_string(), c.to_string());
            assert_eq!(Expr::Int(c).len(), c.to_string().len());
        }
    }

    #[test]
    fn minus_keeps_its_spaces() {
        let neg = Expr::Float {
            bits: (-1.5f64).to_bits(),
            text: "-1.5".into(),
            negated: true,
        };
        let d = group(var(1), BinOp::Sub, neg);
        assert_eq!(d.bare().to_string(), "a1 - (-1.5)");
        assert_eq!(d.len(), "(a1 - (-1.5))".len());
    }

    #[test]
    #[should_panic]
    fn an_ungrouped_operand_binding_looser_is_a_bug() {
        let sum = tight(var(0), BinOp::Add, Expr::Int(1));
        let _ = tight(sum, BinOp::Mul, Expr::Int(2)).to_string();
    }
}
