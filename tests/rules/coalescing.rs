//! Rules of `docs/semantics.md`: coalescing and differential sync.

use super::*;

#[test]
fn changes_to_one_field_coalesce_to_the_latest_value() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap(); // starts the routine schedule: next batch at 30 s
    q.set_location(1.0, a, "plaza").unwrap();
    q.set_location(2.0, a, "market").unwrap();
    let last = q.set_location(3.0, a, "cave").unwrap();
    assert_quiet(&mut q, 3.0, 29.5, 0.5);
    let out = q.poll(30.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Batch);
    assert_eq!(values(&q, &out[0]), ["npc-1/status.location=cave"]);
    assert_eq!(out[0].changes[0].seq, last.seq());
    assert_eq!(q.metrics().coalesced, 2);
}

#[test]
fn setting_back_to_the_acknowledged_value_sends_nothing() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    sync_location(&mut q, a, 0.0, "plaza");
    q.set_location(20.0, a, "market").unwrap();
    q.set_location(21.0, a, "plaza").unwrap();
    assert_eq!(q.metrics().queue_depth, 0);
    assert_quiet(&mut q, 21.0, 200.0, 1.0);
    assert!(q.is_idle());
    // And the decision is fresh with nothing outstanding.
    assert_eq!(
        q.decide(a, 201.0).unwrap(),
        Decision::Fresh { staleness: 0.0 }
    );
}

#[test]
fn join_and_leave_of_a_member_the_backend_never_had_sends_nothing() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.join_group(0.1, a, "player_7", &[("role", Value::str("healer"))])
        .unwrap();
    q.leave_group(0.5, a, "player_7").unwrap();
    assert_eq!(q.metrics().queue_depth, 0);
    assert_quiet(&mut q, 0.5, 100.0, 0.5);
    assert!(q.is_idle());
}

#[test]
fn leave_of_a_member_the_backend_has_clears_every_field() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.join_group(0.0, a, "player_7", &[("role", Value::str("healer"))])
        .unwrap();
    let out = q.poll(1.0).unwrap();
    assert_eq!(
        out.len(),
        1,
        "group joins are high priority: out within 1 s"
    );
    assert_eq!(
        values(&q, &out[0]),
        [
            "npc-1/group_members.player_7.is_present=true",
            "npc-1/group_members.player_7.role=healer"
        ]
    );
    ack_all(&mut q, &out);
    q.leave_group(2.0, a, "player_7").unwrap();
    let out = q.poll(3.0).unwrap();
    assert_eq!(out.len(), 1);
    let mut v = values(&q, &out[0]);
    v.sort();
    assert_eq!(
        v,
        [
            "npc-1/group_members.player_7.is_present=<cleared>",
            "npc-1/group_members.player_7.role=<cleared>"
        ]
    );
}
