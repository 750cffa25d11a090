//! Absorption at the ABI (luau-bridge/ABI.md, "Absorption"): the grant each `nsq_set`
//! reports in the header, and `nsq_absorb`, which takes the bridge's kept changes in. The
//! rule itself is the core's (`Queue::grant_absorb`, `Queue::absorb`).

use super::{core, whole_in, ErrorCode, Facade, Res, MAX_EXACT, PRIORITIES};
use crate::records::{self, at, f64_at, u32_at};
use crate::SCRATCH_CAP;
use alloc::vec::Vec;
use npc_sync::{
    AbsorbTarget, Absorbable, Absorbed, GrantChange, KeptValue, Priority, Queue, Seq, Slot,
};

/// Bytes of one kept-change record in the scratch area.
pub const ABSORB_RECORD: usize = 56;
/// Bytes of one grant record (a slot whose grant a poll, flush, ack, failure or atomic
/// commit may have changed, with its grant now).
pub const GRANT_RECORD: usize = 24;

/// Added to a grant's code when the field has no pending unit: its kept changes, taken
/// in, start one ([`Absorbable::starts_unit`]).
const STARTS_UNIT: u32 = 4;

/// A grant as the ABI writes it: 0 none, else 1 + the highest priority code a kept change
/// may have, plus [`STARTS_UNIT`] when the field has no pending unit; the target's kind (0
/// absent, 1 number, 2 bool, 3 a string or not known) and its number (a bool as 0 / 1).
/// The one owner of that encoding (header and records).
fn grant_code(grant: Option<Absorbable>) -> (u32, u32, f64) {
    let Some(g) = grant else {
        return (0, 0, 0.0);
    };
    let max = match g.max_priority {
        Priority::Low => 1,
        _ => 2,
    } + if g.starts_unit { STARTS_UNIT } else { 0 };
    let (kind, x) = match g.target {
        AbsorbTarget::Absent => (0, 0.0),
        AbsorbTarget::Number(x) => (1, x),
        AbsorbTarget::Bool(b) => (2, if b { 1.0 } else { 0.0 }),
        AbsorbTarget::Other => (3, 0.0),
    };
    (max, kind, x)
}

impl Facade {
    /// Writes into the header whether `slot`'s next changes may be kept by the bridge
    /// (after a change call of that slot; `ok` false: the call failed or was staged).
    pub(super) fn report_grant(&mut self, slot: i32, ok: bool) {
        let grant = match (ok, self.queue.as_mut()) {
            (true, Some(q)) => q.grant_absorb(Slot::from_index(slot as u32)),
            _ => None,
        };
        let (max, kind, x) = grant_code(grant);
        let h = &mut self.header[..];
        records::set_u32(h, at::ABSORB, max);
        if max != 0 {
            records::set_u32(h, at::ABSORB + 4, kind);
            records::set_f64(h, at::ABSORB + 8, x);
        }
    }

    /// Runs a core call (poll, flush, ack, failure, atomic commit) watched for the grants
    /// it may change ([`Queue::watch_grants`]) and writes those slots' grants as grant
    /// records, their number and address in the header (a failing call lists none).
    /// `None`: the queue is not initialised.
    pub(super) fn watched<R>(&mut self, call: impl FnOnce(&mut Queue) -> R) -> Option<R> {
        let q = self.queue.as_mut()?;
        let (r, changed) = q.watch_grants(call);
        write_grants(&changed, &mut self.grants);
        let h = &mut self.header[..];
        records::set_u32(h, at::GRANTS, changed.len() as u32);
        records::set_u32(h, at::GRANTS + 4, records::addr(&self.grants));
        Some(r)
    }

    /// `nsq_absorb`: takes in `n` kept-change records from the scratch area, moves the
    /// core's counter to `next_seq` and observes `now`.
    pub fn absorb(&mut self, n: i32, next_seq: f64, now: f64) -> i32 {
        if n == 0 {
            return self.absorb_none(next_seq, now);
        }
        self.absorb_records(n, next_seq, now)
    }

    /// `nsq_absorb` with no record (the bridge's `Absorb.sync`: most calls): the counter and
    /// the time, in a function as small as that (in Luau a call costs by the size of the
    /// function it enters). A bad argument or no queue goes the whole way, which names it.
    #[inline(never)]
    fn absorb_none(&mut self, next_seq: f64, now: f64) -> i32 {
        if let (true, Some(q)) = (whole_in(next_seq, 1.0, MAX_EXACT), self.queue.as_mut()) {
            return match q.absorb(now, next_seq as u64, &[]) {
                Ok(()) => 0,
                Err(e) => self.status(Err(core(e))),
            };
        }
        self.absorb_records(0, next_seq, now)
    }

    /// `nsq_absorb`: the records parsed into [`Absorbed`] (every argument checked first),
    /// then taken in by the core.
    #[inline(never)]
    fn absorb_records(&mut self, n: i32, next_seq: f64, now: f64) -> i32 {
        // The list is kept from call to call (its records are `Copy`: clearing is free).
        let mut recs = core::mem::take(&mut self.absorbed);
        recs.clear();
        let r = (|| {
            if n < 0 || n as usize * ABSORB_RECORD > SCRATCH_CAP {
                return Err(self.facade_error(
                    ErrorCode::BadArgument,
                    "nsq_absorb: record count out of the scratch area",
                ));
            }
            if !whole_in(next_seq, 1.0, MAX_EXACT) {
                return Err(self.facade_error(
                    ErrorCode::BadArgument,
                    "nsq_absorb: next seq must be a whole number of 1 or more",
                ));
            }
            // One slice of whole records: no bounds check per record.
            for b in self.scratch[..n as usize * ABSORB_RECORD].chunks_exact(ABSORB_RECORD) {
                let (kind, x, seq) = (u32_at(b, 4), f64_at(b, 8), f64_at(b, 16));
                let value = match kind {
                    1 => KeptValue::Number(x),
                    2 => KeptValue::Bool(x != 0.0),
                    _ => {
                        return Err(self.facade_error(
                            ErrorCode::BadArgument,
                            "nsq_absorb: a record's value kind must be 1 (number) or 2 (bool)",
                        ))
                    }
                };
                let (prio, first) = (u32_at(b, 44), f64_at(b, 48));
                if !whole_in(seq, 1.0, MAX_EXACT) || !whole_in(first, 1.0, MAX_EXACT) {
                    return Err(self.facade_error(
                        ErrorCode::BadArgument,
                        "nsq_absorb: a record's seq and first seq must be whole numbers of 1 or more",
                    ));
                }
                let Some(&priority) = PRIORITIES.get(prio as usize) else {
                    return Err(self.facade_error(
                        ErrorCode::BadArgument,
                        "nsq_absorb: a record's priority must be 0 to 3",
                    ));
                };
                recs.push(Absorbed {
                    slot: Slot::from_index(u32_at(b, 0)),
                    value,
                    seq: Seq(seq as u64),
                    first_seq: Seq(first as u64),
                    priority,
                    first_at: f64_at(b, 24),
                    last_at: f64_at(b, 32),
                    count: u32_at(b, 40),
                });
            }
            self.q()?
                .absorb(now, next_seq as u64, &recs)
                .map_err(core)?;
            Ok(0)
        })();
        self.absorbed = recs;
        self.status(r)
    }

    /// `nsq_next_seq`: the next sequence number the core issues.
    pub fn next_seq(&mut self) -> f64 {
        let r: Res<f64> = (|| Ok(self.q()?.next_seq().0 as f64))();
        self.seq_result(r)
    }

    /// `nsq_next_poll`: the earliest time a poll can do anything (0: the next one does).
    pub fn next_poll(&mut self) -> f64 {
        let r: Res<f64> = (|| Ok(self.q()?.next_poll()))();
        self.seq_result(r)
    }
}

/// Grant records (ABI.md, "Grant record").
fn write_grants(changed: &[GrantChange], o: &mut Vec<u8>) {
    o.clear();
    for c in changed {
        let (max, kind, x) = grant_code(c.grant);
        // The grant at 8 to 23 is laid out as the header's at 64 to 79.
        records::put_u32(o, c.slot.index());
        records::put_u32(o, 0);
        records::put_u32(o, max);
        records::put_u32(o, kind);
        records::put_f64(o, x);
    }
    debug_assert_eq!(o.len(), changed.len() * GRANT_RECORD);
}
