//! Rules of `docs/semantics.md`: removal, targets.

use super::*;

#[test]
fn agent_removal_is_reported() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.poll(0.0).unwrap();
    q.set_location(1.0, a, "plaza").unwrap();
    q.set_description(1.0, a, "tall").unwrap();
    q.set_location(1.0, b, "market").unwrap();
    q.chat(1.0, a, "p", "hi").unwrap();
    q.remove_agent(a).unwrap();
    assert_eq!(
        q.drain_events(),
        [Event::AgentRemoved {
            agent: a,
            name: "npc-1".into(),
            pending_fields: 2,
            chat_messages: 1
        }]
    );
    assert!(q.drain_events().is_empty());
    assert_eq!(q.metrics().agents_removed, 1);
    assert_eq!(
        q.set_location(2.0, a, "x"),
        Err(Error::AgentRemoved {
            agent: "npc-1".into()
        })
    );
    assert_eq!(
        q.remove_agent(a),
        Err(Error::AgentRemoved {
            agent: "npc-1".into()
        })
    );
    let out = q.poll(30.0).unwrap();
    assert_eq!(all_fields(&q, &out), ["npc-2/status.location"]);
    // The id can be registered again, as a new agent.
    let a2 = q.agent("npc-1").unwrap();
    assert_ne!(a2, a);
}

#[test]
fn removal_trims_a_pending_group_and_reports_it() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.poll(0.0).unwrap();
    q.atomic(
        1.0,
        &[
            npc_sync::Change::new(a, "status", "location", Value::str("cave")),
            npc_sync::Change::new(b, "status", "location", Value::str("cave")),
        ],
    )
    .unwrap();
    q.remove_agent(a).unwrap();
    let ev = q.drain_events();
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::GroupTrimmed { agent, .. } if *agent == a)));
    let out = q.poll(30.0).unwrap();
    assert_eq!(all_fields(&q, &out), ["npc-2/status.location"]);
}

#[test]
fn letta_api_counts_one_call_per_agent_block() {
    let mut q = queue_with(|c| c.target = Target::LettaApi);
    let agents: Vec<AgentId> = (0..3)
        .map(|i| q.agent(&format!("npc-{i}")).unwrap())
        .collect();
    q.poll(0.0).unwrap();
    for a in &agents {
        q.set_location(1.0, *a, "plaza").unwrap();
        q.set_description(1.0, *a, "tall").unwrap();
        q.set(
            1.0,
            npc_sync::Change::new(*a, "persona", "mood", Value::str("calm")),
        )
        .unwrap();
    }
    q.chat(29.0, agents[0], "p", "hi").unwrap();
    // npc-0's data is 29 s old at its chat: a freshness sync goes first.
    let out = q.poll(30.0).unwrap();
    for r in &out {
        let mut blocks: Vec<(AgentId, npc_sync::Sym)> =
            r.changes.iter().map(|c| (c.agent, c.block)).collect();
        blocks.sort();
        blocks.dedup();
        if r.kind != RequestKind::Inference {
            assert_eq!(r.calls as usize, blocks.len(), "one call per agent-block");
        }
    }
    let fields_calls: u32 = out
        .iter()
        .filter(|r| r.kind != RequestKind::Inference)
        .map(|r| r.calls)
        .sum();
    assert_eq!(fields_calls, 6, "3 agents x 2 blocks");
    // The inference goes once npc-0's sync is acknowledged.
    ack_all(&mut q, &out);
    let out = q.poll(30.1).unwrap();
    let inf: Vec<&Request> = out
        .iter()
        .filter(|r| r.kind == RequestKind::Inference)
        .collect();
    assert_eq!(inf.len(), 1);
    assert_eq!(inf[0].calls, 1);
    assert_eq!(q.metrics().calls, 7);
    assert_eq!(q.metrics().calls_last_minute, 7);
}
