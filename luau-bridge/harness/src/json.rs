//! `HttpService:JSONEncode` / `JSONDecode` as Roblox has them, quirks included, because the
//! bridge must cope with them: an empty table encodes as `[]`, a table is an array only when
//! its keys are exactly `1..n`, NaN and infinities are written out as `nan` / `inf` / `-inf`
//! (not valid JSON), `nil` values vanish from objects, and `null` decodes to `nil`.

use mlua::{Lua, Table, Value};

/// Encodes a Luau value as Roblox's `JSONEncode` does; errors name what cannot be encoded.
pub fn encode(v: &Value) -> Result<String, String> {
    let mut out = String::new();
    write_value(v, &mut out, 0)?;
    Ok(out)
}

fn write_value(v: &Value, out: &mut String, depth: usize) -> Result<(), String> {
    if depth > 200 {
        return Err("Can't convert to JSON: nesting too deep (a cycle?)".into());
    }
    match v {
        Value::Nil => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => out.push_str(&i.to_string()),
        Value::Number(n) => write_number(*n, out),
        Value::String(s) => write_string(&s.to_string_lossy(), out),
        Value::Table(t) => write_table(t, out, depth)?,
        other => return Err(format!("Can't convert to JSON: {}", other.type_name())),
    }
    Ok(())
}

fn write_number(n: f64, out: &mut String) {
    if n.is_nan() {
        out.push_str("nan");
    } else if n.is_infinite() {
        out.push_str(if n > 0.0 { "inf" } else { "-inf" });
    } else if n == n.trunc() && n.abs() < 1e15 {
        out.push_str(&format!("{}", n as i64));
    } else {
        out.push_str(&format!("{n}"));
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_table(t: &Table, out: &mut String, depth: usize) -> Result<(), String> {
    let mut keys: Vec<(Value, Value)> = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        keys.push(pair.map_err(|e| e.to_string())?);
    }
    let n = keys.len();
    let is_array = keys.iter().all(|(k, _)| match k {
        Value::Integer(i) => *i >= 1 && (*i as usize) <= n,
        Value::Number(f) => *f >= 1.0 && *f <= n as f64 && f.fract() == 0.0,
        _ => false,
    });
    if is_array {
        // Keys are exactly 1..n (n distinct integers in that range); empty tables land here.
        out.push('[');
        for i in 1..=n {
            if i > 1 {
                out.push(',');
            }
            let v: Value = t.raw_get(i).map_err(|e| e.to_string())?;
            write_value(&v, out, depth + 1)?;
        }
        out.push(']');
        return Ok(());
    }
    if !keys.iter().all(|(k, _)| matches!(k, Value::String(_))) {
        return Err(
            "Can't convert to JSON: a table mixes array and string keys, or has a sparse array"
                .into(),
        );
    }
    keys.sort_by(|a, b| {
        let ka = a.0.to_string().unwrap_or_default();
        let kb = b.0.to_string().unwrap_or_default();
        ka.cmp(&kb)
    });
    out.push('{');
    for (i, (k, v)) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Value::String(s) = k {
            write_string(&s.to_string_lossy(), out);
        }
        out.push(':');
        write_value(v, out, depth + 1)?;
    }
    out.push('}');
    Ok(())
}

/// Decodes JSON text into Luau values (`null` -> `nil`), or errors like Roblox's
/// `Can't parse JSON`.
pub fn decode(lua: &Lua, text: &str) -> mlua::Result<Value> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| mlua::Error::runtime(format!("Can't parse JSON: {e}")))?;
    to_lua(lua, &v)
}

fn to_lua(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    Ok(match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(a) => {
            let t = lua.create_table_with_capacity(a.len(), 0)?;
            for (i, x) in a.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, x)?)?;
            }
            Value::Table(t)
        }
        serde_json::Value::Object(o) => {
            let t = lua.create_table_with_capacity(0, o.len())?;
            for (k, x) in o {
                t.raw_set(k.as_str(), to_lua(lua, x)?)?;
            }
            Value::Table(t)
        }
    })
}
