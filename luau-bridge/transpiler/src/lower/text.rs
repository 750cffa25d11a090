//! How builtins are spelled in function bodies (operators: `expr::BinOp::spelling`).

/// The chunk-level alias of `bit32.f` or `buffer.f` (generated code calls the alias, which
/// the Luau compiler still treats as the builtin).
pub(super) fn builtin(lib: &str, f: &str) -> &'static str {
    crate::prelude::alias(lib, f)
}

#[cfg(test)]
mod tests {
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
