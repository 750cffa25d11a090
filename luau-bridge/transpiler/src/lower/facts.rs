//! What the first (throwaway) run of the lowering learns about a function, used by the
//! second run.
use std::collections::BTreeSet;

/// What pass 1 learned about a function, used by pass 2.
#[derive(Default, Clone)]
pub(super) struct Facts {
    pub(super) targeted: BTreeSet<u32>,
    pub(super) max_height: usize,
    pub(super) hi_slots: BTreeSet<usize>,
    pub(super) local_uses: Vec<u32>,
    pub(super) uses_b: bool,
    pub(super) uses_r: bool,
    /// The body reads the memory buffer `M`: pass 2 keeps it in a local (reloaded after
    /// calls and `memory.grow`), saving an upvalue read per access.
    pub(super) uses_mem: bool,
    /// Locals set in the function's first straight-line code before any read: they need
    /// no zero initialisation.
    pub(super) set_first: BTreeSet<u32>,
    /// Blocks (no params, no results) branched to by `br_if`s at their own top level.
    pub(super) brif_top: BTreeSet<u32>,
    /// Blocks branched to any other way, or by more than one such `br_if`.
    pub(super) not_guarded: BTreeSet<u32>,
    /// Loops (no params, no results) whose body ends with a `br_if 0`.
    pub(super) tail_brif: BTreeSet<u32>,
    /// Loops branched to any other way.
    pub(super) not_tail: BTreeSet<u32>,
}
