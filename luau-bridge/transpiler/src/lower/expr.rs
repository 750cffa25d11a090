//! A value's Luau expression, with the one piece of its shape the lowering needs: whether it
//! is a group `( … )` enclosing all of it. An assignment prints a group without its
//! parentheses; everywhere else (inside other expressions) it is printed whole.
use crate::names::FloatLit;
use std::fmt;

/// A rendered Luau expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::lower) enum Expr {
    /// Any expression, printed as is.
    Text(String),
    /// `(inner)`: the parentheses enclose the whole expression.
    Group(String),
}

impl Expr {
    /// The expression as an assignment's right-hand side or a condition: without the
    /// parentheses of a group.
    pub fn bare(&self) -> &str {
        match self {
            Expr::Text(s) | Expr::Group(s) => s,
        }
    }

    /// Length of the printed expression.
    pub fn len(&self) -> usize {
        match self {
            Expr::Text(s) => s.len(),
            Expr::Group(s) => s.len() + 2,
        }
    }
}

impl From<FloatLit> for Expr {
    fn from(l: FloatLit) -> Self {
        if l.negated {
            Expr::Group(l.text)
        } else {
            Expr::Text(l.text)
        }
    }
}

impl From<String> for Expr {
    fn from(s: String) -> Self {
        Expr::Text(s)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Text(s) => f.write_str(s),
            Expr::Group(s) => write!(f, "({s})"),
        }
    }
}
