//! Per-field and per-agent state, and pending units.
//!
//! Every field keeps its latest local value (the truth the game holds), the value the
//! backend acknowledged, and the values in flight. A field has at most one pending unit:
//! its own coalescing unit, or the atomic group it belongs to. A unit always sends the
//! fields' latest local values, so a value older than one in flight is never sent.

use crate::chat::ChatBuffer;
use crate::ids::{AgentId, ChangeId, GroupId, RequestId, Seq, Sym, UnitId};
use crate::queue::Priority;
use crate::value::Value;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Names one field of one agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FieldKey {
    pub(crate) agent: AgentId,
    pub(crate) block: Sym,
    pub(crate) field: Sym,
}

#[derive(Clone, Debug)]
pub(crate) struct Local {
    pub(crate) value: Value,
    pub(crate) seq: Seq,
}

#[derive(Clone, Debug)]
pub(crate) struct InFlightValue {
    pub(crate) request: RequestId,
    pub(crate) seq: Seq,
    pub(crate) value: Value,
    /// When the oldest change this send delivers was made (for staleness).
    pub(crate) oldest: f64,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct FieldState {
    pub(crate) local: Option<Local>,
    pub(crate) acked: Option<(Value, Seq)>,
    pub(crate) in_flight: Vec<InFlightValue>,
    /// The pending unit carrying this field, if any.
    pub(crate) unit: Option<UnitId>,
    /// When the oldest change not yet sent was made.
    pub(crate) pending_since: Option<f64>,
    /// The failed send with the highest sequence number, and its value: a failure (a
    /// timeout, a lost response) does not prove the backend did not apply it, so until a
    /// later send is acknowledged the backend's value is not known and differential sync
    /// is off. The value is what the backend may hold instead of `acked`: a Letta block
    /// write that does not send this field renders it, so a write never moves a field back
    /// behind a send that may have landed. One option, so the two are set together.
    pub(crate) unsure: Option<(Seq, Value)>,
    /// When the oldest change was made that stopped waiting because the field went back
    /// to the value in flight, while the backend did not hold the local value yet. If
    /// the field diverges again before the backend holds the local value, that change
    /// was never delivered: its age comes back (staleness is never under-reported).
    pub(crate) lag_since: Option<f64>,
}

impl FieldState {
    /// A send numbered `seq` carrying `value` failed: the backend may hold it.
    pub(crate) fn mark_unsure(&mut self, seq: Seq, value: Value) {
        if self.unsure.as_ref().is_none_or(|(u, _)| seq >= *u) {
            self.unsure = Some((seq, value));
        }
    }

    /// The backend's value is known again up to `seq` (acknowledged or read).
    pub(crate) fn settle_unsure(&mut self, seq: Seq) {
        if self.unsure.as_ref().is_some_and(|(u, _)| *u <= seq) {
            self.unsure = None;
        }
    }

    /// What the backend may hold for this field: the value of a failed send that may have
    /// landed, else the acknowledged value.
    pub(crate) fn backend_value(&self) -> Option<&Value> {
        match &self.unsure {
            Some((u, v)) if *u > self.acked_seq() => Some(v),
            _ => self.acked.as_ref().map(|(v, _)| v),
        }
    }

    pub(crate) fn acked_seq(&self) -> Seq {
        self.acked.as_ref().map(|a| a.1).unwrap_or_default()
    }

    /// The highest sequence number sent or acknowledged.
    pub(crate) fn max_sent_seq(&self) -> Seq {
        let mut s = self.acked_seq();
        for f in &self.in_flight {
            if f.seq > s {
                s = f.seq;
            }
        }
        s
    }

    /// What the backend will hold once everything in flight lands (`None`: absent).
    /// Inlined: a kept record's check reads it (in Luau a call costs more than its loop).
    #[inline(always)]
    pub(crate) fn target(&self) -> Option<&Value> {
        let mut best: Option<&InFlightValue> = None;
        for f in &self.in_flight {
            if best.is_none_or(|b| f.seq > b.seq) {
                best = Some(f);
            }
        }
        match best {
            Some(f) if f.seq > self.acked_seq() => Some(&f.value),
            _ => self.acked.as_ref().map(|a| &a.0),
        }
    }

    /// Whether a failed send leaves what the backend will hold unknown: then no value
    /// equals the target.
    pub(crate) fn in_doubt(&self) -> bool {
        // Unless a later send is in flight (it supersedes the unsure one if it lands, and
        // renews the doubt if it fails), the backend may hold anything.
        self.unsure.as_ref().is_some_and(|(u, _)| {
            *u > self.acked_seq() && !self.in_flight.iter().any(|f| f.seq > *u)
        })
    }

    pub(crate) fn equals_target(&self, v: &Value) -> bool {
        if self.in_doubt() {
            return false;
        }
        match self.target() {
            None => *v == Value::Cleared,
            Some(t) => t == v,
        }
    }

    /// Whether the local value still has to be sent.
    pub(crate) fn needs_send(&self) -> bool {
        match &self.local {
            None => false,
            Some(l) => self.sends(&l.value, l.seq),
        }
    }

    /// Whether `value` as the local value under `seq` would have to be sent: the rule of
    /// [`FieldState::needs_send`], for a value not recorded yet (absorption checks a kept
    /// change before it takes it in).
    pub(crate) fn sends(&self, value: &Value, seq: Seq) -> bool {
        seq > self.max_sent_seq() && !self.equals_target(value)
    }

    /// A change of this field stopped waiting on its own because the value the backend
    /// will get is already in flight: that send delivers it, so it inherits the change's
    /// age (staleness is never under-reported). With nothing newer than the acknowledged
    /// value in flight, the backend already holds it and the age is dropped.
    pub(crate) fn inherit_age(&mut self, oldest: f64) {
        let acked = self.acked_seq();
        if let Some(newest) = self
            .in_flight
            .iter_mut()
            .filter(|v| v.seq > acked)
            .max_by_key(|v| v.seq)
        {
            newest.oldest = newest.oldest.min(oldest);
            self.lag_since = min_opt(self.lag_since, Some(oldest));
        } else {
            self.lag_since = None;
        }
    }

    /// After an acknowledgement: the backend holds the local value (nothing lags any
    /// more), or the field diverged again and what lagged is still undelivered.
    pub(crate) fn settle_lag(&mut self) {
        let Some(lag) = self.lag_since else { return };
        let in_sync = match (&self.local, &self.acked) {
            (Some(l), Some((v, _))) => l.value == *v,
            (Some(l), None) => l.value == Value::Cleared,
            (None, _) => true,
        };
        if in_sync && self.unsure.is_none() {
            self.lag_since = None;
        } else if self.needs_send() {
            self.lag_since = None;
            self.pending_since = min_opt(self.pending_since, Some(lag));
        } else {
            self.inherit_age(lag);
        }
    }

    /// The ack's first step for one field: the request's value of it under `seq` is
    /// acknowledged (taken out of flight; the acknowledged value unless a newer one is).
    /// Returns whether it settled the doubt of a failed send (the same seq sent again):
    /// the field's pending value may then need no send any more. Otherwise what the backend
    /// will hold does not move (the newest value in flight was the target already).
    pub(crate) fn acknowledge_sent(&mut self, request: RequestId, seq: Seq) -> bool {
        let Some(i) = self
            .in_flight
            .iter()
            .position(|v| v.request == request && v.seq == seq)
        else {
            return false;
        };
        let v = self.in_flight.remove(i);
        if seq > self.acked_seq() {
            self.acked = Some((v.value, seq));
        }
        let acked = self.acked_seq();
        let doubted = self.unsure.is_some();
        self.settle_unsure(acked);
        self.settle_lag();
        doubted && self.unsure.is_none()
    }

    /// Merges the backend's confirmed state of the field (`value` under `seq`) after the
    /// request's own values were acknowledged. `issued` is the counter before the ack:
    /// sequence numbers at or above it come from an earlier run of the server; a local
    /// value of this run then takes `renumber` to win. What the queue must do besides is
    /// returned ([`crate::Queue::apply_merged`]).
    pub(crate) fn merge_confirmed(
        &mut self,
        value: &Value,
        seq: Seq,
        issued: u64,
        renumber: u64,
    ) -> Merged {
        let local_seq = self.local.as_ref().map(|l| l.seq).unwrap_or_default();
        let from_earlier_run = seq.0 >= issued;
        // The common confirmation: the value this request carried (just acknowledged
        // under the same seq), not newer than the local value. What the rule below would
        // do with it comes to this.
        if !from_earlier_run
            && seq <= local_seq
            && self
                .acked
                .as_ref()
                .is_some_and(|(v, s)| *s == seq && v == value)
        {
            self.settle_unsure(seq);
            return Merged::default();
        }
        let mut merged = Merged::default();
        if seq >= self.acked_seq() {
            self.acked = Some((value.clone(), seq));
            self.settle_unsure(seq);
            merged.target_moved = true;
        }
        if let (true, Some(local)) = (from_earlier_run, self.local.as_mut()) {
            // The game's value of this run is newer than anything an earlier run
            // left: it keeps its place and is numbered to win.
            if local.value != *value {
                local.seq = Seq(renumber);
                merged.renumbered = true;
            }
        } else if seq > local_seq {
            // The backend holds something newer than anything this queue made.
            self.local = Some(Local {
                value: value.clone(),
                seq,
            });
            merged.drop_unit = self.unit;
        }
        merged
    }

    /// [`crate::Queue::reconcile`] on the field's record: a field whose local value must be
    /// sent and that no unit carries needs a unit of its own (waiting from `now` unless it
    /// already was); any other is settled.
    pub(crate) fn reconcile(&mut self, now: f64) -> Reconciled {
        if self.unit.is_none() && self.needs_send() {
            if self.pending_since.is_none() {
                // The confirmed state disagreed with ours: count from now.
                self.pending_since = Some(now);
            }
            return Reconciled::NeedsUnit(self.local.as_ref().map(|l| l.seq.0).unwrap_or(0));
        }
        if self.settle() {
            Reconciled::Vacant
        } else {
            Reconciled::Kept
        }
    }

    /// [`crate::Queue::settle`] on the field's record: unless a unit carries it, nothing of
    /// it is waiting any more once it needs no send (what it waited for is delivered by
    /// the send in flight, which inherits its age, or held by the backend). Returns whether
    /// the record is vacant now (to be freed).
    pub(crate) fn settle(&mut self) -> bool {
        if self.unit.is_some() {
            return false;
        }
        if !self.needs_send() {
            if let Some(p) = self.pending_since.take() {
                self.inherit_age(p);
            }
        }
        self.is_vacant()
    }

    /// Whether the record says nothing the absence of a record does not: the field is
    /// absent locally and at the backend, and nothing of it waits or travels. Such a
    /// record (a departed group member's, a cleared field's) is freed.
    pub(crate) fn is_vacant(&self) -> bool {
        let absent = |v: Option<&Value>| v.is_none_or(|v| *v == Value::Cleared);
        absent(self.local.as_ref().map(|l| &l.value))
            && absent(self.acked.as_ref().map(|a| &a.0))
            && self.in_flight.is_empty()
            && self.unit.is_none()
            && self.pending_since.is_none()
            && self.unsure.is_none()
            && self.lag_since.is_none()
    }

    /// When the oldest change the backend does not have yet was made.
    pub(crate) fn oldest_undelivered(&self) -> Option<f64> {
        let acked = self.acked_seq();
        let mut oldest = self.pending_since;
        for f in &self.in_flight {
            if f.seq > acked && oldest.is_none_or(|o| f.oldest < o) {
                oldest = Some(f.oldest);
            }
        }
        oldest
    }
}

/// What merging a confirmed field asks of the queue beyond the field's record.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Merged {
    /// The local value was renumbered: the counter moves on.
    pub(crate) renumbered: bool,
    /// The backend holds a newer value than the local one: the field's pending unit (if
    /// no atomic group) is dropped.
    pub(crate) drop_unit: Option<UnitId>,
    /// The acknowledged value moved to the confirmed one: the field's pending unit may no
    /// longer need a send ([`crate::Queue::suspect_stale`]).
    pub(crate) target_moved: bool,
}

/// What [`FieldState::reconcile`] found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Reconciled {
    /// The field needs a unit of its own, ordered by this seq.
    NeedsUnit(u64),
    /// The record says nothing: freed.
    Vacant,
    /// Nothing to do.
    Kept,
}

/// A dependency: `dependent` may not be delivered before `on`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dep {
    pub(crate) on: ChangeId,
    pub(crate) dependent: ChangeId,
}

/// A pending unit: one field's coalesced changes, or one atomic group.
#[derive(Clone, Debug)]
pub(crate) struct Unit {
    pub(crate) entries: Vec<FieldKey>,
    pub(crate) group: Option<GroupId>,
    pub(crate) priority: Priority,
    pub(crate) deps: Vec<Dep>,
    /// Sequence number of the unit's first change: orders units within a priority.
    pub(crate) order: u64,
    /// When the first change of high priority or above joined (drives the 1 s delay).
    pub(crate) high_since: Option<f64>,
    /// When the oldest critical change not yet delivered was made (for the latency
    /// metric; kept across failed attempts, so retries count).
    pub(crate) critical_since: Option<f64>,
    /// Holds a critical change made since the unit's last failed attempt.
    pub(crate) fresh_critical: bool,
    /// Retry backoff: not emitted before this time.
    pub(crate) not_before: f64,
    /// Failed attempts so far.
    pub(crate) attempts: u32,
}

impl Unit {
    /// An empty unit of low priority, due at once.
    pub(crate) fn new(entries: Vec<FieldKey>, group: Option<GroupId>, order: u64) -> Unit {
        Unit {
            entries,
            group,
            priority: Priority::Low,
            deps: Vec::new(),
            order,
            high_since: None,
            critical_since: None,
            fresh_critical: false,
            not_before: 0.0,
            attempts: 0,
        }
    }

    /// One change of `key` (sequence `seq`, made at `now`) as a unit of its own: what a
    /// change brings to the unit it joins ([`Unit::absorb`] merges it in) or starts.
    pub(crate) fn of_change(
        key: FieldKey,
        seq: u64,
        priority: Priority,
        now: f64,
        deps: Vec<Dep>,
    ) -> Unit {
        let mut unit = Unit::new(alloc::vec![key], None, seq);
        unit.deps = deps;
        unit.raise(priority, now);
        unit
    }

    /// A new change of `priority` joins the unit. A new critical change is not held back
    /// by an older failure's retry backoff: only its agent's combat debounce and the
    /// budget may delay it.
    pub(crate) fn raise(&mut self, priority: Priority, now: f64) {
        if priority > self.priority {
            self.priority = priority;
        }
        if priority >= Priority::High && self.high_since.is_none() {
            self.high_since = Some(now);
        }
        if priority == Priority::Critical {
            if self.critical_since.is_none() {
                self.critical_since = Some(now);
            }
            self.not_before = 0.0;
            self.fresh_critical = true;
        }
    }

    /// Takes in another unit's content (it is then dropped by the caller). Both units'
    /// orders survive: see [`merge_order`]. The merged unit backs off as long as the
    /// longer of the two, unless either holds a critical change not tried yet.
    pub(crate) fn absorb(&mut self, other: Unit) {
        merge_order(&mut self.entries, &other.entries);
        if self.group.is_none() {
            self.group = other.group;
        }
        if other.priority > self.priority {
            self.priority = other.priority;
        }
        self.deps.extend(other.deps);
        self.order = self.order.min(other.order);
        self.high_since = min_opt(self.high_since, other.high_since);
        self.critical_since = min_opt(self.critical_since, other.critical_since);
        self.fresh_critical |= other.fresh_critical;
        self.not_before = if self.fresh_critical {
            0.0
        } else {
            self.not_before.max(other.not_before)
        };
        self.attempts = self.attempts.max(other.attempts);
    }
}

/// Merges `b` into `a` so that `a`'s order and `b`'s order both hold: each entry of `b`
/// missing from `a` goes just before the next entry the two share (or at the end). When the
/// two orders contradict each other (`a` has x before y, `b` y before x), `a`'s wins.
pub(crate) fn merge_order(a: &mut Vec<FieldKey>, b: &[FieldKey]) {
    let mut waiting: Vec<FieldKey> = Vec::new();
    // Position in `a` just after the last shared entry seen.
    let mut floor = 0usize;
    for e in b {
        match a.iter().position(|x| x == e) {
            Some(p) => {
                let at = p.max(floor);
                let n = waiting.len();
                for (i, w) in waiting.drain(..).enumerate() {
                    a.insert(at + i, w);
                }
                let p = if p >= at { p + n } else { p };
                floor = floor.max(p + 1).max(at + n);
            }
            None => {
                if !waiting.contains(e) {
                    waiting.push(*e);
                }
            }
        }
    }
    a.extend(waiting);
}

pub(crate) fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if x < y { x } else { y }),
        (x, None) => x,
        (None, y) => y,
    }
}

#[derive(Clone, Debug)]
pub(crate) struct AgentState {
    pub(crate) name: Sym,
    pub(crate) fields: BTreeMap<(Sym, Sym), FieldState>,
    /// Last emission of a critical change (debounce).
    pub(crate) last_critical_emit: Option<f64>,
    /// The debounce window in force at that emission: the window it opened. Leaving combat
    /// does not stretch an open 1 s window to 5 s.
    pub(crate) last_critical_window: f64,
    /// Combat mode lasts until this time (or while the state is `Combat`).
    pub(crate) combat_until: f64,
    pub(crate) in_combat_state: bool,
    /// A decision is waiting for this agent's pending changes.
    pub(crate) sync_requested: bool,
    pub(crate) chat: ChatBuffer,
}

impl AgentState {
    pub(crate) fn new(name: Sym) -> Self {
        AgentState {
            name,
            fields: BTreeMap::new(),
            last_critical_emit: None,
            last_critical_window: 0.0,
            combat_until: f64::NEG_INFINITY,
            in_combat_state: false,
            sync_requested: false,
            chat: ChatBuffer::default(),
        }
    }

    pub(crate) fn in_combat(&self, now: f64) -> bool {
        self.in_combat_state || now < self.combat_until
    }

    /// When combat mode ends by itself (time passing), if it is on at `now` and nothing
    /// but time will end it (leaving the `Combat` state is a change, which wakes the
    /// queue on its own).
    pub(crate) fn combat_ends_at(&self, now: f64) -> Option<f64> {
        (!self.in_combat_state && now < self.combat_until).then_some(self.combat_until)
    }

    pub(crate) fn oldest_undelivered(&self) -> Option<f64> {
        let mut oldest = None;
        for f in self.fields.values() {
            oldest = min_opt(oldest, f.oldest_undelivered());
        }
        oldest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflight(seq: u64, v: Value) -> InFlightValue {
        InFlightValue {
            request: RequestId(1),
            seq: Seq(seq),
            value: v,
            oldest: 0.0,
        }
    }

    fn k(i: u32) -> FieldKey {
        FieldKey {
            agent: AgentId(0),
            block: Sym(0),
            field: Sym(i),
        }
    }

    #[test]
    fn merge_keeps_both_orders() {
        let mut a = alloc::vec![k(1), k(2), k(3)];
        merge_order(&mut a, &[k(0), k(1), k(4)]);
        assert_eq!(a, alloc::vec![k(0), k(1), k(2), k(3), k(4)]);
        let mut a = alloc::vec![k(3)];
        merge_order(&mut a, &[k(1), k(2), k(3)]);
        assert_eq!(a, alloc::vec![k(1), k(2), k(3)]);
        let mut a = alloc::vec![k(1), k(2), k(5)];
        merge_order(&mut a, &[k(1), k(3), k(2), k(4)]);
        assert_eq!(a, alloc::vec![k(1), k(3), k(2), k(5), k(4)]);
        // Contradicting orders: the first unit's wins, nothing is lost or doubled.
        let mut a = alloc::vec![k(1), k(2)];
        merge_order(&mut a, &[k(2), k(9), k(1)]);
        assert_eq!(a.len(), 3);
        assert_eq!(&a[..2], &[k(1), k(2)]);
    }

    #[test]
    fn differential_against_target() {
        let mut f = FieldState {
            local: Some(Local {
                value: Value::Cleared,
                seq: Seq(1),
            }),
            ..FieldState::default()
        };
        assert!(
            !f.needs_send(),
            "clearing what the backend never had sends nothing"
        );
        f.acked = Some((Value::str("plaza"), Seq(1)));
        f.local = Some(Local {
            value: Value::str("plaza"),
            seq: Seq(3),
        });
        assert!(!f.needs_send());
        f.in_flight.push(inflight(2, Value::str("market")));
        // market will land, so plaza must be sent again.
        assert!(f.needs_send());
        assert_eq!(f.max_sent_seq(), Seq(2));
    }
}
