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
    // Every agent moves every frame meanwhile: the batch is the changes pending when it
    // was due (their fields' latest values), and it ends; later changes only ride along
    // (the last request's free room: 50 of the first poll's agents moved again), then
    // wait for the next batch.
    let mut sizes: Vec<Vec<usize>> = Vec::new();
    let mut now = 30.0;
    for i in 0..5 {
        let out = q.poll(now).unwrap();
        sizes.push(out.iter().map(|r| r.changes.len()).collect());
        now += 1.0 / 60.0;
        locate_all(&mut q, &agents, now, ["gate", "plaza"][i % 2]);
    }
    assert_eq!(sizes, [vec![100], vec![100], vec![100], vec![], vec![]]);
    assert!(q.poll(59.0).unwrap().is_empty());
    assert_eq!(
        q.poll(61.0).unwrap().len(),
        1,
        "the next batch, a request a poll"
    );
    // A flush is not held by it (a server shutting down sends everything it may).
    let mut q = Queue::new(Config {
        batch_requests_per_poll: 1,
        ..Config::default()
    })
    .unwrap();
    let all = common::agents(&mut q, 250);
    q.poll(0.0).unwrap();
    locate_all(&mut q, &all, 1.0, "plaza");
    let out = q.flush(2.0).unwrap();
    let sizes: Vec<usize> = out.iter().map(|r| r.changes.len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
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
