//! The analysis walk: what the lowering must know about a function before emitting it, read
//! from the wasm alone (the validator gives operand types and stack heights). It follows the
//! translator's notion of reachable code: an operator the translator skips (dead code) teaches
//! nothing.
use super::{block_sig, Kind};
use crate::error::Result;
use crate::module::Module;
use std::collections::BTreeSet;
use wasmparser::{FuncValidator, Operator, ValType, ValidatorResources};

/// What the analysis walk learns about a function.
#[derive(Default, Clone)]
pub(in crate::lower) struct Facts {
    /// Constructs (by id: the order in which blocks, loops and ifs open, dead ones included)
    /// branched to.
    pub targeted: BTreeSet<u32>,
    /// The highest operand stack position (0-based) reachable code uses.
    pub max_height: usize,
    /// Stack positions that hold an i64 somewhere (they need a high-half variable).
    pub hi_slots: BTreeSet<usize>,
    /// How often each local is read or written.
    pub local_uses: Vec<u32>,
    /// The body reads the memory buffer `M`: it is kept in a local (reloaded after calls and
    /// `memory.grow`), saving an upvalue read per access.
    pub uses_mem: bool,
    /// Locals set in the function's first straight-line code before any read: they need no
    /// zero initialisation.
    pub set_first: BTreeSet<u32>,
    /// Blocks (no params, no results) branched to by `br_if`s at their own top level.
    brif_top: BTreeSet<u32>,
    /// Blocks branched to any other way, or by more than one such `br_if`.
    not_guarded: BTreeSet<u32>,
    /// Loops (no params, no results) whose body ends with a `br_if 0`.
    tail_brif: BTreeSet<u32>,
    /// Loops branched to any other way.
    not_tail: BTreeSet<u32>,
}

impl Facts {
    /// Block `id`'s only branch is one `br_if` at its top level (a guard can replace it).
    pub fn guardable(&self, id: u32) -> bool {
        !self.not_guarded.contains(&id)
    }

    /// Loop `id`'s only branch is the `br_if 0` ending its body (`repeat … until`).
    pub fn tail_loop(&self, id: u32) -> bool {
        self.tail_brif.contains(&id) && !self.not_tail.contains(&id)
    }
}

/// A construct open during the walk.
struct Frame {
    kind: Kind,
    id: u32,
    /// Values a branch to it carries.
    arity: usize,
    /// The rest of the current arm is dead.
    unreachable: bool,
    /// Some branch reaches its end.
    end_reachable: bool,
    else_seen: bool,
}

/// Walks function body `def` of `m`.
pub(in crate::lower) fn analyse(m: &Module<'_>, def: usize) -> Result<Facts> {
    let body = &m.bodies[def];
    let mut v = m.checks[def].validator();
    v.read_locals(&mut body.get_binary_reader())?;
    let nlocals = v.len_locals() as usize;
    let mut w = Walk {
        m,
        facts: Facts {
            local_uses: vec![0; nlocals],
            ..Facts::default()
        },
        frames: vec![Frame {
            kind: Kind::Func,
            id: u32::MAX,
            arity: 0,
            unreachable: false,
            end_reachable: true,
            else_seen: false,
        }],
        next_id: 0,
        dead: 0,
        entry: true,
        entry_reads: BTreeSet::new(),
        tail_candidate: None,
    };
    let mut reader = body.get_operators_reader()?;
    while !reader.eof() {
        let offset = reader.original_position();
        let op = reader.read()?;
        let live = w.step(&op)?;
        if live && matches!(op, Operator::CallIndirect { .. }) {
            // The index is evaluated into the slot above the operands (`call_indirect` in
            // op/call.rs), at the height before the call.
            let h = v.operand_stack_height() as usize;
            w.facts.max_height = w.facts.max_height.max(h);
        }
        v.op(offset, &op)?;
        if live {
            w.note_stack(&v);
        }
    }
    Ok(w.facts)
}

struct Walk<'m, 'a> {
    m: &'m Module<'a>,
    facts: Facts,
    frames: Vec<Frame>,
    next_id: u32,
    /// Depth of constructs opened inside dead code.
    dead: u32,
    /// Still in the straight-line code at the start of the body.
    entry: bool,
    /// Locals read so far in that code.
    entry_reads: BTreeSet<u32>,
    /// A loop whose `br_if 0` was the last operator: it qualifies if the next is its `end`.
    tail_candidate: Option<u32>,
}

impl Walk<'_, '_> {
    /// Takes in one operator; true when the translator lowers it (reachable code, or the
    /// `else`/`end` closing it).
    fn step(&mut self, op: &Operator<'_>) -> Result<bool> {
        use Operator as O;
        if let Some(id) = self.tail_candidate.take() {
            if !matches!(op, O::End) {
                self.facts.not_tail.insert(id);
            }
        }
        if is_control(op) {
            self.entry = false;
        }
        if self.top().unreachable {
            match op {
                O::Block { .. } | O::Loop { .. } | O::If { .. } => {
                    self.dead += 1;
                    self.next_id += 1;
                    return Ok(false);
                }
                O::Else | O::End if self.dead == 0 => {}
                O::End => {
                    self.dead -= 1;
                    return Ok(false);
                }
                _ => return Ok(false),
            }
        }
        match op {
            O::Block { blockty } => self.open(Kind::Block, *blockty),
            O::Loop { blockty } => self.open(Kind::Loop, *blockty),
            O::If { blockty } => self.open(Kind::If, *blockty),
            O::Else => {
                let f = self.frames.last_mut().expect("validated");
                f.else_seen = true;
                f.end_reachable |= !f.unreachable;
                f.unreachable = false;
            }
            O::End => self.close(),
            O::Br { relative_depth } => {
                self.branch(*relative_depth, false);
                self.top_mut().unreachable = true;
            }
            O::BrIf { relative_depth } => self.branch(*relative_depth, true),
            O::BrTable { targets } => {
                for t in targets.targets() {
                    self.branch(t?, false);
                }
                self.branch(targets.default(), false);
                self.top_mut().unreachable = true;
            }
            O::Return | O::Unreachable => self.top_mut().unreachable = true,
            O::LocalGet { local_index } => {
                if self.entry {
                    self.entry_reads.insert(*local_index);
                }
                self.facts.local_uses[*local_index as usize] += 1;
            }
            O::LocalSet { local_index } | O::LocalTee { local_index } => {
                if self.entry && !self.entry_reads.contains(local_index) {
                    self.facts.set_first.insert(*local_index);
                }
                self.facts.local_uses[*local_index as usize] += 1;
            }
            _ => self.facts.uses_mem |= super::reads_memory(op),
        }
        Ok(true)
    }

    fn top(&self) -> &Frame {
        self.frames.last().expect("the function's frame")
    }

    fn top_mut(&mut self) -> &mut Frame {
        self.frames.last_mut().expect("the function's frame")
    }

    fn open(&mut self, kind: Kind, bt: wasmparser::BlockType) {
        let (params, results) = block_sig(self.m, bt);
        self.frames.push(Frame {
            kind,
            id: self.next_id,
            arity: if kind == Kind::Loop {
                params.len()
            } else {
                results.len()
            },
            unreachable: false,
            end_reachable: false,
            else_seen: false,
        });
        self.next_id += 1;
    }

    fn close(&mut self) {
        let f = self.frames.pop().expect("validated");
        let reachable = f.end_reachable || !f.unreachable || (f.kind == Kind::If && !f.else_seen);
        if let Some(p) = self.frames.last_mut() {
            p.unreachable |= !reachable;
        }
    }

    /// A branch to the construct `depth` levels out (`conditional` for `br_if`).
    fn branch(&mut self, depth: u32, conditional: bool) {
        let top = self.frames.len() - 1;
        let ti = top - depth as usize;
        let (kind, id, arity) = {
            let f = &self.frames[ti];
            (f.kind, f.id, f.arity)
        };
        if kind == Kind::Func {
            return;
        }
        self.facts.targeted.insert(id);
        let at_top = conditional && ti == top;
        match kind {
            Kind::Loop => {
                if at_top && self.facts.tail_brif.insert(id) {
                    self.tail_candidate = Some(id);
                } else {
                    self.facts.not_tail.insert(id);
                }
            }
            _ => {
                if kind == Kind::Block && !(at_top && arity == 0 && self.facts.brif_top.insert(id))
                {
                    self.facts.not_guarded.insert(id);
                }
                self.frames[ti].end_reachable = true;
            }
        }
    }

    /// Records the operand stack after a lowered operator: its height and where i64s sit.
    fn note_stack(&mut self, v: &FuncValidator<ValidatorResources>) {
        let h = v.operand_stack_height() as usize;
        self.facts.max_height = self.facts.max_height.max(h.saturating_sub(1));
        for k in 0..h {
            if v.get_operand_type(h - 1 - k) == Some(Some(ValType::I64)) {
                self.facts.hi_slots.insert(k);
            }
        }
    }
}

/// Operators after which the body is no longer in its first straight-line code.
fn is_control(op: &Operator<'_>) -> bool {
    use Operator as O;
    matches!(
        op,
        O::Block { .. }
            | O::Loop { .. }
            | O::If { .. }
            | O::Else
            | O::End
            | O::Br { .. }
            | O::BrIf { .. }
            | O::BrTable { .. }
            | O::Return
            | O::Unreachable
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{
        BlockType, CodeSection, Function, FunctionSection, Instruction as I, MemorySection,
        MemoryType, Module as Enc, TypeSection, ValType as V,
    };

    /// Facts of the one function `(param i32) (result i64)` with locals `locals` and `body`.
    fn facts(locals: &[V], body: &[I<'_>]) -> Facts {
        let mut types = TypeSection::new();
        types.ty().function([V::I32], [V::I64]);
        let mut funcs = FunctionSection::new();
        funcs.function(0);
        let mut mems = MemorySection::new();
        mems.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        let mut f = Function::new(locals.iter().map(|t| (1, *t)));
        for i in body {
            f.instruction(i);
        }
        let mut code = CodeSection::new();
        code.function(&f);
        let mut m = Enc::new();
        m.section(&types)
            .section(&funcs)
            .section(&mems)
            .section(&code);
        let wasm = m.finish();
        let module = crate::module::parse(&wasm, crate::module::default_features()).expect("valid");
        analyse(&module, 0).expect("analysed")
    }

    #[test]
    fn a_block_left_by_one_top_level_br_if_is_guardable_and_a_tail_loop_found() {
        let f = facts(
            &[V::I32],
            &[
                I::Block(BlockType::Empty), // 0: only `br_if 0` at its top level
                I::LocalGet(0),
                I::BrIf(0),
                I::I32Const(1),
                I::LocalSet(1),
                I::End,
                I::Block(BlockType::Empty), // 1: branched to from a nested block
                I::Block(BlockType::Empty), // 2: never branched to
                I::LocalGet(0),
                I::BrIf(1),
                I::End,
                I::End,
                I::Loop(BlockType::Empty), // 3: its body ends with its only branch
                I::LocalGet(1),
                I::BrIf(0),
                I::End,
                I::I64Const(7),
                I::End,
            ],
        );
        assert_eq!(f.targeted, [0, 1, 3].into());
        assert!(f.guardable(0));
        assert!(!f.guardable(1));
        assert!(f.tail_loop(3));
        assert!(!f.uses_mem);
        // Local 1 is set at the start of block 0, but the entry's straight-line code ended
        // at the `block`.
        assert!(f.set_first.is_empty());
        assert_eq!(f.local_uses, vec![2, 2]);
        assert_eq!(f.max_height, 0);
        assert_eq!(f.hi_slots, [0].into());
    }

    #[test]
    fn dead_code_teaches_nothing() {
        let f = facts(
            &[V::I32],
            &[
                I::I32Const(3),
                I::LocalSet(1), // set before any read: no zero initialisation
                I::LocalGet(0),
                I::I32Load(wasm_encoder::MemArg {
                    offset: 0,
                    align: 2,
                    target: wasm_encoder::MemArgTarget::Memory(0),
                    ordering: None,
                }),
                I::Drop,
                I::I64Const(1),
                I::Return,
                I::Block(BlockType::Empty), // 0, dead
                I::Br(0),
                I::End,
                I::Block(BlockType::Empty), // 1, dead
                I::End,
                I::I64Const(2),
                I::End,
            ],
        );
        assert!(f.targeted.is_empty());
        assert!(f.uses_mem);
        assert_eq!(f.set_first, [1].into());
        assert_eq!(f.local_uses, vec![1, 1]);
    }

    #[test]
    fn a_loop_with_another_branch_is_no_tail_loop() {
        let f = facts(
            &[V::I32],
            &[
                I::Loop(BlockType::Empty), // 0
                I::LocalGet(0),
                I::BrIf(0),
                I::LocalGet(0),
                I::BrIf(0), // a second branch to it
                I::End,
                I::I64Const(0),
                I::End,
            ],
        );
        assert_eq!(f.targeted, [0].into());
        assert!(!f.tail_loop(0));
    }
}
