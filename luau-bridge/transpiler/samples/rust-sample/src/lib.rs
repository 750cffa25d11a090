//! The same computations run natively and as Rust -> wasm -> Luau; results must match.
//! Built with std for wasm32-unknown-unknown, and `--no-default-features` (no_std + alloc)
//! for wasm32v1-none.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

#[cfg(feature = "std")]
type Map<K, V> = std::collections::HashMap<K, V>;
#[cfg(not(feature = "std"))]
type Map<K, V> = alloc::collections::BTreeMap<K, V>;

/// Word counting through a map keyed by formatted strings.
pub fn words(n: u32) -> u32 {
    let mut m: Map<String, u32> = Map::new();
    for i in 0..n {
        *m.entry(format!("w{}", (i * 31) % 97)).or_insert(0) += i;
    }
    let mut keys: Vec<(&String, &u32)> = m.iter().collect();
    keys.sort();
    keys.iter().fold(0u32, |acc, (k, v)| {
        acc.wrapping_mul(31)
            .wrapping_add(k.len() as u32)
            .wrapping_add(**v)
    })
}

trait Shape {
    fn area(&self) -> f64;
    fn scale(&mut self, k: f64);
}
struct Circle(f64);
struct Rect(f64, f64);
impl Shape for Circle {
    fn area(&self) -> f64 {
        3.141592653589793 * self.0 * self.0
    }
    fn scale(&mut self, k: f64) {
        self.0 *= k;
    }
}
impl Shape for Rect {
    fn area(&self) -> f64 {
        self.0 * self.1
    }
    fn scale(&mut self, k: f64) {
        self.0 *= k;
        self.1 /= k;
    }
}

/// Dynamic dispatch through `Box<dyn Trait>` (call_indirect).
pub fn shapes(n: u32) -> f64 {
    let mut v: Vec<Box<dyn Shape>> = Vec::new();
    for i in 0..n {
        if i % 3 == 0 {
            v.push(Box::new(Circle(i as f64 * 0.5)));
        } else {
            v.push(Box::new(Rect(i as f64, 1.0 / (i as f64 + 1.0))));
        }
    }
    for (i, s) in v.iter_mut().enumerate() {
        s.scale(1.0 + (i % 5) as f64 * 0.25);
    }
    v.iter().map(|s| s.area()).sum()
}

/// Hardware sqrt with std; without std (no sqrt in core) a fixed Newton iteration, also
/// available natively through the `soft-sqrt` feature so both variants can be compared.
#[cfg(all(feature = "std", not(feature = "soft-sqrt")))]
fn sqrt32(x: f32) -> f32 {
    x.sqrt()
}
#[cfg(any(not(feature = "std"), feature = "soft-sqrt"))]
fn sqrt32(x: f32) -> f32 {
    if x <= 0.0 {
        return 0.0;
    }
    let mut r = f32::from_bits((x.to_bits() >> 1) + 0x1fc0_0000);
    for _ in 0..6 {
        r = 0.5 * (r + x / r);
    }
    r
}

/// f32 arithmetic where rounding after every operation matters.
pub fn f32_mix(n: u32) -> f32 {
    let mut x = 0.1f32;
    let mut acc = 0.0f32;
    for i in 0..n {
        x = x * 1.000_1 + 0.333_333_3 / (i as f32 + 1.0);
        acc += x * x - acc / 7.0;
        if acc > 1.0e6 {
            acc = sqrt32(acc);
        }
    }
    acc + sqrt32(x)
}

/// Sorting: integers, then floats by total order, then a stable sort by key.
pub fn sorting(n: u32, seed: u32) -> u32 {
    let mut s = seed as u64 | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut ints: Vec<u32> = (0..n).map(|_| next() as u32).collect();
    ints.sort_unstable();
    let mut floats: Vec<f64> = (0..n)
        .map(|_| (next() % 100_000) as f64 / 7.0 - 5000.0)
        .collect();
    floats.sort_by(|a, b| a.total_cmp(b));
    let mut pairs: Vec<(u8, u32)> = (0..n).map(|i| ((next() % 16) as u8, i)).collect();
    pairs.sort_by_key(|p| p.0);
    let mut h = 0u32;
    for (i, v) in ints.iter().enumerate() {
        h = h.rotate_left(5) ^ v.wrapping_add(i as u32);
    }
    for f in &floats {
        h = h.wrapping_mul(16777619) ^ (*f as i32 as u32);
    }
    for p in &pairs {
        h = h.wrapping_add(p.1 * (p.0 as u32 + 1));
    }
    h
}

/// Formatting of integers, floats and debug output.
pub fn formatting(n: u32) -> u32 {
    let mut total = 0u32;
    for i in 0..n {
        let s = format!(
            "{i}:{:x}:{:.3}:{:?}",
            i * 2654435761u32.wrapping_mul(1),
            i as f64 / 3.0,
            (i, i % 7 == 0)
        );
        total = total.wrapping_mul(33) ^ s.bytes().fold(0u32, |a, b| a.wrapping_add(b as u32));
        total = total.wrapping_add(s.len() as u32);
    }
    total
}

/// 64-bit integer mixing (FNV-1a over the decimal digits, multiplications, divisions).
pub fn i64_mix(n: u32) -> i64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for i in 0..n as u64 {
        for b in format!("{}", i * 1_000_003).bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        h = h.rotate_left((i % 63) as u32) ^ (h / (i + 3)) ^ ((h as i64 % -7i64) as u64);
    }
    h as i64
}

/// A string in linear memory, for reading the memory buffer from Luau.
pub fn greeting(n: u32) -> String {
    format!(
        "hello from Rust, n = {n}, squared = {}",
        n as u64 * n as u64
    )
}

#[no_mangle]
pub extern "C" fn sample_words(n: u32) -> u32 {
    words(n)
}
#[no_mangle]
pub extern "C" fn sample_shapes(n: u32) -> f64 {
    shapes(n)
}
#[no_mangle]
pub extern "C" fn sample_f32(n: u32) -> f32 {
    f32_mix(n)
}
#[no_mangle]
pub extern "C" fn sample_sorting(n: u32, seed: u32) -> u32 {
    sorting(n, seed)
}
#[no_mangle]
pub extern "C" fn sample_formatting(n: u32) -> u32 {
    formatting(n)
}
#[no_mangle]
pub extern "C" fn sample_i64(n: u32) -> i64 {
    i64_mix(n)
}
/// Returns a pointer to the greeting; its length is `sample_greeting_len(n)`.
#[no_mangle]
pub extern "C" fn sample_greeting(n: u32) -> *const u8 {
    let s = greeting(n).into_boxed_str();
    Box::leak(s).as_ptr()
}
#[no_mangle]
pub extern "C" fn sample_greeting_len(n: u32) -> u32 {
    greeting(n).len() as u32
}

#[cfg(all(not(feature = "std"), target_arch = "wasm32"))]
mod no_std_support {
    use core::alloc::{GlobalAlloc, Layout};

    /// Bump allocator over memory.grow: enough for a sample that runs briefly.
    struct Bump;
    static mut NEXT: usize = 0;
    static mut END: usize = 0;

    unsafe impl GlobalAlloc for Bump {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            let start = (NEXT + l.align() - 1) & !(l.align() - 1);
            let end = start + l.size();
            if end > END {
                let pages = (end - END).div_ceil(65536).max(16);
                let old = core::arch::wasm32::memory_grow(0, pages);
                if old == usize::MAX {
                    return core::ptr::null_mut();
                }
                if END == 0 {
                    NEXT = old * 65536;
                    END = old * 65536;
                    return self.alloc(l);
                }
                END += pages * 65536;
            }
            NEXT = end;
            start as *mut u8
        }
        unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
    }

    #[global_allocator]
    static A: Bump = Bump;

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
        core::arch::wasm32::unreachable()
    }
}
