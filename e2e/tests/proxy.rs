//! The fault-injecting proxy against a real backend (the harness's server): what it
//! forwards, what the client gets, what it records, and that a seed repeats its faults.

use npc_sync_e2e::faults::{Fault, FaultPlan, FaultRates};
use npc_sync_e2e::proxy::{Proxy, ProxyConfig, SimClock};
use npc_sync_e2e::wire::{self, Message};
use npc_sync_luau_harness::server::TestServer;
use std::net::SocketAddr;
use std::time::Duration;

fn addr(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().unwrap()
}

fn proxy(upstream: &TestServer, seed: u64, rates: FaultRates, clock: SimClock) -> Proxy {
    Proxy::start(
        ProxyConfig {
            upstream: addr(&upstream.base),
            plan: FaultPlan { seed, rates },
            slow_delay: Duration::from_millis(400),
            upstream_timeout: Duration::from_secs(5),
        },
        clock,
    )
    .unwrap()
}

fn patch(p: &Proxy, agent: &str, text: &str, timeout_ms: u64) -> Result<Message, String> {
    let body = serde_json::json!({ "value": text })
        .to_string()
        .into_bytes();
    wire::exchange(
        addr(&p.base),
        &Message {
            method: "PATCH".into(),
            path: format!("/v1/agents/{agent}/core-memory/blocks/status"),
            headers: vec![("x-e2e-time".into(), "12.5".into())],
            body,
            ..Message::default()
        },
        Duration::from_millis(timeout_ms),
    )
}

#[test]
fn passes_requests_through_and_records_them() {
    let letta = TestServer::start();
    let clock = SimClock::default();
    clock.set(3.0);
    let p = proxy(&letta, 1, FaultRates::OFF, clock);
    let a = patch(&p, "a", "health: 62", 2000).unwrap();
    assert_eq!(a.status, 200);
    letta.with(|s| {
        assert_eq!(
            s.blocks[&("a".to_string(), "status".to_string())],
            "health: 62"
        );
        // the simulated-time header is the proxy's, never the backend's
        assert!(!s.log[0].headers.contains_key("x-e2e-time"));
    });
    let r = p.settle(Duration::from_secs(2));
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].time, r[0].fault, r[0].client_status),
        (12.5, Fault::Pass, Some(200))
    );
    assert_eq!(r[0].path, "/v1/agents/a/core-memory/blocks/status");
}

#[test]
fn a_lost_response_is_applied_but_never_answered() {
    let letta = TestServer::start();
    let rates = FaultRates {
        lost_response: 1.0,
        ..FaultRates::OFF
    };
    let p = proxy(&letta, 1, rates, SimClock::default());
    assert!(patch(&p, "a", "health: 40", 2000).is_err());
    letta.with(|s| {
        assert_eq!(
            s.blocks[&("a".to_string(), "status".to_string())],
            "health: 40"
        )
    });
    let r = p.settle(Duration::from_secs(2));
    assert_eq!(
        (r[0].upstream_status, r[0].client_status),
        (Some(200), None)
    );
}

#[test]
fn refusals_are_not_forwarded_and_slow_answers_come_too_late() {
    let letta = TestServer::start();
    let too_many = FaultRates {
        too_many: 1.0,
        ..FaultRates::OFF
    };
    let p = proxy(&letta, 1, too_many, SimClock::default());
    let a = patch(&p, "a", "health: 1", 2000).unwrap();
    assert_eq!(a.status, 429);
    let ra: u32 = a.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3).contains(&ra));
    let dropped = FaultRates {
        dropped: 1.0,
        ..FaultRates::OFF
    };
    let p2 = proxy(&letta, 1, dropped, SimClock::default());
    assert!(patch(&p2, "a", "health: 2", 2000).is_err());
    letta.with(|s| assert!(s.log.is_empty(), "nothing reached the backend"));

    let slow = FaultRates {
        slow: 1.0,
        ..FaultRates::OFF
    };
    let p3 = proxy(&letta, 1, slow, SimClock::default());
    // the client's timeout (200 ms) is shorter than the proxy's hold (400 ms)
    assert!(patch(&p3, "b", "health: 3", 200).is_err());
    letta.with(|s| {
        assert_eq!(
            s.blocks[&("b".to_string(), "status".to_string())],
            "health: 3"
        )
    });
    let r = p3.settle(Duration::from_secs(2));
    assert_eq!((r[0].fault, r[0].client_status), (Fault::Slow, None));
}

#[test]
fn the_same_seed_repeats_the_same_faults() {
    let run = |seed: u64| -> Vec<Fault> {
        let letta = TestServer::start();
        let p = proxy(&letta, seed, FaultRates::ON, SimClock::default());
        for i in 0..60 {
            // the same request twice: a retry draws again
            let _ = patch(&p, &format!("npc-{}", i / 2), "x: 1", 1000);
        }
        p.settle(Duration::from_secs(3))
            .iter()
            .map(|r| r.fault)
            .collect()
    };
    let a = run(5);
    assert_eq!(a.len(), 60);
    assert!(
        a.iter().any(|f| *f != Fault::Pass),
        "faults on: some requests fail"
    );
    assert_eq!(a, run(5));
    assert_ne!(a, run(6));
}
