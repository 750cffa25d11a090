//! Confirmed fields at the ABI (luau-bridge/ABI.md, "Per frame"): `nsq_confirm_records`
//! stages the fields an answer confirms, as fixed-layout records in the scratch area named
//! by handles (many in one call, no string per field), and `nsq_ack` hands them to the
//! core's keyed ack (`Queue::ack_keyed`, which shares the merge rule with `Queue::ack`).

use super::{core, whole_in, ErrorCode, Facade, Res, MAX_EXACT};
use crate::records::{self, f64_at, u32_at};
use crate::SCRATCH_CAP;
use npc_sync::{AgentId, ConfirmedKey, Seq, Sym, Value};

/// Bytes of one confirmed-field record in the scratch area.
pub const CONFIRM_RECORD: usize = 40;

/// Where the call writes each record's outcome: 0 staged, else the code it was refused
/// with.
const STATUS_AT: usize = 20;

/// The common record, decoded with no error plumbing: a number, bool or clear, a whole
/// seq. Anything else (strings, a bad kind or seq) goes to [`Facade::confirm_record`],
/// which names what is wrong. The handles are the core's to check, at the ack
/// (`Queue::ack_keyed`).
fn plain_record(b: &[u8]) -> Option<ConfirmedKey> {
    let (agent, kind, x, seq) = (u32_at(b, 0), u32_at(b, 12), f64_at(b, 24), f64_at(b, 32));
    let value = match kind {
        0 => Value::Cleared,
        1 => Value::Number(x),
        2 => Value::Bool(x != 0.0),
        _ => return None,
    };
    if !whole_in(seq, 0.0, MAX_EXACT) {
        return None;
    }
    Some(ConfirmedKey {
        agent: AgentId::from_index(agent),
        block: Sym(u32_at(b, 4)),
        field: Sym(u32_at(b, 8)),
        value,
        seq: Seq(seq as u64),
    })
}

impl Facade {
    /// `nsq_confirm_records`: stages the `n` confirmed-field records at the scratch start
    /// for the next `nsq_ack`. A record the facade refuses (a bad value kind or text, a sym
    /// value never issued, a seq that is not a whole number) is skipped: the result is how
    /// many were, each record's outcome is written into it (0 staged, else the code), and
    /// the first refused one's message is left as the error. A count that does not fit the
    /// scratch area is an error and stages nothing. The names' handles are the core's to
    /// check, at the ack.
    pub fn confirm_records(&mut self, n: i32) -> i32 {
        if n < 0 || n as usize * CONFIRM_RECORD > SCRATCH_CAP {
            let e = self.facade_error(
                ErrorCode::BadArgument,
                "nsq_confirm_records: record count out of the scratch area",
            );
            return self.status(Err(e));
        }
        let mut refused = 0;
        let mut first_message = None;
        self.confirmed.reserve(n as usize);
        for i in 0..n as usize {
            let at = i * CONFIRM_RECORD;
            if let Some(c) = plain_record(&self.scratch[at..at + CONFIRM_RECORD]) {
                self.confirmed.push(c);
                records::set_u32(&mut self.scratch[..], at + STATUS_AT, 0);
                continue;
            }
            let code = match self.confirm_record(at) {
                Ok(c) => {
                    self.confirmed.push(c);
                    0
                }
                Err(e) => {
                    let code = -self.status(Err(e));
                    if refused == 0 {
                        first_message = Some(self.error.clone());
                    }
                    refused += 1;
                    code as u32
                }
            };
            records::set_u32(&mut self.scratch[..], at + STATUS_AT, code);
        }
        if let Some(m) = first_message {
            self.error = m;
        }
        refused
    }

    /// One record at `at` (ABI "Confirmed-field record") that [`plain_record`] does not
    /// take: a string value (kinds 3 and 4), or the error that refuses the record.
    fn confirm_record(&mut self, at: usize) -> Res<ConfirmedKey> {
        let b = &self.scratch[at..at + CONFIRM_RECORD];
        let (agent, block, field) = (u32_at(b, 0), u32_at(b, 4), u32_at(b, 8));
        let (kind, len) = (u32_at(b, 12), u32_at(b, 16));
        let (x, seq) = (f64_at(b, 24), f64_at(b, 32));
        // A text value (kind 3) starts `x` bytes into the scratch area (after the records).
        let text_at = if kind == 3 {
            if !whole_in(x, 0.0, SCRATCH_CAP as f64) {
                return Err(self.facade_error(
                    ErrorCode::BadArgument,
                    "confirmed text value: its offset must be a whole number inside the scratch area",
                ));
            }
            x as usize
        } else {
            0
        };
        let value = self.value_at(kind as i32, len as i32, x, text_at)?;
        if !whole_in(seq, 0.0, MAX_EXACT) {
            return Err(self.facade_error(
                ErrorCode::BadArgument,
                "confirmed seq must be a whole number of 0 or more",
            ));
        }
        Ok(ConfirmedKey {
            agent: AgentId::from_index(agent),
            block: Sym(block),
            field: Sym(field),
            value,
            seq: Seq(seq as u64),
        })
    }

    /// `nsq_ack`: the request succeeded, with the confirmed fields staged since the last
    /// ack (cleared by the call, whatever its result).
    pub fn ack(&mut self, request: f64) -> i32 {
        let mut confirmed = core::mem::take(&mut self.confirmed);
        let r = (|| {
            let id = self.request(request)?;
            self.q()?;
            self.watched(|q| q.ack_keyed(id, &confirmed))
                .expect("checked")
                .map_err(core)?;
            Ok(0)
        })();
        confirmed.clear();
        self.confirmed = confirmed;
        self.status(r)
    }
}
