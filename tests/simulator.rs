//! The simulator's acceptance runs: the figures the README reports, checked on every test
//! run. Each run plays a scenario against a simulated backend that judges the queue
//! independently (its own record of the game's changes, its own sequence-number rule).

use std::process::Command;

fn sim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_npc-sync-sim"))
        .args(args)
        .output()
        .expect("run npc-sync-sim");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The run's JSON object (last line of stdout) as (key, raw value) pairs.
struct Report(String);

impl Report {
    fn run(args: &[&str]) -> Report {
        let mut all = args.to_vec();
        all.push("--json");
        let (code, out, err) = sim(&all);
        assert_eq!(code, 0, "npc-sync-sim {args:?} failed: {err}");
        let last = out.lines().last().expect("output").to_string();
        assert!(last.starts_with('{') && last.ends_with('}'), "{last}");
        Report(last)
    }

    fn raw(&self, key: &str) -> &str {
        let pat = format!("\"{key}\":");
        let i = self
            .0
            .find(&pat)
            .unwrap_or_else(|| panic!("{key} missing in {}", self.0))
            + pat.len();
        let rest = &self.0[i..];
        let end = rest.find([',', '}']).expect("value end");
        &rest[..end]
    }

    fn num(&self, key: &str) -> f64 {
        self.raw(key)
            .parse()
            .unwrap_or_else(|_| panic!("{key} is not a number: {}", self.0))
    }

    fn assert_no_violation(&self) {
        for k in [
            "lost",
            "stale_overwrites",
            "split_groups",
            "dependency_violations",
            "freshness_violations",
        ] {
            assert_eq!(self.num(k), 0.0, "{k} in {}", self.0);
        }
        assert_eq!(self.raw("converged"), "true", "{}", self.0);
        assert!(self.num("max_requests_per_min") <= 400.0, "{}", self.0);
    }
}

#[test]
fn combat_100_npcs_600_s_meets_the_targets() {
    let r = Report::run(&["--scenario", "combat", "--npcs", "100", "--seconds", "600"]);
    r.assert_no_violation();
    assert!(r.num("reduction") >= 0.95, "{}", r.0);
    assert!(r.num("decision_staleness_max_combat_s") <= 1.0, "{}", r.0);
    assert!(r.num("decision_staleness_max_s") <= 15.0, "{}", r.0);
    assert!(
        r.num("decisions") > 10_000.0,
        "NPCs must actually decide: {}",
        r.0
    );
    assert!(r.num("critical_latency_p99_s") <= 1.0, "{}", r.0);
}

#[test]
fn combat_with_30_percent_failures_loses_nothing() {
    let r = Report::run(&[
        "--scenario",
        "combat",
        "--npcs",
        "100",
        "--seconds",
        "600",
        "--fail-rate",
        "0.3",
    ]);
    r.assert_no_violation();
    assert!(
        r.num("failures") > 100.0,
        "failures must really happen: {}",
        r.0
    );
    assert!(r.num("decision_staleness_max_combat_s") <= 1.0, "{}", r.0);
}

#[test]
fn mixed_300_npcs_stays_in_budget() {
    let r = Report::run(&["--scenario", "mixed", "--npcs", "300", "--seconds", "600"]);
    r.assert_no_violation();
    assert!(r.num("groups_delivered") > 100.0, "{}", r.0);
    assert!(r.num("dependencies_delivered") > 100.0, "{}", r.0);
}

#[test]
fn every_scenario_survives_failures_and_retry_after() {
    let (code, list, _) = sim(&["--list-scenarios"]);
    assert_eq!(code, 0);
    let scenarios: Vec<&str> = list.lines().collect();
    assert_eq!(scenarios.len(), 6, "{list}");
    for scenario in scenarios {
        for seed in ["1", "2"] {
            let r = Report::run(&[
                "--scenario",
                scenario,
                "--npcs",
                "40",
                "--seconds",
                "120",
                "--fail-rate",
                "0.4",
                "--seed",
                seed,
            ]);
            r.assert_no_violation();
        }
    }
}

#[test]
fn same_seed_same_output_other_seed_other_output() {
    let args = [
        "--scenario",
        "mixed",
        "--npcs",
        "30",
        "--seconds",
        "60",
        "--fail-rate",
        "0.2",
    ];
    let a = Report::run(&args);
    let b = Report::run(&args);
    assert_eq!(a.0, b.0);
    let mut other = args.to_vec();
    other.extend(["--seed", "99"]);
    let c = Report::run(&other);
    assert_ne!(a.0, c.0);
}

#[test]
fn bad_arguments_are_named() {
    let (code, _, err) = sim(&["--scenario", "siege", "--npcs", "5", "--seconds", "5"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown scenario 'siege'"), "{err}");
    let (code, _, err) = sim(&["--scenario", "combat", "--npcs", "0", "--seconds", "5"]);
    assert_eq!(code, 2);
    assert!(err.contains("--npcs"), "{err}");
    let (code, _, err) = sim(&[
        "--scenario",
        "combat",
        "--npcs",
        "5",
        "--seconds",
        "5",
        "--fail-rate",
        "1",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--fail-rate"), "{err}");
    let (code, _, err) = sim(&["--scenario", "combat", "--npcs", "5"]);
    assert_eq!(code, 2);
    assert!(err.contains("--seconds"), "{err}");
}
