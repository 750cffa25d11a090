//! Small text rewrites of rendered Luau.
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

/// `e` without one pair of parentheses enclosing all of it.
pub(super) fn strip_parens(e: &str) -> &str {
    let b = e.as_bytes();
    if b.len() < 2 || b[0] != b'(' || b[b.len() - 1] != b')' {
        return e;
    }
    let mut depth = 0i32;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 && i != b.len() - 1 {
                    return e;
                }
            }
            _ => {}
        }
    }
    &e[1..e.len() - 1]
}
