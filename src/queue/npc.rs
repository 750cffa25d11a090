//! The NPC rules: health thresholds, `status.state` and combat mode, group joins and
//! leaves, tool results. Each becomes a change on the generic path (`apply.rs`).

use super::letta::{self};
use super::state::FieldKey;
use super::{Change, Priority, Queue};
use crate::error::Error;
use crate::ids::{AgentId, ChangeId};
use crate::names;
use crate::symbols::Symbols;
use crate::value::Value;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

impl Queue {
    /// Sets `status.location` (normal priority).
    pub fn set_location(
        &mut self,
        now: f64,
        agent: AgentId,
        location: &str,
    ) -> Result<ChangeId, Error> {
        self.set(
            now,
            Change::new(agent, names::STATUS, names::LOCATION, Value::str(location)),
        )
    }

    /// Sets `status.description` (normal priority).
    pub fn set_description(
        &mut self,
        now: f64,
        agent: AgentId,
        text: &str,
    ) -> Result<ChangeId, Error> {
        self.set(
            now,
            Change::new(agent, names::STATUS, names::DESCRIPTION, Value::str(text)),
        )
    }

    /// Sets `status.health`. The change's size against what the backend has (or will have
    /// once in-flight sends land) picks the priority: a drop of 20 points or more is
    /// critical and enters combat mode, a drop or a heal of 10 points or more is high
    /// (a heal is never critical), less is kept for the next routine batch.
    pub fn set_health(&mut self, now: f64, agent: AgentId, health: f64) -> Result<ChangeId, Error> {
        if !health.is_finite() || health < 0.0 {
            return Err(Error::BadNumber {
                agent: String::from(self.agent_name(agent).unwrap_or("?")),
                field: String::from("status.health"),
                value: health,
            });
        }
        self.check_time("now", now)?;
        self.check_agent(agent)?;
        // The field by its symbols once they are interned: no name is looked up by its
        // text per call (what costs in Luau).
        let known = self.symbols.known();
        let reference = known.status.zip(known.health).and_then(|(block, field)| {
            self.health_reference(FieldKey {
                agent,
                block,
                field,
            })
        });
        let priority = match reference {
            None => Priority::Normal,
            // A heal is never a combat health drop: at most high priority.
            Some(r) if health > r => {
                if health - r >= self.cfg.health_notable_points {
                    Priority::High
                } else {
                    Priority::Normal
                }
            }
            Some(r) => {
                let drop = r - health;
                if drop >= self.cfg.health_critical_points {
                    Priority::Critical
                } else if drop >= self.cfg.health_notable_points {
                    Priority::High
                } else {
                    Priority::Normal
                }
            }
        };
        // `set`'s checks that a number can fail: Letta's block text (the agent, names and
        // number passed above).
        let value = Value::Number(health);
        self.check_block_texts(&[(agent, names::STATUS, names::HEALTH, &value)])?;
        self.observe_time(now);
        // Interned as `set` would (block, then field) by the first change that passes.
        let block = match known.status {
            Some(b) => b,
            None => self.symbols.intern(names::STATUS),
        };
        let field = match known.health {
            Some(f) => f,
            None => self.symbols.intern(names::HEALTH),
        };
        let key = FieldKey {
            agent,
            block,
            field,
        };
        let (id, _) = self.apply_key(now, key, value, priority, &[], None);
        if priority == Priority::Critical {
            let until = now + self.cfg.combat_exit_s;
            self.agent_mut(agent).combat_until = until;
        }
        Ok(id)
    }

    pub(crate) fn health_reference(&self, key: FieldKey) -> Option<f64> {
        let a = self.agent_state(key.agent)?;
        let fs = a.fields.get(&(key.block, key.field))?;
        let v = fs.target().or(fs.local.as_ref().map(|l| &l.value));
        match v {
            Some(Value::Number(n)) => Some(*n),
            _ => None,
        }
    }

    /// Sets `status.state`. Entering or leaving `Combat` is critical; entering it starts
    /// combat mode, which lasts while the state is `Combat` and `combat_exit_s` after.
    ///
    /// The rule holds for every change of `status.state`, however it is made (`set`,
    /// `atomic`): this call is a shorthand.
    pub fn set_state(&mut self, now: f64, agent: AgentId, state: &str) -> Result<ChangeId, Error> {
        self.set(
            now,
            Change::new(agent, names::STATUS, names::STATE, Value::str(state)),
        )
    }

    /// A group member joins: `group_members.<member>.is_present = true`, plus the given
    /// fields of that member (high priority). Returns the handle of `is_present`.
    pub fn join_group(
        &mut self,
        now: f64,
        agent: AgentId,
        member: &str,
        fields: &[(&str, Value)],
    ) -> Result<ChangeId, Error> {
        // A member's fields are `<member>.<field>`: a field name without a dot keeps the
        // member part unambiguous even when member ids contain dots (`guard`, `guard.2`).
        for (f, _) in fields {
            if f.contains('.') || f.is_empty() {
                return Err(Error::BadString {
                    what: "group member field",
                    len: f.len(),
                    reason:
                        "must be non-empty and contain no '.' (it follows the member id after one)",
                });
            }
        }
        let present = format!("{member}.{}", names::IS_PRESENT);
        let mut all = Vec::with_capacity(fields.len() + 1);
        let named: Vec<String> = fields
            .iter()
            .map(|(f, _)| format!("{member}.{f}"))
            .collect();
        all.push(
            Change::new(agent, names::GROUP_MEMBERS, &present, Value::Bool(true))
                .priority(Priority::High),
        );
        for ((_, v), name) in fields.iter().zip(&named) {
            all.push(
                Change::new(agent, names::GROUP_MEMBERS, name, v.clone()).priority(Priority::High),
            );
        }
        self.check_time("now", now)?;
        Symbols::check_name("group member", member)?;
        for c in &all {
            self.check_change(c)?;
        }
        let proposed: Vec<letta::Proposed<'_>> = all
            .iter()
            .map(|c| (c.agent, c.block, c.field, &c.value))
            .collect();
        self.check_block_texts(&proposed)?;
        self.observe_time(now);
        let mut first = None;
        for c in &all {
            let id = self.apply(now, c);
            first.get_or_insert(id);
        }
        Ok(first.expect("join always sets is_present"))
    }

    /// A group member leaves: every field of that member is cleared (high priority). A
    /// member who joined and left before anything was sent leaves nothing to send if the
    /// backend never had them. Returns the handle of clearing `is_present`.
    pub fn leave_group(
        &mut self,
        now: f64,
        agent: AgentId,
        member: &str,
    ) -> Result<ChangeId, Error> {
        self.check_time("now", now)?;
        Symbols::check_name("group member", member)?;
        let a = self.check_agent(agent)?;
        let present = format!("{member}.{}", names::IS_PRESENT);
        let mut others: Vec<String> = Vec::new();
        if let Some(gm) = self.symbols.lookup(names::GROUP_MEMBERS) {
            for ((b, f), fs) in &a.fields {
                let name = self.symbols.text(*f);
                let set = fs.local.as_ref().is_some_and(|l| l.value != Value::Cleared)
                    || fs.acked.as_ref().is_some_and(|(v, _)| *v != Value::Cleared);
                // The member is everything before the last dot (field names have none).
                let of_member = name.rsplit_once('.').is_some_and(|(m, _)| m == member);
                if *b == gm && set && of_member && name != present {
                    others.push(String::from(name));
                }
            }
        }
        let first = Change::new(agent, names::GROUP_MEMBERS, &present, Value::Cleared)
            .priority(Priority::High);
        self.check_change(&first)?;
        self.observe_time(now);
        let id = self.apply(now, &first);
        for f in &others {
            let c = Change::new(agent, names::GROUP_MEMBERS, f, Value::Cleared)
                .priority(Priority::High);
            self.apply(now, &c);
        }
        Ok(id)
    }

    /// A tool's result written to a block field: high priority, or critical if marked.
    pub fn tool_result(
        &mut self,
        now: f64,
        agent: AgentId,
        block: &str,
        field: &str,
        value: Value,
        critical: bool,
    ) -> Result<ChangeId, Error> {
        let p = if critical {
            Priority::Critical
        } else {
            Priority::High
        };
        self.set(now, Change::new(agent, block, field, value).priority(p))
    }

    /// Whether a field is the agent's `status.state` (the field combat mode follows).
    pub(crate) fn is_state_field(&self, key: FieldKey) -> bool {
        let k = self.symbols.known();
        k.status == Some(key.block) && k.state == Some(key.field)
    }

    /// Whether a field is `status.state` or `status.health` (changes of either may move
    /// combat mode, which changes when the agent's critical changes are due).
    pub(crate) fn is_combat_field(&self, key: FieldKey) -> bool {
        let k = self.symbols.known();
        k.status == Some(key.block) && (k.state == Some(key.field) || k.health == Some(key.field))
    }

    /// The rules a change's field implies, owned here for every path that takes in a
    /// change (`set` and its conveniences, the slot path, `atomic`, group joins and
    /// leaves): a change of `status.state` into or out of `Combat` is critical and moves
    /// combat mode. Returns the change's priority. (The slot path's one-pass shortcut never
    /// runs for `status.state`: `slots.rs` keeps no unit hint for it.)
    pub(crate) fn field_rules(
        &mut self,
        now: f64,
        key: FieldKey,
        value: &Value,
        priority: Priority,
    ) -> Priority {
        if !self.is_state_field(key) {
            return priority;
        }
        let is_combat = matches!(value, Value::Str(s) if s == names::COMBAT_STATE);
        let exit = self.cfg.combat_exit_s;
        let a = self.agent_mut(key.agent);
        let was = a.in_combat_state;
        a.in_combat_state = is_combat;
        if was || is_combat {
            a.combat_until = now + exit;
        }
        if was != is_combat {
            Priority::Critical
        } else {
            priority
        }
    }
}
