//! The one text rewrite left: the finished function's spacing.
/// Drop the spaces around binary operators that cannot merge into other tokens (never `-`,
/// which could form a comment). Function bodies hold no string literals with spaces.
pub(super) fn compact(code: &str) -> String {
    let mut s = code.to_string();
    for (from, to) in [
        (" % ", "%"),
        (" + ", "+"),
        (" * ", "*"),
        (" // ", "//"),
        (" / ", "/"),
        (" == ", "=="),
        (" ~= ", "~="),
        (" <= ", "<="),
        (" >= ", ">="),
        (" < ", "<"),
        (" > ", ">"),
        (", ", ","),
        (" -= ", "-="),
        (" += ", "+="),
        // After `==`, `~=`, `<=`, `>=` above, what is left of ` = ` is assignment.
        (" = ", "="),
        ("then\nbreak\nend\n", "then break end\n"),
        ("then\ncontinue\nend\n", "then continue end\n"),
    ] {
        s = s.replace(from, to);
    }
    s
}
