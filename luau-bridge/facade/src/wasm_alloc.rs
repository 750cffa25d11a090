//! The allocator of the wasm build: power-of-two size classes with one free list each,
//! carved from `memory.grow`. Small and constant-time: the hot path of a change call
//! allocates little, and a freed block is reused by the next allocation of its class.
//! Memory is never given back to the host (wasm cannot shrink a memory).

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32::{memory_grow, memory_size};
use core::cell::UnsafeCell;
use core::ptr::null_mut;

const CLASSES: usize = 32;
const PAGE: usize = 65536;
/// The memory grows by at least its size divided by this (see `alloc`).
const GROWTH_DIVISOR: usize = 2;

struct Heap {
    /// Head of each class's free list (0 = empty); a free block's first word links on.
    free: [usize; CLASSES],
    next: usize,
    end: usize,
}

/// The global allocator.
pub struct SizeClasses(UnsafeCell<Heap>);

// SAFETY: a wasm32v1-none module has one thread.
unsafe impl Sync for SizeClasses {}

fn class(l: &Layout) -> usize {
    let size = l.size().max(l.align()).max(core::mem::size_of::<usize>());
    (usize::BITS - (size - 1).leading_zeros()) as usize
}

unsafe impl GlobalAlloc for SizeClasses {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let h = &mut *self.0.get();
        let c = class(&l);
        if c >= CLASSES {
            return null_mut();
        }
        let head = h.free[c];
        if head != 0 {
            h.free[c] = *(head as *const usize);
            return head as *mut u8;
        }
        if h.end == 0 {
            // Everything below the current memory size is data and stack.
            h.next = memory_size(0) * PAGE;
            h.end = h.next;
        }
        let size = 1usize << c;
        let align = l.align().max(8);
        let start = (h.next + align - 1) & !(align - 1);
        let Some(stop) = start.checked_add(size) else {
            return null_mut();
        };
        if stop > h.end {
            let need = (stop - h.end).div_ceil(PAGE);
            // In the transpiled core a memory cannot grow in place: `memory.grow` creates a
            // new buffer of the whole size (zeroed) and copies the old one into it. Growing
            // by at least half the memory's size each time keeps those copies to a constant
            // share of the bytes allocated (growing by what one allocation needs copied the
            // whole memory every few allocations: most of the routine batch's poll). Where
            // that much is refused (the memory's limit), the need alone is asked.
            let mut pages = need.max(memory_size(0) / GROWTH_DIVISOR);
            if memory_grow(0, pages) == usize::MAX {
                pages = need;
                if memory_grow(0, pages) == usize::MAX {
                    return null_mut();
                }
            }
            h.end += pages * PAGE;
        }
        h.next = stop;
        start as *mut u8
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        let grown = Layout::from_size_align_unchecked(new_size, l.align());
        if class(&grown) == class(&l) {
            return p;
        }
        let q = self.alloc(grown);
        if !q.is_null() {
            core::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
            self.dealloc(p, l);
        }
        q
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        let h = &mut *self.0.get();
        let c = class(&l);
        *(p as *mut usize) = h.free[c];
        h.free[c] = p as usize;
    }
}

#[global_allocator]
static ALLOC: SizeClasses = SizeClasses(UnsafeCell::new(Heap {
    free: [0; CLASSES],
    next: 0,
    end: 0,
}));

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // No message formatting: it would pull core::fmt into the module. A panic is a bug
    // in the core; the bridge sees the trap and discards the instance.
    core::arch::wasm32::unreachable()
}
