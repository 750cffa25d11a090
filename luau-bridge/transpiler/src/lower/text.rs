//! Text-level helpers on emitted Luau (to be replaced by a typed expression, issue 6).

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

/// Signed order on canonical u32 values: flipping the sign bit maps it to unsigned order.
pub(super) fn flip(a: &str) -> String {
    match a.parse::<u64>() {
        Ok(c) => (c ^ 0x8000_0000).to_string(),
        Err(_) => format!("bit32.bxor({a}, 2147483648)"),
    }
}

pub(super) fn mask(b: &str, m: u64) -> String {
    match b.parse::<u64>() {
        Ok(c) => (c & m).to_string(),
        Err(_) => format!("bit32.band({b}, {m})"),
    }
}
