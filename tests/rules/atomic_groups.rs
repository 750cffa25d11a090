//! Rules of `docs/semantics.md`: atomic groups.

use super::*;

#[test]
fn atomic_group_across_blocks_and_agents_travels_whole_in_order() {
    let mut q = queue();
    let a = q.agent("npc-1").unwrap();
    let b = q.agent("npc-2").unwrap();
    q.poll(0.0).unwrap();
    q.set_location(0.5, b, "somewhere").unwrap();
    let ids = q
        .atomic(
            1.0,
            &[
                npc_sync::Change::new(a, "status", "location", Value::str("cave")),
                npc_sync::Change::new(a, "status", "state", Value::str("Exploring")),
                npc_sync::Change::new(b, "group_members", "npc-1.is_present", Value::Bool(true)),
                npc_sync::Change::new(a, "group_members", "npc-2.is_present", Value::Bool(true)),
            ],
        )
        .unwrap();
    assert_eq!(ids.len(), 4);
    assert!(ids.windows(2).all(|w| w[0].seq() < w[1].seq()));
    let out = q.poll(30.0).unwrap();
    assert_eq!(out.len(), 1);
    let f = fields(&q, &out[0]);
    assert_eq!(
        f,
        [
            "npc-2/status.location",
            "npc-1/status.location",
            "npc-1/status.state",
            "npc-2/group_members.npc-1.is_present",
            "npc-1/group_members.npc-2.is_present",
        ]
    );
    let g = out[0].changes[1].group;
    assert!(g.is_some());
    assert!(out[0].changes[1..].iter().all(|c| c.group == g));
    assert_eq!(out[0].changes[0].group, None);
}

#[test]
fn atomic_group_is_never_split_across_the_agent_block_cap() {
    let mut q = queue();
    let agents = agents(&mut q, 160);
    q.poll(0.0).unwrap();
    // 95 agent-blocks first, then a group of 12 agent-blocks, then 60 more.
    for a in &agents[..95] {
        q.set_location(1.0, *a, "plaza").unwrap();
    }
    let group: Vec<npc_sync::Change> = agents[95..107]
        .iter()
        .map(|a| npc_sync::Change::new(*a, "mood", "value", Value::str("alert")))
        .collect();
    let ids = q.atomic(2.0, &group).unwrap();
    for a in &agents[100..160] {
        q.set_location(3.0, *a, "market").unwrap();
    }
    let out = q.poll(30.0).unwrap();
    assert!(out.len() >= 2);
    let mut total = 0;
    let mut holders = Vec::new();
    for (i, r) in out.iter().enumerate() {
        let mut blocks: Vec<(AgentId, npc_sync::Sym)> =
            r.changes.iter().map(|c| (c.agent, c.block)).collect();
        blocks.sort();
        blocks.dedup();
        assert!(
            blocks.len() <= 100,
            "request {i} has {} blocks",
            blocks.len()
        );
        total += r.changes.len();
        let seqs: Vec<Seq> = r.changes.iter().map(|c| c.seq).collect();
        let pos: Vec<usize> = ids
            .iter()
            .filter_map(|id| seqs.iter().position(|s| *s == id.seq()))
            .collect();
        if !pos.is_empty() {
            holders.push(i);
            assert_eq!(pos.len(), ids.len(), "group split");
            assert!(
                pos.windows(2).all(|w| w[1] == w[0] + 1),
                "group not contiguous / in order: {pos:?}"
            );
        }
    }
    assert_eq!(holders.len(), 1);
    assert_eq!(total, 95 + 12 + 60);
}

#[test]
fn atomic_group_bigger_than_the_caps_is_refused() {
    let mut q = queue_with(|c| c.max_agent_blocks_per_request = 3);
    let agents: Vec<AgentId> = (0..4)
        .map(|i| q.agent(&format!("npc-{i}")).unwrap())
        .collect();
    let group: Vec<npc_sync::Change> = agents
        .iter()
        .map(|a| npc_sync::Change::new(*a, "mood", "value", Value::str("alert")))
        .collect();
    match q.atomic(0.0, &group) {
        Err(Error::BadGroup { reason }) => {
            assert!(reason.contains("max_agent_blocks_per_request"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(q.metrics().changes_in, 0);
}
