//! How operators and builtins are spelled in function bodies.

/// A binary operator as printed between its operands: without spaces (the output is
/// compact), except `-`, which next to a negative operand would start a `--` comment.
pub(super) fn op(o: &str) -> &str {
    if o == "-" {
        " - "
    } else {
        o
    }
}

/// The chunk-level alias of `bit32.f` or `buffer.f` (generated code calls the alias, which
/// the Luau compiler still treats as the builtin).
pub(super) fn builtin(lib: &str, f: &str) -> &'static str {
    crate::prelude::alias(lib, f)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_minus_keeps_its_spaces() {
        assert_eq!(super::op("+"), "+");
        assert_eq!(super::op("<="), "<=");
        assert_eq!(super::op("-"), " - ");
    }

    #[test]
    fn builtins_are_called_through_their_aliases() {
        assert_eq!(super::builtin("bit32", "lshift"), "lsh");
        assert_eq!(super::builtin("buffer", "readu32"), "ru32");
        assert_eq!(super::builtin("buffer", "writef64"), "wf64");
    }

    #[test]
    #[should_panic(expected = "no alias for bit32.nosuch")]
    fn an_unknown_builtin_is_a_bug_caught_at_once() {
        super::builtin("bit32", "nosuch");
    }
}
