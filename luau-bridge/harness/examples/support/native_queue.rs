//! The native examples' queue (no transpiler, no VM): 1,000 agents with `status.x`, a first
//! poll, then rounds of one change per agent.
#![allow(dead_code)] // each example takes the parts it needs
use npc_sync::{AgentId, Config, Priority, Queue, Slot, Value};

/// 1,000 agents (`npc-0` ..) and their `status.x` slots in `q`.
pub fn agents_and_slots(q: &mut Queue) -> (Vec<AgentId>, Vec<Slot>) {
    let status = q.intern("status").expect("intern");
    let x = q.intern("x").expect("intern");
    let mut agents = Vec::new();
    let mut slots = Vec::new();
    for i in 0..1000 {
        let a = q.agent(&format!("npc-{i}")).expect("agent");
        agents.push(a);
        slots.push(q.slot(a, status, x).expect("slot"));
    }
    (agents, slots)
}

/// 1,000 agents' `status.x` slots in a fresh queue, polled once at 0.01 s (the routine batch
/// is then scheduled 30 s later).
pub fn queue_with_slots() -> (Queue, Vec<Slot>) {
    let mut q = Queue::new(Config::default()).expect("default config");
    let (_, slots) = agents_and_slots(&mut q);
    q.poll(0.01).expect("first poll");
    (q, slots)
}

/// One change of every slot at `now`, round `r`'s values (normal priority).
pub fn round(q: &mut Queue, slots: &[Slot], r: u32, now: f64) {
    for (i, s) in slots.iter().enumerate() {
        let v = f64::from(r * 1000) + i as f64;
        q.set_slot(now, *s, Value::Number(v), Priority::Normal, &[])
            .expect("set");
    }
}

/// Rounds 1 to 3, a frame apart from 0.01 s on (every field pending, changed three times).
pub fn three_rounds(q: &mut Queue, slots: &[Slot]) {
    for r in 1..4u32 {
        round(q, slots, r, f64::from(r) / 60.0 + 0.01);
    }
}
