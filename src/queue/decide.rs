//! On-demand freshness before an NPC's LLM decision.

use crate::error::Error;
use crate::ids::AgentId;
use crate::queue::Queue;

/// The answer to [`Queue::decide`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// Every change the backend does not have yet is younger than the threshold: proceed.
    /// `staleness` (seconds) is the age of the oldest such change (0 when it has them all).
    Fresh {
        /// Seconds.
        staleness: f64,
    },
    /// The agent's pending changes go out in an urgent request at the next `poll`; ask
    /// again once it is acknowledged (the bridges offer a call that waits with a timeout).
    Syncing {
        /// Age of the oldest change the backend does not have yet.
        staleness: f64,
        /// The threshold in force (1 s in combat, 15 s otherwise by default).
        threshold: f64,
    },
}

impl Queue {
    /// Asks whether an agent's LLM decision may proceed now on what the backend holds.
    ///
    /// A decision proceeds only when fresh; its staleness is recorded, so "how stale was
    /// the data when the LLM decided" is measured, not hoped.
    pub fn decide(&mut self, agent: AgentId, now: f64) -> Result<Decision, Error> {
        self.check_time("now", now)?;
        let a = self.check_agent(agent)?;
        let combat = a.in_combat(now);
        let threshold = if combat {
            self.cfg.combat_freshness_s
        } else {
            self.cfg.freshness_s
        };
        let staleness = match a.oldest_undelivered() {
            Some(t) if now > t => now - t,
            _ => 0.0,
        };
        self.observe_time(now);
        if staleness <= threshold {
            self.rec.m.decisions_fresh += 1;
            self.rec.record_staleness(staleness, combat);
            self.agent_mut(agent).sync_requested = false;
            return Ok(Decision::Fresh { staleness });
        }
        // A sync already emitted and waiting for its ack is the same sync: asking again
        // while waiting (the bridges' wait call does) must not count another one.
        let in_flight = self.in_flight.values().any(|r| r.synced.contains(&agent));
        let a = self.agent_mut(agent);
        if !a.sync_requested {
            a.sync_requested = true;
            if !in_flight {
                self.rec.m.decisions_synced += 1;
            }
        }
        self.syncing.insert(agent);
        match self.urgent_wake(now, agent) {
            Some(at) => self.wake_by(at),
            None => self.dirty = true,
        }
        Ok(Decision::Syncing {
            staleness,
            threshold,
        })
    }

    /// Whether the agent's data is fresh enough for a decision now, without asking for a
    /// sync and without recording anything.
    pub fn is_fresh(&self, agent: AgentId, now: f64) -> Result<bool, Error> {
        let a = self.check_agent(agent)?;
        let threshold = if a.in_combat(now) {
            self.cfg.combat_freshness_s
        } else {
            self.cfg.freshness_s
        };
        Ok(match a.oldest_undelivered() {
            Some(t) => now - t <= threshold,
            None => true,
        })
    }
}
