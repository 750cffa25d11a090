//! Rules of `docs/semantics.md`: health, state and combat mode.

use super::*;

#[test]
fn health_small_notable_and_critical_changes() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.set_health(0.0, a, 100.0).unwrap();
    q.decide(a, 16.0).unwrap();
    let out = q.poll(16.0).unwrap();
    ack_all(&mut q, &out);
    assert_eq!(
        q.acked_value(a, "status", "health").unwrap().0,
        &Value::Number(100.0)
    );

    // Small (under 10 points): kept for the routine batch (due at 30 s).
    q.set_health(17.0, a, 95.0).unwrap();
    assert_quiet(&mut q, 17.0, 29.9, 0.1);
    poll_one_acked(
        &mut q,
        30.0,
        RequestKind::Batch,
        &["npc-1/status.health=95"],
    );
    assert!(!q.in_combat(a, 30.0));

    // Notable (10 to 20 points): high priority, out within 1 s, no combat.
    q.set_health(31.0, a, 80.0).unwrap();
    assert_quiet(&mut q, 31.0, 31.9, 0.1);
    poll_one_acked(
        &mut q,
        32.0,
        RequestKind::Batch,
        &["npc-1/status.health=80"],
    );
    assert!(!q.in_combat(a, 32.0));

    // Critical (20 points or more): urgent at the next poll, and combat mode.
    q.set_health(33.0, a, 60.0).unwrap();
    assert!(q.in_combat(a, 33.0));
    poll_one(
        &mut q,
        33.0,
        RequestKind::Urgent,
        &["npc-1/status.health=60"],
    );
    // Combat mode is left 10 s after the critical change.
    assert!(q.in_combat(a, 42.9));
    assert!(!q.in_combat(a, 43.0));
}

#[test]
fn health_steps_are_measured_against_the_backends_value() {
    // Two 15-point drops in a row: the second is 30 points from what the backend has.
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.set_health(0.0, a, 100.0).unwrap();
    q.decide(a, 16.0).unwrap();
    let out = q.poll(16.0).unwrap();
    ack_all(&mut q, &out);
    q.set_health(17.0, a, 85.0).unwrap();
    assert!(!q.in_combat(a, 17.0));
    q.set_health(17.2, a, 70.0).unwrap();
    assert!(q.in_combat(a, 17.2));
    let out = q.poll(17.2).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Urgent);
    assert_eq!(values(&q, &out[0]), ["npc-1/status.health=70"]);
}

#[test]
fn state_into_and_out_of_combat_is_critical_and_combat_ends_10s_later() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    // An ordinary state change is normal priority.
    q.set_state(0.0, a, "Patrol").unwrap();
    assert_quiet(&mut q, 0.0, 5.0, 0.5);
    assert!(!q.in_combat(a, 5.0));

    q.set_state(6.0, a, "Combat").unwrap();
    let out = q.poll(6.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Urgent);
    assert_eq!(values(&q, &out[0]), ["npc-1/status.state=Combat"]);
    ack_all(&mut q, &out);
    // In combat as long as the state is Combat.
    assert!(q.in_combat(a, 100.0));

    q.set_state(100.0, a, "Patrol").unwrap();
    let out = q.poll(100.0).unwrap();
    assert_eq!(out.len(), 1, "leaving Combat is critical too");
    assert_eq!(out[0].kind, RequestKind::Urgent);
    assert_eq!(values(&q, &out[0]), ["npc-1/status.state=Patrol"]);
    assert!(q.in_combat(a, 109.9));
    assert!(!q.in_combat(a, 110.0));
}
