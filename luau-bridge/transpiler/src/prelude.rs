//! Runtime helpers written once as chunk-level `local function`s, so the Luau compiler
//! (with `--!optimize 2`) can inline the small ones. Only helpers a module uses are emitted,
//! in a fixed order, which keeps output small and deterministic.
//!
//! Value conventions inside the chunk: i32 is an unsigned integer in [0, 2^32); i64 is two
//! such numbers (low, high); f32 is a double holding an f32 value exactly (NaN payloads in
//! the top mantissa bits, signalling NaNs kept signalling); f64 is a double.
//!
//! Each helper is a Luau file in `src/prelude/` (StyLua and selene configured there), named
//! by [`Helper`].

use std::collections::BTreeSet;

/// Declares [`Builtin`]: variant = "lib.function" => "alias".
macro_rules! builtins {
    ($($variant:ident = $full:literal => $alias:literal;)*) => {
        /// A builtin function the chunk calls through a chunk-level local: shorter output, and
        /// the Luau compiler still treats a never-written local initialised from a builtin as
        /// that builtin (fastcall). Generated code and the helper files call the alias.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Builtin {
            $(
                #[doc = concat!("`", $full, "`, called as `", $alias, "`")]
                $variant,
            )*
        }

        impl Builtin {
            /// Every builtin with an alias, in declaration order.
            pub const ALL: &'static [Builtin] = &[$(Builtin::$variant),*];

            /// The chunk-level local generated code calls.
            pub fn alias(self) -> &'static str {
                match self {
                    $(Builtin::$variant => $alias,)*
                }
            }

            /// The builtin's full name (`bit32.band`).
            pub fn full(self) -> &'static str {
                match self {
                    $(Builtin::$variant => $full,)*
                }
            }
        }
    };
}

builtins! {
    Band = "bit32.band" => "band";
    Bor = "bit32.bor" => "bor";
    Bxor = "bit32.bxor" => "bxor";
    Lshift = "bit32.lshift" => "lsh";
    Rshift = "bit32.rshift" => "rsh";
    Arshift = "bit32.arshift" => "ash";
    Lrotate = "bit32.lrotate" => "rol";
    Rrotate = "bit32.rrotate" => "ror";
    Countlz = "bit32.countlz" => "clz";
    Countrz = "bit32.countrz" => "ctz";
    Readu32 = "buffer.readu32" => "ru32";
    Readi32 = "buffer.readi32" => "ri32";
    Readu16 = "buffer.readu16" => "ru16";
    Readi16 = "buffer.readi16" => "ri16";
    Readu8 = "buffer.readu8" => "ru8";
    Readi8 = "buffer.readi8" => "ri8";
    Readf64 = "buffer.readf64" => "rf64";
    Readf32 = "buffer.readf32" => "rf32";
    Writeu32 = "buffer.writeu32" => "wu32";
    Writeu16 = "buffer.writeu16" => "wu16";
    Writeu8 = "buffer.writeu8" => "wu8";
    Writef64 = "buffer.writef64" => "wf64";
    Writef32 = "buffer.writef32" => "wf32";
    Len = "buffer.len" => "blen";
    Abs = "math.abs" => "mabs";
    Floor = "math.floor" => "mfloor";
    Ceil = "math.ceil" => "mceil";
}

/// The declarations every chunk starts with: the aliases and `W` = 2^32. The helper files
/// call the aliases and read `W` themselves (as generated code does), so they are emitted as
/// written, never rewritten.
pub fn alias_decls() -> String {
    let names: Vec<&str> = Builtin::ALL.iter().map(|b| b.alias()).collect();
    let vals: Vec<&str> = Builtin::ALL.iter().map(|b| b.full()).collect();
    let mut s = String::new();
    for (n, v) in names.chunks(10).zip(vals.chunks(10)) {
        s.push_str(&format!("local {} = {}\n", n.join(", "), v.join(", ")));
    }
    // Never written, so the compiler folds it like a literal.
    s.push_str("local W = 4294967296\n");
    s
}

/// Declares [`Helper`]: variant = "name" (the Luau local, and the file
/// `prelude/<name>.luau`), [dependencies]. Order matters: a helper only uses helpers declared
/// above it, and helpers are emitted in this order.
macro_rules! helpers {
    ($($variant:ident = $name:literal, [$($dep:ident),*];)*) => {
        /// A runtime helper: one chunk-level local, defined in `src/prelude/<name>.luau`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Helper {
            $(
                #[doc = concat!("`", $name, "` (src/prelude/", $name, ".luau)")]
                $variant,
            )*
        }

        impl Helper {
            /// Every helper in emission order.
            pub const ALL: &'static [Helper] = &[$(Helper::$variant),*];

            /// The Luau name the chunk defines and generated code calls.
            pub fn name(self) -> &'static str {
                match self {
                    $(Helper::$variant => $name,)*
                }
            }

            /// The helpers this one calls, which must be emitted before it.
            pub fn deps(self) -> &'static [Helper] {
                match self {
                    $(Helper::$variant => &[$(Helper::$dep),*],)*
                }
            }

            /// The helper's file as written, leading comment lines included.
            fn file(self) -> &'static str {
                match self {
                    $(Helper::$variant => include_str!(concat!("prelude/", $name, ".luau")),)*
                }
            }
        }
    };
}

helpers! {
    S = "S", [];
    Trap = "trap", [];
    F32r = "f32r", [S];
    Signed = "signed", [];
    Mul32 = "mul32", [];
    Divs32 = "divs32", [Trap, Signed];
    Divu32 = "divu32", [Trap];
    Rems32 = "rems32", [Trap, Signed];
    Remu32 = "remu32", [Trap];
    Popcnt32 = "popcnt32", [];
    Ext8 = "ext8", [];
    Ext16 = "ext16", [];
    Add64 = "add64", [];
    Sub64 = "sub64", [];
    Mul64 = "mul64", [Mul32];
    Neg64 = "neg64", [];
    Divmodu64 = "divmodu64", [];
    Divu64 = "divu64", [Trap, Divmodu64];
    Remu64 = "remu64", [Trap, Divmodu64];
    Divs64 = "divs64", [Trap, Divmodu64, Neg64];
    Rems64 = "rems64", [Trap, Divmodu64, Neg64];
    Shl64 = "shl64", [];
    Shru64 = "shru64", [];
    Shrs64 = "shrs64", [];
    Rotl64 = "rotl64", [Shl64, Shru64];
    Rotr64 = "rotr64", [Shl64, Shru64];
    Clz64 = "clz64", [];
    Ctz64 = "ctz64", [];
    Lts64 = "lts64", [];
    Ltu64 = "ltu64", [];
    I64tof64s = "i64tof64s", [];
    U64tof32 = "u64tof32", [F32r];
    S64tof32 = "s64tof32", [U64tof32, Neg64];
    Ftrunc = "ftrunc", [];
    Trunci32s = "trunci32s", [Trap, Ftrunc];
    Trunci32u = "trunci32u", [Trap, Ftrunc];
    Sati32s = "sati32s", [Ftrunc];
    Sati32u = "sati32u", [Ftrunc];
    F2i64 = "f2i64", [Ftrunc];
    Trunci64s = "trunci64s", [Trap, F2i64];
    Trunci64u = "trunci64u", [Trap, F2i64];
    Sati64s = "sati64s", [F2i64];
    Sati64u = "sati64u", [F2i64];
    Fmin = "fmin", [];
    Fmax = "fmax", [];
    Fnearest = "fnearest", [];
    Fceil = "fceil", [];
    Ffloor = "ffloor", [];
    Ftruncf = "ftruncf", [];
    Fsqrt = "fsqrt", [];
    Fcopysign = "fcopysign", [S];
    Fabs = "fabs", [S];
    Fneg = "fneg", [S];
    Fpromote = "fpromote", [];
    F32bits = "f32bits", [S];
    F32frombits = "f32frombits", [S];
    F64bits = "f64bits", [S];
    F64frombits = "f64frombits", [S];
    F32load = "f32load", [F32frombits];
    F32store = "f32store", [F32bits];
    Nf = "NF", [];
    Callind = "callind", [Trap];
    Mfill = "mfill", [Trap];
    Mcopy = "mcopy", [Trap];
    Minit = "minit", [Trap];
    Dropped = "DROPPED", [];
    Edropped = "EDROPPED", [];
    Fsig = "FSIG", [];
    Tinit = "tinit", [Trap];
    Tcopy = "tcopy", [Trap];
    Tget = "tget", [Trap];
    Tset = "tset", [Trap, Fsig];
    Tgrow = "tgrow", [Fsig];
    Tfill = "tfill", [Trap, Fsig];
    Rethrow = "rethrow", [];
    Newmem = "newmem", [];
    Memgrow = "memgrow", [];
    Linkerr = "linkerr", [];
    Gmt = "GMT", [Signed];
}

/// Formats as the helper's Luau name, for generated calls: `format!("{h}(x)")`.
impl std::fmt::Display for Helper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Helper {
    /// The Luau the chunk gets: the file without its leading comment lines (the files explain
    /// themselves and carry StyLua directives; the generated chunk stays as compact as before).
    pub fn code(self) -> &'static str {
        let mut code = self.file();
        while code.starts_with("--") {
            code = code.split_once('\n').map_or("", |(_, rest)| rest);
        }
        code
    }
}

/// The set of helpers a chunk (or part) uses.
pub type Helpers = BTreeSet<Helper>;

/// `used` and every helper they depend on, transitively.
fn closure(used: &Helpers) -> Helpers {
    let mut need = used.clone();
    // Dependencies are declared above their users, so one pass from the end closes the set.
    for h in Helper::ALL.iter().rev() {
        if need.contains(h) {
            need.extend(h.deps().iter().copied());
        }
    }
    need
}

/// The alias declarations and every helper `used` needs, in declaration order.
pub fn emit_used(used: &Helpers) -> String {
    emit_used_split(used, &[])
}

/// Helpers holding state every part of a split module must share (identity-compared
/// sentinels, the weak table of function signatures): a part declares them and takes the
/// main module's values when it is linked.
pub const SHARED: &[Helper] = &[Helper::Dropped, Helper::Edropped, Helper::Fsig];

/// Whether `h` is among `used` or the helpers they depend on.
pub fn closes_over(used: &Helpers, h: Helper) -> bool {
    closure(used).contains(&h)
}

/// [`emit_used`], with each helper in `declared_only` declared (`local NAME`) rather than
/// defined.
pub fn emit_used_split(used: &Helpers, declared_only: &[Helper]) -> String {
    let need = closure(used);
    let mut out = alias_decls();
    for h in Helper::ALL.iter().filter(|h| need.contains(h)) {
        if declared_only.contains(h) {
            out.push_str(&format!("local {}\n", h.name()));
        } else {
            out.push_str(h.code());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_are_declared_before_their_users() {
        for (i, h) in Helper::ALL.iter().enumerate() {
            for d in h.deps() {
                let j = Helper::ALL.iter().position(|x| x == d).unwrap();
                assert!(j < i, "{h} depends on {d}, declared after it");
            }
        }
    }

    #[test]
    fn each_file_defines_its_helper() {
        for h in Helper::ALL {
            let code = h.code();
            let name = h.name();
            assert!(
                code.starts_with(&format!("local function {name}("))
                    || code.starts_with(&format!("local {name} = ")),
                "src/prelude/{name}.luau does not start by defining {name}"
            );
            assert!(code.ends_with('\n') && !code.contains("\n--"), "{name}");
            for (full, short) in Builtin::ALL.iter().map(|b| (b.full(), b.alias())) {
                assert!(
                    !code.contains(&format!("{full}(")),
                    "src/prelude/{name}.luau calls {full}: call its alias {short}"
                );
            }
        }
    }

    #[test]
    fn builtins_have_distinct_aliases_of_their_library_functions() {
        assert_eq!(Builtin::Lshift.alias(), "lsh");
        assert_eq!(Builtin::Readu32.full(), "buffer.readu32");
        for (i, a) in Builtin::ALL.iter().enumerate() {
            let (lib, f) = a.full().split_once('.').expect("lib.function");
            assert!(["bit32", "buffer", "math"].contains(&lib) && !f.is_empty());
            for b in &Builtin::ALL[i + 1..] {
                assert_ne!(a.alias(), b.alias());
            }
        }
    }

    #[test]
    fn selene_knows_the_aliases_the_helpers_call() {
        let std = include_str!("prelude/prelude.yml");
        for name in Builtin::ALL.iter().map(|b| b.alias()).chain(["W"]) {
            assert!(
                std.contains(&format!("\n  {name}:\n    any: true\n")),
                "prelude.yml does not declare {name}"
            );
        }
    }

    #[test]
    fn emission_closes_over_dependencies_in_order() {
        let used: Helpers = [Helper::S64tof32].into_iter().collect();
        let out = emit_used(&used);
        let at = |h: Helper| out.find(&format!("local function {h}(")).unwrap();
        assert!(at(Helper::F32r) < at(Helper::U64tof32));
        assert!(at(Helper::Neg64) < at(Helper::S64tof32));
        assert!(!out.contains("local function trap("));
        assert!(closes_over(&used, Helper::S) && !closes_over(&used, Helper::Trap));
        let split = emit_used_split(&[Helper::Tset].into_iter().collect(), SHARED);
        assert!(split.contains("local FSIG\n") && !split.contains("setmetatable"));
    }
}
