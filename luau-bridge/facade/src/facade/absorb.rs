//! Absorption at the ABI (luau-bridge/ABI.md, "Absorption"): the grant each `nsq_set`
//! reports in the header, and `nsq_absorb`, which takes the bridge's kept changes in. The
//! rule itself is the core's (`Queue::grant_absorb`, `Queue::absorb`).

use super::{core, ErrorCode, Facade, Res, MAX_EXACT};
use crate::records::{self, at, f64_at, u32_at};
use crate::SCRATCH_CAP;
use alloc::vec::Vec;
use npc_sync::{AbsorbTarget, Absorbed, Priority, Seq, Slot, Value};

/// Bytes of one kept-change record in the scratch area.
pub const ABSORB_RECORD: usize = 48;

impl Facade {
    /// Writes into the header whether `slot`'s next changes may be kept by the bridge
    /// (after a change call of that slot; `ok` false: the call failed or was staged).
    pub(super) fn report_grant(&mut self, slot: i32, ok: bool) {
        let grant = match (ok, self.queue.as_mut()) {
            (true, Some(q)) => q.grant_absorb(Slot::from_index(slot as u32)),
            _ => None,
        };
        let h = &mut self.header[..];
        let Some(g) = grant else {
            records::set_u32(h, at::ABSORB, 0);
            return;
        };
        let max = match g.max_priority {
            Priority::Low => 1,
            _ => 2,
        };
        let (kind, x) = match g.target {
            AbsorbTarget::Absent => (0, 0.0),
            AbsorbTarget::Number(x) => (1, x),
            AbsorbTarget::Bool(b) => (2, if b { 1.0 } else { 0.0 }),
            AbsorbTarget::Other => (3, 0.0),
        };
        records::set_u32(h, at::ABSORB, max);
        records::set_u32(h, at::ABSORB + 4, kind);
        records::set_f64(h, at::ABSORB + 8, x);
    }

    /// `nsq_absorb`: takes in `n` kept-change records from the scratch area, moves the
    /// core's counter to `next_seq` and observes `now`.
    pub fn absorb(&mut self, n: i32, next_seq: f64, now: f64) -> i32 {
        let r = (|| {
            if n < 0 || n as usize * ABSORB_RECORD > SCRATCH_CAP {
                return Err(self.facade_error(
                    ErrorCode::BadArgument,
                    "nsq_absorb: record count out of the scratch area",
                ));
            }
            if !super::whole_in(next_seq, 1.0, MAX_EXACT) {
                return Err(self.facade_error(
                    ErrorCode::BadArgument,
                    "nsq_absorb: next seq must be a whole number of 1 or more",
                ));
            }
            let mut recs = Vec::with_capacity(n as usize);
            for i in 0..n as usize {
                let b = &self.scratch[i * ABSORB_RECORD..(i + 1) * ABSORB_RECORD];
                let (kind, x, seq) = (u32_at(b, 4), f64_at(b, 8), f64_at(b, 16));
                let value = match kind {
                    1 => Value::Number(x),
                    2 => Value::Bool(x != 0.0),
                    _ => {
                        return Err(self.facade_error(
                            ErrorCode::BadArgument,
                            "nsq_absorb: a record's value kind must be 1 (number) or 2 (bool)",
                        ))
                    }
                };
                if !super::whole_in(seq, 1.0, MAX_EXACT) {
                    return Err(self.facade_error(
                        ErrorCode::BadArgument,
                        "nsq_absorb: a record's seq must be a whole number of 1 or more",
                    ));
                }
                recs.push(Absorbed {
                    slot: Slot::from_index(u32_at(b, 0)),
                    value,
                    seq: Seq(seq as u64),
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
