//! Validation of calls: every check happens before any mutation, so bad input never
//! corrupts state.

use super::state::AgentState;
use super::{Change, Queue};
use crate::error::Error;
use crate::ids::{AgentId, ChangeId};
use crate::symbols::{Limits, Symbols};
use crate::value::{json_string_bytes, Value};
use alloc::format;
use alloc::string::String;

/// Whether `x` is finite, as one float operation: `is_finite` compiles to 64-bit integer
/// work on the bits, which costs far more in Luau (the generated core) than a subtraction.
/// The one owner of this shortcut for the hot checks (a change, a time, a kept value).
#[inline(always)]
#[allow(clippy::eq_op)]
pub(crate) fn finite(x: f64) -> bool {
    // NaN - NaN and inf - inf are NaN; a finite x - x is exactly 0.
    x - x == 0.0
}

impl Queue {
    pub(crate) fn check_time(&self, what: &'static str, now: f64) -> Result<(), Error> {
        if !finite(now) || now < 0.0 {
            return Err(Error::BadTime { what, value: now });
        }
        if now < self.latest_now {
            return Err(Error::TimeWentBackwards {
                now,
                latest: self.latest_now,
            });
        }
        Ok(())
    }

    pub(crate) fn observe_time(&mut self, now: f64) {
        if now > self.latest_now {
            self.latest_now = now;
        }
    }

    pub(crate) fn check_agent(&self, agent: AgentId) -> Result<&AgentState, Error> {
        match self.agents.get(agent.0 as usize) {
            None => Err(Error::UnknownAgent { index: agent.0 }),
            Some(None) => Err(Error::AgentRemoved {
                agent: String::from(self.agent_name(agent).unwrap_or("?")),
            }),
            Some(Some(a)) => Ok(a),
        }
    }

    pub(crate) fn check_change(&self, c: &Change<'_>) -> Result<(), Error> {
        self.check_agent(c.agent)?;
        Symbols::check_name("block label", c.block)?;
        Symbols::check_name("field name", c.field)?;
        self.check_value(c.agent, c.block, c.field, &c.value)?;
        for d in &c.depends_on {
            self.check_dependency(*d)?;
        }
        Ok(())
    }

    /// A value may be stored: numbers finite, strings within the limit.
    pub(crate) fn check_value(
        &self,
        agent: AgentId,
        block: &str,
        field: &str,
        value: &Value,
    ) -> Result<(), Error> {
        match value {
            Value::Number(n) if !n.is_finite() => {
                return Err(Error::BadNumber {
                    agent: String::from(self.agent_name(agent).unwrap_or("?")),
                    field: format!("{block}.{field}"),
                    value: *n,
                })
            }
            // The limit counts the value as the request body carries it (JSON-escaped),
            // so that one change of maximal size always fits the body cap.
            Value::Str(s) if json_string_bytes(s) > Limits::VALUE_BYTES => {
                return Err(Error::BadString {
                    what: "string value",
                    len: s.len(),
                    reason: "longer than the 16 KiB limit once JSON-escaped (control characters take 6 bytes, quotes and backslashes 2)",
                })
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn check_dependency(&self, d: ChangeId) -> Result<(), Error> {
        if d.seq == 0 || d.seq >= self.next_seq || d.agent.0 as usize >= self.agents.len() {
            return Err(Error::UnknownChange { seq: d.seq });
        }
        if self.agents[d.agent.0 as usize].is_none() {
            return Err(Error::DependencyRemoved {
                seq: d.seq,
                agent: String::from(self.agent_name(d.agent).unwrap_or("?")),
            });
        }
        Ok(())
    }
}
