//! The demo's summary table, computed once from a timeline and shown twice (the terminal
//! and the report).

use crate::timeline::Timeline;

/// One line of the table: what, and its value as text.
pub type Row = (String, String);

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The most HTTP calls in any 60 consecutive seconds of the timeline.
pub fn peak_calls_per_minute(t: &Timeline) -> f64 {
    let calls: Vec<f64> = t.seconds.iter().map(|s| s.calls).collect();
    let mut sum = 0.0;
    let mut peak: f64 = 0.0;
    for (i, c) in calls.iter().enumerate() {
        sum += c;
        if i >= 60 {
            sum -= calls[i - 60];
        }
        peak = peak.max(sum);
    }
    peak
}

fn or_na(v: Option<f64>, fmt: impl Fn(f64) -> String) -> String {
    v.map_or("n/a".to_string(), fmt)
}

/// The table: requests naive against npc-sync, budget used, staleness at decisions,
/// critical latency, losses.
pub fn rows(t: &Timeline) -> Vec<Row> {
    let naive: f64 = t.seconds.iter().map(|s| s.naive).sum();
    let requests: f64 = t.seconds.iter().map(|s| s.requests).sum();
    let calls: f64 = t.seconds.iter().map(|s| s.calls).sum();
    let peak = peak_calls_per_minute(t);
    let mut stale: Vec<f64> = t.decisions.iter().map(|d| d.staleness_s).collect();
    stale.sort_by(f64::total_cmp);
    let combat_max = t
        .decisions
        .iter()
        .filter(|d| d.combat)
        .map(|d| d.staleness_s)
        .fold(0.0, f64::max);
    let over = t
        .decisions
        .iter()
        .filter(|d| d.staleness_s > d.threshold_s + 1e-9)
        .count();
    let secs = |v: f64| format!("{v:.3} s");
    let count = |v: f64| format!("{v:.0}");
    let mut out: Vec<Row> = vec![
        (
            "requests, naive (one per change or message)".into(),
            count(naive),
        ),
        (
            "requests, npc-sync (HTTP calls)".into(),
            format!("{requests:.0} ({calls:.0})"),
        ),
        (
            "npc-sync calls / naive".into(),
            if naive > 0.0 {
                format!("{:.4}", calls / naive)
            } else {
                "n/a".into()
            },
        ),
        (
            "budget used: most calls in 60 s".into(),
            format!(
                "{peak:.0} ({:.1} % of HttpService's {:.0}, queue budget {:.0})",
                100.0 * peak / t.limits.http_per_minute,
                t.limits.http_per_minute,
                t.limits.budget_per_minute
            ),
        ),
        ("decisions that proceeded".into(), stale.len().to_string()),
        (
            "staleness at decisions p50 / p99 / max".into(),
            format!(
                "{} / {} / {}",
                secs(percentile(&stale, 0.5)),
                secs(percentile(&stale, 0.99)),
                secs(percentile(&stale, 1.0))
            ),
        ),
        (
            format!(
                "staleness max in combat (threshold {} s)",
                t.limits.combat_freshness_s
            ),
            secs(combat_max),
        ),
        ("decisions over their threshold".into(), over.to_string()),
        (
            "decisions abandoned (no fresh answer while the NPC waited)".into(),
            or_na(t.num("decisions_abandoned"), count),
        ),
        (
            "critical latency p50 / p99".into(),
            format!(
                "{} / {}",
                or_na(t.num("critical_latency_p50_s"), secs),
                or_na(t.num("critical_latency_p99_s"), secs)
            ),
        ),
    ];
    for (k, label) in [
        ("lost", "lost"),
        ("stale_overwrites", "stale overwrites"),
        ("split_groups", "split groups"),
    ] {
        out.push((label.into(), or_na(t.num(k), count)));
    }
    out.push((
        "converged".into(),
        t.summary
            .get("converged")
            .map_or("n/a".into(), |v| v.to_string()),
    ));
    out
}

/// The table as text for the terminal.
pub fn text(rows: &[Row]) -> String {
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<w$}  {v}\n"))
        .collect()
}
