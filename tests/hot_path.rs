//! The per-frame path: changes through slots to fields already pending (the slot path's
//! one-pass shortcut) and polls that find nothing due. They must keep every rule: nothing
//! leaves before its time, everything leaves when due, with the latest values, and the
//! rules of `status.state` and `status.health` apply however the names were interned.

use npc_sync::{AgentId, Config, Priority, Queue, Slot, Value};

const FRAME: f64 = 1.0 / 60.0;

/// A queue with `n` agents and the slot of `status.<field>` of each.
fn queue_with(n: usize, field: &str) -> (Queue, Vec<AgentId>, Vec<Slot>) {
    let mut q = Queue::new(Config::default()).expect("default config");
    let status = q.intern("status").unwrap();
    let f = q.intern(field).unwrap();
    let mut agents = Vec::new();
    let mut slots = Vec::new();
    for i in 0..n {
        let a = q.agent(&format!("npc-{i}")).unwrap();
        agents.push(a);
        slots.push(q.slot(a, status, f).unwrap());
    }
    (q, agents, slots)
}

#[test]
fn frames_of_pending_changes_wait_for_the_routine_batch_and_send_the_latest_values() {
    let (mut q, _, slots) = queue_with(50, "x");
    let interval = Config::default().batch_interval_s;
    let mut frame = 0u32;
    let mut sent = Vec::new();
    // Frames up to just past the routine batch: one change per NPC, one poll each frame.
    while sent.is_empty() {
        frame += 1;
        let now = f64::from(frame) * FRAME;
        assert!(
            now < 2.0 * interval,
            "no routine batch within two intervals"
        );
        for (i, s) in slots.iter().enumerate() {
            q.set_slot(
                now,
                *s,
                Value::Number(f64::from(frame) + i as f64),
                Priority::Normal,
                &[],
            )
            .unwrap();
        }
        for r in q.poll(now).unwrap() {
            sent.push((now, r));
        }
    }
    let (at, req) = &sent[0];
    assert_eq!(sent.len(), 1, "one routine batch");
    assert!(
        *at >= FRAME + interval && *at < FRAME + interval + 2.0 * FRAME,
        "the batch left at {at}, one interval after the first poll"
    );
    assert_eq!(req.changes.len(), slots.len(), "every NPC's field, once");
    for (i, c) in req.changes.iter().enumerate() {
        assert_eq!(
            c.value,
            Value::Number(f64::from(frame) + i as f64),
            "the latest value"
        );
    }
}

#[test]
fn a_high_priority_change_among_per_frame_changes_leaves_one_delay_later() {
    let (mut q, _, slots) = queue_with(20, "x");
    let delay = Config::default().high_priority_delay_s;
    let mut high_at = None;
    let mut emitted = None;
    for frame in 1..=200u32 {
        let now = f64::from(frame) * FRAME;
        for (i, s) in slots.iter().enumerate() {
            // NPC 7's change of frame 10 is high priority; every other change is normal and
            // takes the one-pass shortcut once its field is pending.
            let p = if i == 7 && frame == 10 {
                high_at = Some(now);
                Priority::High
            } else {
                Priority::Normal
            };
            q.set_slot(
                now,
                *s,
                Value::Number(f64::from(frame * 100) + i as f64),
                p,
                &[],
            )
            .unwrap();
        }
        let reqs = q.poll(now).unwrap();
        if !reqs.is_empty() {
            emitted = Some((now, reqs));
            break;
        }
    }
    let high_at = high_at.unwrap();
    let (at, reqs) = emitted.expect("the high-priority change left");
    assert!(
        at >= high_at + delay && at < high_at + delay + 2.0 * FRAME,
        "left at {at}, the change was made at {high_at}"
    );
    assert!(reqs
        .iter()
        .flat_map(|r| &r.changes)
        .any(|c| c.value == Value::Number(f64::from((at / FRAME).round() as u32 * 100) + 7.0)));
}

#[test]
fn the_state_rule_holds_whatever_order_the_names_were_interned_in() {
    let mut q = Queue::new(Config::default()).unwrap();
    // The field name before the block label, and unrelated names before both.
    let _ = q.intern("combat").unwrap();
    let state = q.intern("state").unwrap();
    let health = q.intern("health").unwrap();
    let status = q.intern("status").unwrap();
    let a = q.agent("guard").unwrap();
    let state_slot = q.slot(a, status, state).unwrap();
    let health_slot = q.slot(a, status, health).unwrap();
    q.set_slot(0.0, health_slot, Value::Number(90.0), Priority::Normal, &[])
        .unwrap();
    q.set_slot(0.1, health_slot, Value::Number(80.0), Priority::Normal, &[])
        .unwrap();
    assert!(!q.in_combat(a, 0.1));
    q.set_slot(0.2, state_slot, Value::str("Combat"), Priority::Low, &[])
        .unwrap();
    assert!(
        q.in_combat(a, 0.2),
        "entering Combat through a slot starts combat mode"
    );
    // Entering combat is critical: it leaves at once, without waiting for any batch.
    let reqs = q.poll(0.2).unwrap();
    assert!(reqs
        .iter()
        .flat_map(|r| &r.changes)
        .any(|c| c.value == Value::str("Combat")));
}
