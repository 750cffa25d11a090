//! Runtime helpers written once as chunk-level `local function`s, so the Luau compiler
//! (with `--!optimize 2`) can inline the small ones. Only helpers a module uses are emitted,
//! in a fixed order, which keeps output small and deterministic.
//!
//! Value conventions inside the chunk: i32 is an unsigned integer in [0, 2^32); i64 is two
//! such numbers (low, high); f32 is a double holding an f32 value exactly (NaN payloads in
//! the top mantissa bits, signalling NaNs kept signalling); f64 is a double.

/// Builtins used through chunk-level locals: shorter output, and the Luau compiler still
/// treats a never-written local initialised from a builtin as that builtin (fastcall).
pub const ALIASES: &[(&str, &str)] = &[
    ("bit32.band", "band"),
    ("bit32.bor", "bor"),
    ("bit32.bxor", "bxor"),
    ("bit32.lshift", "lsh"),
    ("bit32.rshift", "rsh"),
    ("bit32.arshift", "ash"),
    ("bit32.lrotate", "rol"),
    ("bit32.rrotate", "ror"),
    ("bit32.countlz", "clz"),
    ("bit32.countrz", "ctz"),
    ("buffer.readu32", "ru32"),
    ("buffer.readi32", "ri32"),
    ("buffer.readu16", "ru16"),
    ("buffer.readi16", "ri16"),
    ("buffer.readu8", "ru8"),
    ("buffer.readi8", "ri8"),
    ("buffer.readf64", "rf64"),
    ("buffer.readf32", "rf32"),
    ("buffer.writeu32", "wu32"),
    ("buffer.writeu16", "wu16"),
    ("buffer.writeu8", "wu8"),
    ("buffer.writef64", "wf64"),
    ("buffer.writef32", "wf32"),
    ("buffer.len", "blen"),
    ("math.abs", "mabs"),
    ("math.floor", "mfloor"),
    ("math.ceil", "mceil"),
];

/// Rewrite builtin calls in generated code to their aliases.
pub fn use_aliases(code: &str) -> String {
    let mut out = code.to_string();
    for (full, short) in ALIASES {
        out = out.replace(&format!("{full}("), &format!("{short}("));
    }
    replace_token(&out, "4294967296", "W")
}

/// Replace `from` where it stands alone as a number token (not inside another literal).
fn replace_token(s: &str, from: &str, to: &str) -> String {
    let b = s.as_bytes();
    let part = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'_';
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut i = 0;
    while let Some(p) = s[i..].find(from) {
        let start = i + p;
        let end = start + from.len();
        let before_ok = start == 0 || !part(b[start - 1]);
        let after_ok = end == b.len() || !part(b[end]);
        if before_ok && after_ok {
            out.push_str(&s[last..start]);
            out.push_str(to);
            last = end;
        }
        i = end;
    }
    out.push_str(&s[last..]);
    out
}

pub fn alias_decls() -> String {
    let names: Vec<&str> = ALIASES.iter().map(|a| a.1).collect();
    let vals: Vec<&str> = ALIASES.iter().map(|a| a.0).collect();
    let mut s = String::new();
    for (n, v) in names.chunks(10).zip(vals.chunks(10)) {
        s.push_str(&format!("local {} = {}\n", n.join(", "), v.join(", ")));
    }
    // Never written, so the compiler folds it like a literal.
    s.push_str("local W = 4294967296\n");
    s
}

/// (name, dependencies, code). Order matters: a helper only uses helpers defined above it.
pub const HELPERS: &[(&str, &[&str], &str)] = &[
    ("S", &[], "local S = buffer.create(8)\n"),
    ("trap", &[], "local function trap(msg)\n\terror(\"wasm trap: \" .. msg, 0)\nend\n"),
    ("f32r", &["S"], "local function f32r(x)\n\tbuffer.writef32(S, 0, x)\n\treturn buffer.readf32(S, 0)\nend\n"),
    ("signed", &[], "local function signed(x)\n\tif x >= 2147483648 then\n\t\treturn x - 4294967296\n\tend\n\treturn x\nend\n"),
    ("mul32", &[], "local function mul32(a, b)\n\tlocal lo = a % 65536\n\treturn ((a - lo) / 65536 * b % 65536 * 65536 + lo * b) % 4294967296\nend\n"),
    ("divs32", &["trap", "signed"], "local function divs32(a, b)\n\tif b == 0 then trap(\"integer divide by zero\") end\n\tif a == 2147483648 and b == 4294967295 then trap(\"integer overflow\") end\n\tlocal q = signed(a) / signed(b)\n\tif q >= 0 then q = math.floor(q) else q = math.ceil(q) end\n\treturn q % 4294967296\nend\n"),
    ("divu32", &["trap"], "local function divu32(a, b)\n\tif b == 0 then trap(\"integer divide by zero\") end\n\treturn a // b\nend\n"),
    ("rems32", &["trap", "signed"], "local function rems32(a, b)\n\tif b == 0 then trap(\"integer divide by zero\") end\n\treturn math.fmod(signed(a), signed(b)) % 4294967296\nend\n"),
    ("remu32", &["trap"], "local function remu32(a, b)\n\tif b == 0 then trap(\"integer divide by zero\") end\n\treturn a % b\nend\n"),
    ("popcnt32", &[], "local function popcnt32(x)\n\tx = x - bit32.band(bit32.rshift(x, 1), 0x55555555)\n\tx = bit32.band(x, 0x33333333) + bit32.band(bit32.rshift(x, 2), 0x33333333)\n\tx = bit32.band(x + bit32.rshift(x, 4), 0x0F0F0F0F)\n\treturn (x * 0x01010101) % 4294967296 // 16777216\nend\n"),
    ("ext8", &[], "local function ext8(x)\n\tx = x % 256\n\tif x >= 128 then return x + 4294967040 end\n\treturn x\nend\n"),
    ("ext16", &[], "local function ext16(x)\n\tx = x % 65536\n\tif x >= 32768 then return x + 4294901760 end\n\treturn x\nend\n"),
    // i64 arithmetic on (lo, hi) pairs.
    ("add64", &[], "local function add64(al, ah, bl, bh)\n\tlocal l = al + bl\n\treturn l % 4294967296, (ah + bh + l // 4294967296) % 4294967296\nend\n"),
    ("sub64", &[], "local function sub64(al, ah, bl, bh)\n\tlocal l = al - bl\n\treturn l % 4294967296, (ah - bh + l // 4294967296) % 4294967296\nend\n"),
    ("mul64", &["mul32"], "local function mul64(al, ah, bl, bh)\n\tlocal a0 = al % 65536\n\tlocal a1 = (al - a0) / 65536\n\tlocal b0 = bl % 65536\n\tlocal b1 = (bl - b0) / 65536\n\tlocal mid = a1 * b0 + a0 * b1\n\tlocal m0 = mid % 65536\n\tlocal lo = a0 * b0 + m0 * 65536\n\tlocal hi = a1 * b1 + (mid - m0) / 65536 + lo // 4294967296 + mul32(al, bh) + mul32(ah, bl)\n\treturn lo % 4294967296, hi % 4294967296\nend\n"),
    ("neg64", &[], "local function neg64(l, h)\n\tif l == 0 then return 0, (4294967296 - h) % 4294967296 end\n\treturn 4294967296 - l, 4294967295 - h\nend\n"),
    // Unsigned 64-bit division by shift-subtract; a fast path covers operands below 2^53.
    ("divmodu64", &[], "local function divmodu64(al, ah, bl, bh)\n\tif ah < 2097152 and bh < 2097152 then\n\t\tlocal a = ah * 4294967296 + al\n\t\tlocal b = bh * 4294967296 + bl\n\t\tlocal q = a // b\n\t\tlocal r = a - q * b\n\t\tif r < 0 then q = q - 1 r = r + b elseif r >= b then q = q + 1 r = r - b end\n\t\tlocal qh = q // 4294967296\n\t\tlocal rh = r // 4294967296\n\t\treturn q - qh * 4294967296, qh, r - rh * 4294967296, rh\n\tend\n\tlocal ql, qh, rl, rh = 0, 0, 0, 0\n\tfor i = 63, 0, -1 do\n\t\trh = (rh * 2 + rl // 2147483648) % 4294967296\n\t\trl = (rl * 2) % 4294967296\n\t\tlocal bit\n\t\tif i >= 32 then bit = bit32.extract(ah, i - 32) else bit = bit32.extract(al, i) end\n\t\trl = rl + bit\n\t\tif rh > bh or (rh == bh and rl >= bl) then\n\t\t\tlocal l = rl - bl\n\t\t\trh = rh - bh + l // 4294967296\n\t\t\trl = l % 4294967296\n\t\t\tif i >= 32 then qh = qh + 2 ^ (i - 32) else ql = ql + 2 ^ i end\n\t\tend\n\tend\n\treturn ql, qh, rl, rh\nend\n"),
    ("divu64", &["trap", "divmodu64"], "local function divu64(al, ah, bl, bh)\n\tif bl == 0 and bh == 0 then trap(\"integer divide by zero\") end\n\tlocal ql, qh = divmodu64(al, ah, bl, bh)\n\treturn ql, qh\nend\n"),
    ("remu64", &["trap", "divmodu64"], "local function remu64(al, ah, bl, bh)\n\tif bl == 0 and bh == 0 then trap(\"integer divide by zero\") end\n\tlocal _, _, rl, rh = divmodu64(al, ah, bl, bh)\n\treturn rl, rh\nend\n"),
    ("divs64", &["trap", "divmodu64", "neg64"], "local function divs64(al, ah, bl, bh)\n\tif bl == 0 and bh == 0 then trap(\"integer divide by zero\") end\n\tif al == 0 and ah == 2147483648 and bl == 4294967295 and bh == 4294967295 then trap(\"integer overflow\") end\n\tlocal na, nb = ah >= 2147483648, bh >= 2147483648\n\tif na then al, ah = neg64(al, ah) end\n\tif nb then bl, bh = neg64(bl, bh) end\n\tlocal ql, qh = divmodu64(al, ah, bl, bh)\n\tif na ~= nb then return neg64(ql, qh) end\n\treturn ql, qh\nend\n"),
    ("rems64", &["trap", "divmodu64", "neg64"], "local function rems64(al, ah, bl, bh)\n\tif bl == 0 and bh == 0 then trap(\"integer divide by zero\") end\n\tlocal na = ah >= 2147483648\n\tif na then al, ah = neg64(al, ah) end\n\tif bh >= 2147483648 then bl, bh = neg64(bl, bh) end\n\tlocal _, _, rl, rh = divmodu64(al, ah, bl, bh)\n\tif na then return neg64(rl, rh) end\n\treturn rl, rh\nend\n"),
    ("shl64", &[], "local function shl64(l, h, n)\n\tn = n % 64\n\tif n == 0 then return l, h end\n\tif n >= 32 then return 0, bit32.lshift(l, n - 32) end\n\treturn bit32.lshift(l, n), bit32.bor(bit32.lshift(h, n), bit32.rshift(l, 32 - n))\nend\n"),
    ("shru64", &[], "local function shru64(l, h, n)\n\tn = n % 64\n\tif n == 0 then return l, h end\n\tif n >= 32 then return bit32.rshift(h, n - 32), 0 end\n\treturn bit32.bor(bit32.rshift(l, n), bit32.lshift(h, 32 - n)), bit32.rshift(h, n)\nend\n"),
    ("shrs64", &[], "local function shrs64(l, h, n)\n\tn = n % 64\n\tif n == 0 then return l, h end\n\tif n >= 32 then return bit32.arshift(h, n - 32), bit32.arshift(h, 31) end\n\treturn bit32.bor(bit32.rshift(l, n), bit32.lshift(h, 32 - n)), bit32.arshift(h, n)\nend\n"),
    ("rotl64", &["shl64", "shru64"], "local function rotl64(l, h, n)\n\tn = n % 64\n\tlocal al, ah = shl64(l, h, n)\n\tlocal bl, bh = shru64(l, h, 64 - n)\n\treturn bit32.bor(al, bl), bit32.bor(ah, bh)\nend\n"),
    ("rotr64", &["shl64", "shru64"], "local function rotr64(l, h, n)\n\tn = n % 64\n\tlocal al, ah = shru64(l, h, n)\n\tlocal bl, bh = shl64(l, h, 64 - n)\n\treturn bit32.bor(al, bl), bit32.bor(ah, bh)\nend\n"),
    ("clz64", &[], "local function clz64(l, h)\n\tif h ~= 0 then return bit32.countlz(h) end\n\treturn 32 + bit32.countlz(l)\nend\n"),
    ("ctz64", &[], "local function ctz64(l, h)\n\tif l ~= 0 then return bit32.countrz(l) end\n\treturn 32 + bit32.countrz(h)\nend\n"),
    ("lts64", &[], "local function lts64(al, ah, bl, bh)\n\tif ah ~= bh then return bit32.bxor(ah, 2147483648) < bit32.bxor(bh, 2147483648) end\n\treturn al < bl\nend\n"),
    ("ltu64", &[], "local function ltu64(al, ah, bl, bh)\n\tif ah ~= bh then return ah < bh end\n\treturn al < bl\nend\n"),
    ("i64tof64s", &[], "local function i64tof64s(l, h)\n\tif h >= 2147483648 then return (h - 4294967296) * 4294967296 + l end\n\treturn h * 4294967296 + l\nend\n"),
    // Conversions to f32 must round once: bits far below f32 precision collapse into a sticky bit
    // so that the exact double does not round twice.
    ("u64tof32", &["f32r"], "local function u64tof32(l, h)\n\tif h >= 2097152 then\n\t\tlocal low = l % 4096\n\t\tl = l - low\n\t\tif low ~= 0 then l = l + 2048 end\n\tend\n\treturn f32r(h * 4294967296 + l)\nend\n"),
    ("s64tof32", &["u64tof32", "neg64"], "local function s64tof32(l, h)\n\tif h >= 2147483648 then\n\t\treturn -u64tof32(neg64(l, h))\n\tend\n\treturn u64tof32(l, h)\nend\n"),
    ("ftrunc", &[], "local function ftrunc(x)\n\tif x >= 0 then return math.floor(x) end\n\treturn math.ceil(x)\nend\n"),
    ("trunci32s", &["trap", "ftrunc"], "local function trunci32s(x)\n\tif x ~= x then trap(\"invalid conversion to integer\") end\n\tif x <= -2147483649 or x >= 2147483648 then trap(\"integer overflow\") end\n\treturn ftrunc(x) % 4294967296\nend\n"),
    ("trunci32u", &["trap", "ftrunc"], "local function trunci32u(x)\n\tif x ~= x then trap(\"invalid conversion to integer\") end\n\tif x <= -1 or x >= 4294967296 then trap(\"integer overflow\") end\n\treturn ftrunc(x) % 4294967296\nend\n"),
    ("sati32s", &["ftrunc"], "local function sati32s(x)\n\tif x ~= x then return 0 end\n\tif x <= -2147483648 then return 2147483648 end\n\tif x >= 2147483647 then return 2147483647 end\n\treturn ftrunc(x) % 4294967296\nend\n"),
    ("sati32u", &["ftrunc"], "local function sati32u(x)\n\tif x ~= x or x <= 0 then return 0 end\n\tif x >= 4294967295 then return 4294967295 end\n\treturn ftrunc(x) % 4294967296\nend\n"),
    ("f2i64", &["ftrunc"], "local function f2i64(x)\n\tlocal t = ftrunc(x)\n\tlocal h = math.floor(t / 4294967296)\n\treturn t - h * 4294967296, h % 4294967296\nend\n"),
    ("trunci64s", &["trap", "f2i64"], "local function trunci64s(x)\n\tif x ~= x then trap(\"invalid conversion to integer\") end\n\tif x < -9223372036854775808 or x >= 9223372036854775808 then trap(\"integer overflow\") end\n\treturn f2i64(x)\nend\n"),
    ("trunci64u", &["trap", "f2i64"], "local function trunci64u(x)\n\tif x ~= x then trap(\"invalid conversion to integer\") end\n\tif x <= -1 or x >= 18446744073709551616 then trap(\"integer overflow\") end\n\treturn f2i64(x)\nend\n"),
    ("sati64s", &["f2i64"], "local function sati64s(x)\n\tif x ~= x then return 0, 0 end\n\tif x < -9223372036854775808 then return 0, 2147483648 end\n\tif x >= 9223372036854775808 then return 4294967295, 2147483647 end\n\treturn f2i64(x)\nend\n"),
    ("sati64u", &["f2i64"], "local function sati64u(x)\n\tif x ~= x or x <= -1 then return 0, 0 end\n\tif x >= 18446744073709551616 then return 4294967295, 4294967295 end\n\treturn f2i64(x)\nend\n"),
    // Float helpers. NaN results are produced by arithmetic on the NaN operand so they come out
    // quiet (arithmetic NaN), as the spec requires.
    ("fmin", &[], "local function fmin(a, b)\n\tif a ~= a or b ~= b then return a + b end\n\tif a == b then\n\t\tif 1 / a < 0 then return a end\n\t\treturn b\n\tend\n\tif a < b then return a end\n\treturn b\nend\n"),
    ("fmax", &[], "local function fmax(a, b)\n\tif a ~= a or b ~= b then return a + b end\n\tif a == b then\n\t\tif 1 / a > 0 then return a end\n\t\treturn b\n\tend\n\tif a > b then return a end\n\treturn b\nend\n"),
    ("fnearest", &[], "local function fnearest(x)\n\tif x ~= x then return x + x end\n\tif x >= 4503599627370496 or x <= -4503599627370496 or x == 0 then return x end\n\tlocal f = math.floor(x)\n\tlocal d = x - f\n\tif d > 0.5 or (d == 0.5 and f % 2 ~= 0) then f = f + 1 end\n\tif f == 0 then return x * 0 end\n\treturn f\nend\n"),
    ("fceil", &[], "local function fceil(x)\n\tif x ~= x then return x + x end\n\treturn math.ceil(x)\nend\n"),
    ("ffloor", &[], "local function ffloor(x)\n\tif x ~= x then return x + x end\n\treturn math.floor(x)\nend\n"),
    ("ftruncf", &[], "local function ftruncf(x)\n\tif x ~= x then return x + x end\n\tif x >= 0 then return math.floor(x) end\n\treturn math.ceil(x)\nend\n"),
    ("fsqrt", &[], "local function fsqrt(x)\n\tif x ~= x then return x + x end\n\treturn math.sqrt(x)\nend\n"),
    ("fcopysign", &["S"], "local function fcopysign(a, b)\n\tbuffer.writef64(S, 0, b)\n\tlocal sb = buffer.readu8(S, 7) >= 128\n\tbuffer.writef64(S, 0, a)\n\tlocal v = buffer.readu8(S, 7)\n\tif (v >= 128) ~= sb then buffer.writeu8(S, 7, v + (sb and 128 or -128)) end\n\treturn buffer.readf64(S, 0)\nend\n"),
    ("fabs", &["S"], "local function fabs(a)\n\tbuffer.writef64(S, 0, a)\n\tbuffer.writeu8(S, 7, buffer.readu8(S, 7) % 128)\n\treturn buffer.readf64(S, 0)\nend\n"),
    ("fneg", &["S"], "local function fneg(a)\n\tbuffer.writef64(S, 0, a)\n\tbuffer.writeu8(S, 7, (buffer.readu8(S, 7) + 128) % 256)\n\treturn buffer.readf64(S, 0)\nend\n"),
    ("fpromote", &[], "local function fpromote(x)\n\tif x ~= x then return x + x end\n\treturn x\nend\n"),
    // f32 bit patterns <-> the exact double that carries them (NaN payload in the top bits).
    ("f32bits", &["S"], "local function f32bits(x)\n\tif x == x then\n\t\tbuffer.writef32(S, 0, x)\n\t\treturn buffer.readu32(S, 0)\n\tend\n\tbuffer.writef64(S, 0, x)\n\tlocal lo, hi = buffer.readu32(S, 0), buffer.readu32(S, 4)\n\treturn bit32.bor(bit32.band(hi, 0x80000000), 0x7F800000, bit32.lshift(bit32.band(hi, 0xFFFFF), 3), bit32.rshift(lo, 29))\nend\n"),
    ("f32frombits", &["S"], "local function f32frombits(b)\n\tbuffer.writeu32(S, 0, b)\n\tlocal x = buffer.readf32(S, 0)\n\tif x == x then return x end\n\tbuffer.writeu32(S, 0, bit32.lshift(b, 29))\n\tbuffer.writeu32(S, 4, bit32.bor(bit32.band(b, 0x80000000), 0x7FF00000, bit32.rshift(bit32.band(b, 0x7FFFFF), 3)))\n\treturn buffer.readf64(S, 0)\nend\n"),
    ("f64bits", &["S"], "local function f64bits(x)\n\tbuffer.writef64(S, 0, x)\n\treturn buffer.readu32(S, 0), buffer.readu32(S, 4)\nend\n"),
    ("f64frombits", &["S"], "local function f64frombits(l, h)\n\tbuffer.writeu32(S, 0, l)\n\tbuffer.writeu32(S, 4, h)\n\treturn buffer.readf64(S, 0)\nend\n"),
];

/// Runtime support for memories, tables, traps and the boundary; same (name, deps, code) form.
pub const RUNTIME: &[(&str, &[&str], &str)] = &[
    ("f32load", &["f32frombits"], "local function f32load(m, a)\n\tlocal x = buffer.readf32(m, a)\n\tif x ~= x then return f32frombits(buffer.readu32(m, a)) end\n\treturn x\nend\n"),
    ("f32store", &["f32bits"], "local function f32store(m, a, x)\n\tif x ~= x then buffer.writeu32(m, a, f32bits(x)) else buffer.writef32(m, a, x) end\nend\n"),
    ("NF", &[], "local NF = {0.0, -0.0, 1.0, -1.0}\n"),
    ("callind", &["trap"], "local function callind(t, k)\n\tif k > t.n then trap(\"undefined element\") end\n\tif t.f[k] == nil then trap(\"uninitialized element\") end\n\ttrap(\"indirect call type mismatch\")\nend\n"),
    ("mfill", &["trap"], "local function mfill(m, d, v, n)\n\tif d + n > buffer.len(m) then trap(\"out of bounds memory access\") end\n\tbuffer.fill(m, d, v % 256, n)\nend\n"),
    ("mcopy", &["trap"], "local function mcopy(m, d, s, n)\n\tlocal len = buffer.len(m)\n\tif d + n > len or s + n > len then trap(\"out of bounds memory access\") end\n\tbuffer.copy(m, d, m, s, n)\nend\n"),
    ("minit", &["trap"], "local function minit(m, seg, d, s, n)\n\tif s + n > buffer.len(seg) or d + n > buffer.len(m) then trap(\"out of bounds memory access\") end\n\tbuffer.copy(m, d, seg, s, n)\nend\n"),
    ("DROPPED", &[], "local DROPPED = buffer.create(0)\n"),
    ("EDROPPED", &[], "local EDROPPED = {n = 0, f = {}, s = {}}\n"),
    ("FSIG", &[], "local FSIG = setmetatable({}, {__mode = \"k\"})\n"),
    ("tinit", &["trap"], "local function tinit(t, e, d, s, n)\n\tif s + n > e.n or d + n > t.n then trap(\"out of bounds table access\") end\n\tlocal tf, ts, ef, es = t.f, t.s, e.f, e.s\n\tfor i = 1, n do\n\t\ttf[d + i] = ef[s + i]\n\t\tts[d + i] = es[s + i]\n\tend\nend\n"),
    ("tcopy", &["trap"], "local function tcopy(td, tsrc, d, s, n)\n\tif s + n > tsrc.n or d + n > td.n then trap(\"out of bounds table access\") end\n\tlocal df, ds, sf, ss = td.f, td.s, tsrc.f, tsrc.s\n\tif d <= s then\n\t\tfor i = 1, n do df[d + i] = sf[s + i] ds[d + i] = ss[s + i] end\n\telse\n\t\tfor i = n, 1, -1 do df[d + i] = sf[s + i] ds[d + i] = ss[s + i] end\n\tend\nend\n"),
    ("tget", &["trap"], "local function tget(t, i)\n\tif i >= t.n then trap(\"out of bounds table access\") end\n\treturn t.f[i + 1]\nend\n"),
    ("tset", &["trap", "FSIG"], "local function tset(t, i, v)\n\tif i >= t.n then trap(\"out of bounds table access\") end\n\tt.f[i + 1] = v\n\tt.s[i + 1] = v and FSIG[v]\nend\n"),
    ("tgrow", &["FSIG"], "local function tgrow(t, v, n)\n\tlocal old = t.n\n\tif old + n > (t.max or 4294967295) or old + n > 10000000 then return 4294967295 end\n\tfor i = old + 1, old + n do t.f[i] = v t.s[i] = v and FSIG[v] end\n\tt.n = old + n\n\treturn old\nend\n"),
    ("tfill", &["trap", "FSIG"], "local function tfill(t, d, v, n)\n\tif d + n > t.n then trap(\"out of bounds table access\") end\n\tlocal sig = v and FSIG[v]\n\tfor i = d + 1, d + n do t.f[i] = v t.s[i] = sig end\nend\n"),
    // Errors leaving an exported function: VM errors that are wasm traps get the trap form.
    ("rethrow", &[], "local function rethrow(e)\n\tif type(e) == \"string\" and string.sub(e, 1, 11) ~= \"wasm trap: \" then\n\t\tif string.find(e, \"buffer access out of bounds\", 1, true) then\n\t\t\terror(\"wasm trap: out of bounds memory access\", 0)\n\t\telseif string.find(e, \"stack overflow\", 1, true) then\n\t\t\terror(\"wasm trap: call stack exhausted\", 0)\n\t\tend\n\tend\n\terror(e, 0)\nend\n"),
    ("newmem", &[], "local function newmem(initial, max)\n\treturn {buffer = buffer.create(initial * 65536), max = max, listeners = {}}\nend\n"),
    // Luau buffers stop at 1 GiB, so growth past 16384 pages fails like a wasm limit would.
    ("memgrow", &[], "local function memgrow(mo, n)\n\tlocal old = buffer.len(mo.buffer) // 65536\n\tlocal new = old + n\n\tif new > (mo.max or 65536) or new > 16384 then return 4294967295 end\n\tif n == 0 then return old end\n\tlocal nb = buffer.create(new * 65536)\n\tbuffer.copy(nb, 0, mo.buffer)\n\tmo.buffer = nb\n\tfor _, f in mo.listeners do f(nb) end\n\treturn old\nend\n"),
    ("linkerr", &[], "local function linkerr(msg)\n\terror(\"wasm link error: \" .. msg, 0)\nend\n"),
    ("GMT", &["signed"], "local GMT = {__index = {\n\tget = function(g)\n\t\tif g.type == \"i32\" then return signed(g.v) end\n\t\tif g.type == \"i64\" then return g.v, g.h end\n\t\treturn g.v\n\tend,\n\tset = function(g, v, h)\n\t\tif g.type == \"i32\" then v = v % 4294967296 end\n\t\tif g.type == \"i64\" then v, h = v % 4294967296, h % 4294967296 end\n\t\tg.v, g.h = v, h\n\tend,\n}}\n"),
];

/// All helpers, core first, so dependencies resolve in order.
pub fn emit_used(used: &std::collections::BTreeSet<&'static str>) -> String {
    emit_used_split(used, &[])
}

/// Helpers holding state every part of a split module must share (identity-compared
/// sentinels, the weak table of function signatures): a part declares them and takes the
/// main module's values when it is linked.
pub const SHARED: &[&str] = &["DROPPED", "EDROPPED", "FSIG"];

/// Whether `name` is among `used` or the helpers they depend on.
pub fn closes_over(used: &std::collections::BTreeSet<&'static str>, name: &str) -> bool {
    let all: Vec<&(&str, &[&str], &str)> = HELPERS.iter().chain(RUNTIME.iter()).collect();
    let mut need: std::collections::BTreeSet<&str> = used.iter().copied().collect();
    loop {
        let before = need.len();
        for (n, deps, _) in &all {
            if need.contains(n) {
                need.extend(deps.iter().copied());
            }
        }
        if need.len() == before {
            return need.contains(name);
        }
    }
}

/// [`emit_used`], with each helper named in `declared_only` declared (`local NAME`) rather
/// than defined.
pub fn emit_used_split(
    used: &std::collections::BTreeSet<&'static str>,
    declared_only: &[&str],
) -> String {
    let all: Vec<&(&str, &[&str], &str)> = HELPERS.iter().chain(RUNTIME.iter()).collect();
    let mut need: std::collections::BTreeSet<&str> = used.iter().copied().collect();
    // Close over dependencies (the lists are short; iterate to a fixed point).
    loop {
        let before = need.len();
        for (name, deps, _) in &all {
            if need.contains(name) {
                need.extend(deps.iter().copied());
            }
        }
        if need.len() == before {
            break;
        }
    }
    // Emit in dependency order: repeatedly take the first helper whose deps are all emitted.
    let mut out = alias_decls();
    let mut done: std::collections::BTreeSet<&str> = Default::default();
    while done.len() < need.len() {
        let mut progressed = false;
        for (name, deps, code) in &all {
            if need.contains(name) && !done.contains(name) && deps.iter().all(|d| done.contains(d))
            {
                if declared_only.contains(name) {
                    out.push_str(&format!("local {name}\n"));
                } else {
                    out.push_str(&use_aliases(code));
                }
                done.insert(name);
                progressed = true;
            }
        }
        assert!(progressed, "helper dependency cycle");
    }
    out
}
