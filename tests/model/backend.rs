//! The simulated backend: it applies each field only when its sequence number is higher
//! than the one it holds, acknowledges with or without its confirmed state, and the
//! queue is polled and every emitted request checked.

use super::*;

impl Sim {
    /// The backend applies each field only if its seq is higher than the one it holds.
    pub(super) fn apply(&mut self, r: &Request) {
        for c in &r.changes {
            let k = key(
                self.q.text(c.agent_name),
                self.q.text(c.block),
                self.q.text(c.field),
            );
            let held = self.backend.get(&k).map(|b| b.1).unwrap_or(0);
            if c.seq.0 > held {
                // Invariant 2: what the backend accepts per field only rises (by this rule),
                // and the value is the one that seq set.
                self.backend.insert(k, (c.value.clone(), c.seq.0));
            }
        }
    }

    pub(super) fn ack(&mut self, r: &Request, confirmed: bool) {
        self.apply(r);
        if r.kind == RequestKind::Inference {
            let name = self.name(r.inference_agent.unwrap());
            let d = self.chat_delivered.entry(name).or_default();
            d.extend(r.messages.iter().map(|m| m.text.clone()));
        }
        let mut conf = Vec::new();
        if confirmed {
            for c in &r.changes {
                if self
                    .q
                    .agent_name(c.agent)
                    .is_none_or(|n| self.removed.contains(n))
                {
                    continue;
                }
                let k = key(
                    self.q.text(c.agent_name),
                    self.q.text(c.block),
                    self.q.text(c.field),
                );
                let (v, s) = self.backend_value(&k);
                conf.push(Confirmed {
                    agent: c.agent,
                    block: k.1.clone(),
                    field: k.2.clone(),
                    value: v,
                    seq: Seq(s),
                });
            }
        }
        let res = self.q.ack(r.id, &conf);
        writeln!(self.log, "ack {res:?}").unwrap();
        res.unwrap();
    }

    pub(super) fn poll(&mut self) {
        let now = self.now;
        let out = self.q.poll(now).expect("valid poll");
        self.seen = now;
        self.drain_events();
        self.check_chat_freshness(&out);
        for r in &out {
            writeln!(self.log, "{now}: {r:?}").unwrap();
            self.check_request(r);
            self.calls.record(now, r.calls);
            if r.kind == RequestKind::Batch {
                self.routine_calls.record(now, r.calls);
            }
        }
        self.check_budget();
        self.in_flight.extend(out);
    }
}
