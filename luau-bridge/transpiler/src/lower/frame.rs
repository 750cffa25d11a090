//! Control frames: one per open block, loop, if and the function itself.
use super::Val;
use wasmparser::ValType;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    Block,
    Loop,
    If,
    Func,
}

#[derive(Debug)]
pub(super) struct Frame {
    pub(super) kind: Kind,
    pub(super) id: u32,
    pub(super) base: usize,
    pub(super) params: Vec<ValType>,
    pub(super) results: Vec<ValType>,
    /// Emitted as a Luau loop construct, so `break`/`continue` reach it.
    pub(super) luau_loop: bool,
    /// Lowered without a Luau construct (to bound nesting): its end is a resume point that
    /// code skipped by a pending `B` reaches through `if B == nil then` guards.
    pub(super) flat: bool,
    /// Guards opened in the current arm of this construct.
    pub(super) guards: usize,
    /// A branch setting `B` to a target outside this construct leaves through its end.
    pub(super) pending_out: bool,
    /// Some branch set `B` to this construct's id.
    pub(super) b_target: bool,
    pub(super) unreachable: bool,
    /// Whether the end of this construct is reachable from inside (fallthrough or branch).
    pub(super) end_reachable: bool,
    pub(super) else_seen: bool,
    /// Stack contents (the params) to restore at `else`.
    pub(super) if_params: Vec<Val>,
    pub(super) indent_at_open: usize,
    /// A block whose only branch is one `br_if` at its top level: lowered without a Luau
    /// construct, the rest of the block under `if not cond then`.
    pub(super) guarded: bool,
    /// A loop whose only branch is the `br_if 0` ending its body: `repeat … until not c`.
    /// `tail_cond` holds `c` once that `br_if` is lowered.
    pub(super) tail_loop: bool,
    pub(super) tail_cond: Option<String>,
}
