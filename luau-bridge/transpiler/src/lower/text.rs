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
