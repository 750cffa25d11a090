//! Rules of `docs/semantics.md`: high, normal, low and the routine batch.

use super::*;

#[test]
fn high_priority_goes_out_within_1s() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.tool_result(5.0, a, "inventory", "sword", Value::Bool(true), false)
        .unwrap();
    q.tool_result(5.5, a, "inventory", "shield", Value::Bool(true), false)
        .unwrap();
    assert_quiet(&mut q, 5.5, 5.95, 0.05);
    let out = q.poll(6.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RequestKind::Batch);
    assert_eq!(
        all_fields(&q, &out),
        ["npc-1/inventory.sword", "npc-1/inventory.shield"],
        "coalesced: the second rides with the first"
    );
}

#[test]
fn normal_and_low_wait_for_the_30s_routine_batch() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    q.poll(0.0).unwrap();
    q.set_location(1.0, a, "plaza").unwrap();
    q.set(
        2.0,
        npc_sync::Change::new(a, "persona", "mood", Value::str("calm")).priority(Priority::Low),
    )
    .unwrap();
    assert_quiet(&mut q, 2.0, 29.9, 0.1);
    let out = q.poll(30.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        all_fields(&q, &out),
        ["npc-1/status.location", "npc-1/persona.mood"]
    );
    ack_all(&mut q, &out);
    // The next batch is 30 s later.
    q.set_location(31.0, a, "market").unwrap();
    assert_quiet(&mut q, 31.0, 59.9, 0.1);
    let out = q.poll(60.0).unwrap();
    assert_eq!(all_fields(&q, &out), ["npc-1/status.location"]);
}

#[test]
fn batch_orders_high_normal_low_then_change_order() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.poll(0.0).unwrap();
    let low = |agent, f| {
        npc_sync::Change::new(agent, "persona", f, Value::Number(1.0)).priority(Priority::Low)
    };
    q.set(1.0, low(a, "l1")).unwrap();
    q.set_location(2.0, b, "plaza").unwrap();
    q.tool_result(3.0, b, "inventory", "h1", Value::Bool(true), false)
        .unwrap();
    q.set(4.0, low(b, "l2")).unwrap();
    q.set_description(5.0, a, "tall").unwrap();
    q.tool_result(6.0, a, "inventory", "h2", Value::Bool(true), false)
        .unwrap();
    // Poll only when the routine batch is due, so everything goes in one batch.
    let out = q.poll(30.0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        all_fields(&q, &out),
        [
            "npc-2/inventory.h1",
            "npc-1/inventory.h2",
            "npc-2/status.location",
            "npc-1/status.description",
            "npc-1/persona.l1",
            "npc-2/persona.l2",
        ]
    );
}
