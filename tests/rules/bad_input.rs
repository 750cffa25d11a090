//! Rules of `docs/semantics.md`: bad input: an error that names the problem, and the queue unchanged.

use super::*;

struct Scenario {
    q: Queue,
    a: AgentId,
    b: AgentId,
    removed: AgentId,
    removed_change: ChangeId,
    in_flight: RequestId,
}

/// A queue with pending, in-flight and acknowledged state, a removed agent, chat waiting.
fn scenario() -> Scenario {
    let mut q = queue();
    let a = q.agent("npc-a").unwrap();
    let b = q.agent("npc-b").unwrap();
    let removed = q.agent("npc-gone").unwrap();
    q.poll(0.0).unwrap();
    q.set_location(0.0, a, "plaza").unwrap();
    q.set_health(0.0, a, 100.0).unwrap();
    let removed_change = q.set_location(0.0, removed, "void").unwrap();
    q.set_state(1.0, b, "Combat").unwrap();
    let out = q.poll(1.0).unwrap();
    assert_eq!(out.len(), 1);
    let in_flight = out[0].id;
    q.set_location(2.0, b, "arena").unwrap();
    q.join_group(2.0, a, "player_1", &[("role", Value::str("tank"))])
        .unwrap();
    q.chat(2.0, a, "player_1", "hi").unwrap();
    q.remove_agent(removed).unwrap();
    q.drain_events();
    Scenario {
        q,
        a,
        b,
        removed,
        removed_change,
        in_flight,
    }
}

/// Everything observable from here on, as text: metrics, events, and what a fixed script
/// of polls, acks, decisions and changes produces.
fn observe(mut s: Scenario) -> String {
    let q = &mut s.q;
    let mut log = format!("{:?}\n{:?}\n", q.metrics(), q.drain_events());
    log += &format!(
        "{:?} {:?}\n",
        q.local_value(s.a, "status", "location"),
        q.acked_value(s.b, "status", "state")
    );
    let mut t = 2.0;
    let mut acked_first = false;
    while t < 100.0 {
        let out = q.poll(t).unwrap();
        for r in &out {
            log += &format!("{t}: {r:?}\n");
            q.ack(r.id, &[]).unwrap();
        }
        if !acked_first && t >= 3.0 {
            q.ack(s.in_flight, &[]).unwrap();
            acked_first = true;
        }
        if ((t * 4.0) as u32).is_multiple_of(20) {
            log += &format!("{:?} {:?}\n", q.decide(s.a, t), q.decide(s.b, t));
        }
        t += 0.25;
    }
    log += &format!("{:?}\n{:?}\n", q.metrics(), q.drain_events());
    log
}

fn assert_refused_unchanged(
    what: &str,
    bad: impl FnOnce(&mut Scenario) -> Result<(), Error>,
    check: impl FnOnce(&Error) -> bool,
) {
    let mut s = scenario();
    let before_metrics = s.q.metrics();
    let e = bad(&mut s).expect_err(what);
    assert!(check(&e), "{what}: unexpected error {e:?}");
    assert!(!e.to_string().is_empty());
    assert_eq!(s.q.metrics(), before_metrics, "{what}: metrics changed");
    assert_eq!(observe(s), observe(scenario()), "{what}: queue changed");
}

#[test]
fn bad_numbers_are_refused() {
    for h in [f64::NAN, -1.0, f64::INFINITY] {
        assert_refused_unchanged(
            "bad health",
            |s| s.q.set_health(3.0, s.a, h).map(|_| ()),
            |e| matches!(e, Error::BadNumber { agent, field, .. } if agent == "npc-a" && field == "status.health"),
        );
    }
    assert_refused_unchanged(
        "NaN value",
        |s| {
            s.q.set(
                3.0,
                npc_sync::Change::new(s.b, "persona", "mood", Value::Number(f64::NAN)),
            )
            .map(|_| ())
        },
        |e| matches!(e, Error::BadNumber { field, .. } if field == "persona.mood"),
    );
    assert_refused_unchanged(
        "NaN in a joined member's field",
        |s| {
            s.q.join_group(3.0, s.b, "player_9", &[("hp", Value::Number(f64::NAN))])
                .map(|_| ())
        },
        |e| matches!(e, Error::BadNumber { field, .. } if field.contains("player_9.hp")),
    );
    assert_refused_unchanged(
        "NaN in an ack's confirmed state",
        |s| {
            s.q.ack(
                s.in_flight,
                &[Confirmed {
                    agent: s.b,
                    block: "status".into(),
                    field: "state".into(),
                    value: Value::Number(f64::NAN),
                    seq: Seq(1),
                }],
            )
        },
        |e| matches!(e, Error::BadNumber { .. }),
    );
}

#[test]
fn bad_times_are_refused() {
    for t in [f64::NAN, -1.0, f64::INFINITY] {
        assert_refused_unchanged(
            "bad time in set",
            |s| s.q.set_location(t, s.a, "x").map(|_| ()),
            |e| matches!(e, Error::BadTime { what: "now", .. }),
        );
        assert_refused_unchanged(
            "bad time in poll",
            |s| s.q.poll(t).map(|_| ()),
            |e| matches!(e, Error::BadTime { .. }),
        );
        assert_refused_unchanged(
            "bad time in decide",
            |s| s.q.decide(s.a, t).map(|_| ()),
            |e| matches!(e, Error::BadTime { .. }),
        );
        assert_refused_unchanged(
            "bad time in fail",
            |s| s.q.fail(t, s.in_flight, None),
            |e| matches!(e, Error::BadTime { .. }),
        );
        assert_refused_unchanged(
            "bad time in chat",
            |s| s.q.chat(t, s.a, "p", "hi"),
            |e| matches!(e, Error::BadTime { .. }),
        );
    }
    for ra in [f64::NAN, -1.0, f64::INFINITY] {
        assert_refused_unchanged(
            "bad retry-after",
            |s| s.q.fail(3.0, s.in_flight, Some(ra)),
            |e| matches!(e, Error::BadRetryAfter { .. }),
        );
    }
}

#[test]
fn time_going_backwards_is_refused() {
    let backwards = |e: &Error| matches!(e, Error::TimeWentBackwards { now, latest } if *now == 1.5 && *latest == 2.0);
    assert_refused_unchanged(
        "set",
        |s| s.q.set_location(1.5, s.a, "x").map(|_| ()),
        backwards,
    );
    assert_refused_unchanged(
        "health",
        |s| s.q.set_health(1.5, s.a, 50.0).map(|_| ()),
        backwards,
    );
    assert_refused_unchanged(
        "state",
        |s| s.q.set_state(1.5, s.a, "Combat").map(|_| ()),
        backwards,
    );
    assert_refused_unchanged("poll", |s| s.q.poll(1.5).map(|_| ()), backwards);
    assert_refused_unchanged("decide", |s| s.q.decide(s.a, 1.5).map(|_| ()), backwards);
    assert_refused_unchanged("fail", |s| s.q.fail(1.5, s.in_flight, None), backwards);
    assert_refused_unchanged("chat", |s| s.q.chat(1.5, s.a, "p", "x"), backwards);
    assert_refused_unchanged(
        "leave",
        |s| s.q.leave_group(1.5, s.a, "player_1").map(|_| ()),
        backwards,
    );
    assert_refused_unchanged(
        "atomic",
        |s| {
            s.q.atomic(
                1.5,
                &[npc_sync::Change::new(s.a, "b", "f", Value::Bool(true))],
            )
            .map(|_| ())
        },
        backwards,
    );
}

#[test]
fn unknown_handles_are_refused() {
    let mut other = queue();
    let mut foreign = other.agent("x").unwrap();
    for i in 0..9 {
        foreign = other.agent(&format!("x{i}")).unwrap();
    }
    let mut foreign_change = None;
    for i in 0..50 {
        foreign_change = Some(other.set_location(0.0, foreign, &format!("l{i}")).unwrap());
    }
    let foreign_change = foreign_change.unwrap();
    let unknown_agent = |e: &Error| matches!(e, Error::UnknownAgent { index: 9 });
    assert_refused_unchanged(
        "set",
        |s| s.q.set_location(3.0, foreign, "x").map(|_| ()),
        unknown_agent,
    );
    assert_refused_unchanged(
        "health",
        |s| s.q.set_health(3.0, foreign, 5.0).map(|_| ()),
        unknown_agent,
    );
    assert_refused_unchanged(
        "decide",
        |s| s.q.decide(foreign, 3.0).map(|_| ()),
        unknown_agent,
    );
    assert_refused_unchanged("chat", |s| s.q.chat(3.0, foreign, "p", "x"), unknown_agent);
    assert_refused_unchanged("remove", |s| s.q.remove_agent(foreign), unknown_agent);
    assert_refused_unchanged(
        "join",
        |s| s.q.join_group(3.0, foreign, "m", &[]).map(|_| ()),
        unknown_agent,
    );
    assert_refused_unchanged(
        "unknown dependency",
        |s| {
            s.q.set(
                3.0,
                npc_sync::Change::new(s.a, "status", "x", Value::Bool(true)).after(foreign_change),
            )
            .map(|_| ())
        },
        |e| matches!(e, Error::UnknownChange { seq } if *seq == foreign_change.seq().0),
    );
    assert_refused_unchanged(
        "dependency on a removed agent's change",
        |s| {
            let c = npc_sync::Change::new(s.a, "status", "x", Value::Bool(true))
                .after(s.removed_change);
            s.q.set(3.0, c).map(|_| ())
        },
        |e| matches!(e, Error::DependencyRemoved { .. }),
    );
    assert_refused_unchanged(
        "removed agent",
        |s| s.q.set_location(3.0, s.removed, "x").map(|_| ()),
        |e| matches!(e, Error::AgentRemoved { agent } if agent == "npc-gone"),
    );
    assert_refused_unchanged(
        "decide on a removed agent",
        |s| s.q.decide(s.removed, 3.0).map(|_| ()),
        |e| matches!(e, Error::AgentRemoved { agent } if agent == "npc-gone"),
    );
    assert_refused_unchanged(
        "ack confirming the field of an agent handle never issued",
        |s| {
            s.q.ack(
                s.in_flight,
                &[Confirmed {
                    agent: AgentId::from_index(999),
                    block: "status".into(),
                    field: "location".into(),
                    value: Value::str("void"),
                    seq: Seq(1),
                }],
            )
        },
        |e| matches!(e, Error::UnknownAgent { index: 999 }),
    );
}

#[test]
fn unknown_request_ids_are_refused() {
    let unknown = |e: &Error| matches!(e, Error::UnknownRequest { request } if request.0 == 999);
    assert_refused_unchanged("ack", |s| s.q.ack(RequestId(999), &[]), unknown);
    assert_refused_unchanged("fail", |s| s.q.fail(3.0, RequestId(999), None), unknown);
    // A request already reported is no longer known.
    let mut s = scenario();
    s.q.ack(s.in_flight, &[]).unwrap();
    assert_eq!(
        s.q.ack(s.in_flight, &[]),
        Err(Error::UnknownRequest {
            request: s.in_flight
        })
    );
    assert_eq!(
        s.q.fail(3.0, s.in_flight, None),
        Err(Error::UnknownRequest {
            request: s.in_flight
        })
    );
}

#[test]
fn bad_atomic_groups_are_refused() {
    assert_refused_unchanged(
        "group naming a removed agent",
        |s| {
            s.q.atomic(
                3.0,
                &[
                    npc_sync::Change::new(s.a, "status", "location", Value::str("cave")),
                    npc_sync::Change::new(s.removed, "status", "location", Value::str("cave")),
                ],
            )
            .map(|_| ())
        },
        |e| matches!(e, Error::BadGroup { reason } if reason.contains("npc-gone") && reason.contains("removed")),
    );
    assert_refused_unchanged(
        "empty group",
        |s| s.q.atomic(3.0, &[]).map(|_| ()),
        |e| matches!(e, Error::BadGroup { .. }),
    );
    assert_refused_unchanged(
        "a field twice",
        |s| {
            s.q.atomic(
                3.0,
                &[
                    npc_sync::Change::new(s.a, "status", "location", Value::str("cave")),
                    npc_sync::Change::new(s.a, "status", "location", Value::str("hill")),
                ],
            )
            .map(|_| ())
        },
        |e| matches!(e, Error::BadGroup { reason } if reason.contains("status.location")),
    );
    assert_refused_unchanged(
        "group over the size cap",
        |s| {
            let big = "y".repeat(16 * 1024);
            let fields: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
            let changes: Vec<npc_sync::Change> = fields
                .iter()
                .map(|f| npc_sync::Change::new(s.a, "notes", f, Value::str(&big)))
                .collect();
            s.q.atomic(3.0, &changes).map(|_| ())
        },
        |e| matches!(e, Error::BadGroup { reason } if reason.contains("max_request_bytes")),
    );
}

#[test]
fn over_long_and_empty_strings_are_refused() {
    let long_name = "n".repeat(257);
    let long_value = "v".repeat(16 * 1024 + 1);
    let long_chat = "c".repeat(2 * 1024 + 1);
    assert_refused_unchanged(
        "agent id",
        |s| s.q.agent(&long_name).map(|_| ()),
        |e| {
            matches!(
                e,
                Error::BadString {
                    what: "agent id",
                    len: 257,
                    ..
                }
            )
        },
    );
    assert_refused_unchanged(
        "empty agent id",
        |s| s.q.agent("").map(|_| ()),
        |e| {
            matches!(
                e,
                Error::BadString {
                    what: "agent id",
                    len: 0,
                    ..
                }
            )
        },
    );
    assert_refused_unchanged(
        "block label",
        |s| {
            s.q.set(
                3.0,
                npc_sync::Change::new(s.a, &long_name, "f", Value::Bool(true)),
            )
            .map(|_| ())
        },
        |e| {
            matches!(
                e,
                Error::BadString {
                    what: "block label",
                    ..
                }
            )
        },
    );
    assert_refused_unchanged(
        "field name",
        |s| {
            s.q.set(3.0, npc_sync::Change::new(s.a, "b", "", Value::Bool(true)))
                .map(|_| ())
        },
        |e| {
            matches!(
                e,
                Error::BadString {
                    what: "field name",
                    ..
                }
            )
        },
    );
    assert_refused_unchanged(
        "string value",
        |s| s.q.set_location(3.0, s.a, &long_value).map(|_| ()),
        |e| {
            matches!(
                e,
                Error::BadString {
                    what: "string value",
                    ..
                }
            )
        },
    );
    assert_refused_unchanged(
        "chat text",
        |s| s.q.chat(3.0, s.a, "p", &long_chat),
        |e| {
            matches!(
                e,
                Error::BadString {
                    what: "chat text",
                    ..
                }
            )
        },
    );
    assert_refused_unchanged(
        "chat sender",
        |s| s.q.chat(3.0, s.a, &long_name, "x"),
        |e| {
            matches!(
                e,
                Error::BadString {
                    what: "chat sender",
                    ..
                }
            )
        },
    );
    assert_refused_unchanged(
        "group member",
        |s| s.q.leave_group(3.0, s.a, &long_name).map(|_| ()),
        |e| {
            matches!(
                e,
                Error::BadString {
                    what: "group member",
                    ..
                }
            )
        },
    );
    assert_refused_unchanged(
        "joined member's field",
        |s| {
            s.q.join_group(3.0, s.b, "m", &[(long_name.as_str(), Value::Bool(true))])
                .map(|_| ())
        },
        |e| matches!(e, Error::BadString { .. }),
    );
}

#[test]
fn bad_config_is_refused_with_the_setting_named() {
    type Case = (&'static str, Box<dyn Fn(&mut Config)>);
    let cases: Vec<Case> = vec![
        ("debounce_s", Box::new(|c| c.debounce_s = -1.0)),
        ("freshness_s", Box::new(|c| c.freshness_s = f64::NAN)),
        ("freshness_s", Box::new(|c| c.freshness_s = 4.0)),
        ("batch_interval_s", Box::new(|c| c.batch_interval_s = 0.0)),
        ("budget_per_minute", Box::new(|c| c.budget_per_minute = 600)),
        ("routine_share", Box::new(|c| c.routine_share = 1.2)),
        ("routine_share", Box::new(|c| c.routine_share = -0.1)),
        (
            "max_request_bytes",
            Box::new(|c| c.max_request_bytes = 1024),
        ),
        (
            "max_agent_blocks_per_request",
            Box::new(|c| c.max_agent_blocks_per_request = 0),
        ),
        ("chat_max_messages", Box::new(|c| c.chat_max_messages = 0)),
        ("retry_max_s", Box::new(|c| c.retry_max_s = 0.1)),
        (
            "combat_exit_s",
            Box::new(|c| c.combat_exit_s = f64::INFINITY),
        ),
        ("chat_window_s", Box::new(|c| c.chat_window_s = -0.5)),
        (
            "health_critical_points",
            Box::new(|c| c.health_critical_points = f64::NAN),
        ),
    ];
    for (setting, f) in cases {
        let mut c = Config::default();
        f(&mut c);
        match Queue::new(c) {
            Err(Error::Config(e)) => {
                assert_eq!(e.setting, setting);
                assert!(e.to_string().contains(setting));
            }
            Err(e) => panic!("{setting}: {e:?}"),
            Ok(_) => panic!("{setting}: accepted"),
        }
    }
}
