//! Kernels compared against the same algorithms hand-written in Luau (benches/kernels.luau).
#![no_std]

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

#[no_mangle]
pub extern "C" fn fib(n: i32) -> i32 {
    if n < 2 {
        n
    } else {
        fib(n - 1).wrapping_add(fib(n - 2))
    }
}

const N: usize = 16384;
static mut BUF: [u32; N] = [0; N];

/// i32 memory loop: fill, then `rounds` passes of a read-modify-write prefix mix.
#[no_mangle]
pub extern "C" fn memloop(rounds: i32) -> i32 {
    unsafe {
        let buf = &mut *core::ptr::addr_of_mut!(BUF);
        for (i, x) in buf.iter_mut().enumerate() {
            *x = i as u32;
        }
        let mut acc = 0u32;
        for _ in 0..rounds {
            for x in buf.iter_mut() {
                acc = acc.wrapping_add(*x) ^ (acc >> 3);
                *x = acc;
            }
        }
        acc as i32
    }
}

/// FNV-1a 64-bit over `len` bytes of a generated buffer, `rounds` times.
#[no_mangle]
pub extern "C" fn fnv(rounds: i32, len: i32) -> i64 {
    let mut data = [0u8; 4096];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i * 7 + 3) as u8;
    }
    let len = (len as usize).min(data.len());
    let mut h: u64 = 0;
    for r in 0..rounds {
        h = 0xcbf29ce484222325 ^ r as u64;
        for &b in &data[..len] {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h as i64
}

static mut SORTBUF: [i32; N] = [0; N];

/// Insertion-free sort: a hand-rolled heapsort over pseudo-random i32s; returns a checksum.
#[no_mangle]
pub extern "C" fn sort(n: i32, seed: i32) -> i32 {
    unsafe {
        let all = &mut *core::ptr::addr_of_mut!(SORTBUF);
        let a = &mut all[..(n as usize).min(N)];
        let mut s = seed as u32 | 1;
        for x in a.iter_mut() {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            *x = s as i32;
        }
        let len = a.len();
        let sift = |a: &mut [i32], mut root: usize, end: usize| loop {
            let mut child = 2 * root + 1;
            if child >= end {
                break;
            }
            if child + 1 < end && a[child] < a[child + 1] {
                child += 1;
            }
            if a[root] >= a[child] {
                break;
            }
            a.swap(root, child);
            root = child;
        };
        for start in (0..len / 2).rev() {
            sift(a, start, len);
        }
        for end in (1..len).rev() {
            a.swap(0, end);
            sift(a, 0, end);
        }
        let mut h = 0i32;
        for (i, x) in a.iter().enumerate() {
            h = h.wrapping_mul(31).wrapping_add(*x ^ i as i32);
        }
        h
    }
}
