//! Rules of `docs/semantics.md`: request size.

use super::*;

#[test]
fn more_than_100_agent_blocks_become_several_requests() {
    let mut q = queue();
    let agents = agents(&mut q, 250);
    q.poll(0.0).unwrap();
    locate_all(&mut q, &agents, 1.0, "plaza");
    // At most `batch_requests_per_poll` (2) requests a poll: the third goes a frame later.
    let out = q.poll(30.0).unwrap();
    let sizes: Vec<usize> = out.iter().map(|r| r.changes.len()).collect();
    assert_eq!(sizes, [100, 100]);
    assert!(out.iter().all(|r| r.calls == 1));
    let next = q.poll(30.0 + 1.0 / 60.0).unwrap();
    let sizes: Vec<usize> = next.iter().map(|r| r.changes.len()).collect();
    assert_eq!(sizes, [50]);
    // The batch is whole: the next one is due 30 s after its last request went.
    locate_all(&mut q, &agents, 31.0, "gate");
    assert!(q.poll(60.0).unwrap().is_empty());
    assert_eq!(q.poll(61.0).unwrap().len(), 2);
}

#[test]
fn a_routine_batch_goes_over_as_many_polls_as_it_needs() {
    let mut q = Queue::new(Config {
        batch_requests_per_poll: 1,
        ..Config::default()
    })
    .unwrap();
    let agents = agents(&mut q, 250);
    q.poll(0.0).unwrap();
    locate_all(&mut q, &agents, 1.0, "plaza");
    let mut sizes = Vec::new();
    let mut now = 30.0;
    for _ in 0..4 {
        sizes.push(
            q.poll(now)
                .unwrap()
                .iter()
                .map(|r| r.changes.len())
                .collect::<Vec<_>>(),
        );
        now += 1.0 / 60.0;
    }
    assert_eq!(sizes, [vec![100], vec![100], vec![50], vec![]]);
    // A flush is not held by it (a server shutting down sends everything it may).
    locate_all(&mut q, &agents, now, "gate");
    let out = q.flush(now).unwrap();
    assert_eq!(
        out.iter().map(|r| r.changes.len()).collect::<Vec<_>>(),
        [100, 100, 50]
    );
}

#[test]
fn bodies_over_64_kib_become_several_requests() {
    let mut q = queue();
    let agents: Vec<AgentId> = (0..10)
        .map(|i| q.agent(&format!("npc-{i}")).unwrap())
        .collect();
    q.poll(0.0).unwrap();
    let big = "x".repeat(10 * 1024);
    for a in &agents {
        q.set_description(1.0, *a, &big).unwrap();
    }
    let out = q.poll(30.0).unwrap();
    assert!(out.len() >= 2, "{} requests", out.len());
    assert!(out.iter().all(|r| r.body_bytes <= 64 * 1024));
    assert_eq!(out.iter().map(|r| r.changes.len()).sum::<usize>(), 10);
    // The estimate is an upper bound of a real JSON body.
    for r in &out {
        let real: usize = r
            .changes
            .iter()
            .map(|c| {
                format!(
                    r#"{{"agent":"{}","block":"{}","field":"{}","value":{:?},"seq":{}}},"#,
                    q.text(c.agent_name),
                    q.text(c.block),
                    q.text(c.field),
                    c.value,
                    c.seq.0
                )
                .len()
            })
            .sum();
        assert!(real <= r.body_bytes as usize);
    }
}
