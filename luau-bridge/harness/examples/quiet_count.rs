//! The versus trace (issue 10) through the Rust core natively, as the ModuleScript's frames
//! drive it, to count the polls that send nothing and why each happened:
//!
//! ```text
//! cargo run --release -p npc-sync-luau-harness --example quiet_count -- [NPCS] [FRAMES]
//! ```
//!
//! Per frame (as `versus_profile.luau` and `Process.step`): every NPC's `status.x` change,
//! the frame's events (hits, states, decisions), then the step: the requests of the frame
//! before acknowledged (their HTTP answers arrive within one harness frame), and a poll
//! when the core says one is due ([`Queue::next_poll`], as `Core.pollDue`). Prints the
//! polls by outcome (sent, nothing sent after an ack, nothing sent) and, for those that
//! sent nothing in a frame without an ack, what brought them: the queue made dirty
//! (`next_poll` 0) or its wake. Defaults: 1,000 NPCs, 1,900 frames (the bench's trace).

#[allow(dead_code)]
#[path = "../benches/versus/trace.rs"]
mod trace;
use npc_sync::{Config, Decision, Priority, Queue, Request, RequestKind, Value};
use trace::{Kind, Trace};

fn main() {
    let arg = |i: usize, d: u32| {
        std::env::args()
            .nth(i)
            .map_or(d, |s| s.parse().expect("NPCS and FRAMES: numbers"))
    };
    let (npcs, frames) = (arg(1, 1000), arg(2, 1900));
    let tr = Trace::generate(npcs, frames, 1);
    let mut q = Queue::new(Config::default()).expect("default config");
    let (status, x) = (q.intern("status").unwrap(), q.intern("x").unwrap());
    let agents: Vec<_> = (1..=npcs)
        .map(|i| q.agent(&format!("npc-{i}")).expect("agent"))
        .collect();
    let slots: Vec<_> = agents
        .iter()
        .map(|a| q.slot(*a, status, x).expect("slot"))
        .collect();
    let mut sent: Vec<Request> = Vec::new();
    let (mut polls, mut sending, mut after_ack) = (0u32, 0u32, 0u32);
    let (mut quiet_dirty, mut quiet_wake) = (0u32, 0u32);
    let (mut urgent, mut batch) = (0u32, 0u32);
    for f in 0..=frames {
        let now = f64::from(f) / 60.0;
        for (i, s) in slots.iter().enumerate() {
            let v = if f == 0 {
                0.0
            } else {
                f64::from(f) + i as f64 + 1.0
            };
            q.set_slot(now, *s, Value::Number(v), Priority::Normal, &[])
                .expect("set");
        }
        for (k, i, v) in tr.events(f) {
            let a = agents[i];
            match k {
                Kind::Health => {
                    q.set_health(now, a, v).expect("health");
                }
                Kind::State => {
                    q.set_state(now, a, if v == 1.0 { "Combat" } else { "Idle" })
                        .expect("state");
                }
                Kind::Decide => {
                    let _: Decision = q.decide(a, now).expect("decide");
                }
            }
        }
        let acked = !sent.is_empty();
        for r in sent.drain(..) {
            q.ack(r.id, &[]).expect("ack");
        }
        let next = q.next_poll();
        if now < next {
            continue;
        }
        let reqs = q.poll(now).expect("poll");
        if f == 0 {
            sent = reqs;
            continue;
        }
        polls += 1;
        if !reqs.is_empty() {
            sending += 1;
            for r in &reqs {
                match r.kind {
                    RequestKind::Urgent => urgent += 1,
                    _ => batch += 1,
                }
            }
        } else if acked {
            after_ack += 1;
        } else if next == 0.0 {
            quiet_dirty += 1;
        } else {
            quiet_wake += 1;
        }
        sent = reqs;
    }
    println!("{npcs} NPCs, frames 1..={frames}: {polls} polls");
    println!("  sent requests: {sending} ({urgent} urgent, {batch} other requests)");
    println!("  sent nothing, in a frame with an ack: {after_ack}");
    println!(
        "  sent nothing, no ack: {} (dirty: {quiet_dirty}, the wake: {quiet_wake})",
        quiet_dirty + quiet_wake
    );
}
