//! The report page: the summary table, the plots (inline SVG) and the bench's tables.

use crate::bench::BenchSummary;
use crate::summary::Row;
use crate::timeline::Timeline;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A table; `head` may be empty (no header row).
fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::from("<table>");
    if !head.is_empty() {
        s += "<tr>";
        for h in head {
            s += &format!("<th>{}</th>", esc(h));
        }
        s += "</tr>";
    }
    for r in rows {
        s += "<tr>";
        for c in r {
            s += &format!("<td>{}</td>", esc(c));
        }
        s += "</tr>";
    }
    s + "</table>\n"
}

/// The whole page. `plots` are (anchor, SVG) in display order.
pub fn page(
    t: &Timeline,
    rows: &[Row],
    plots: &[(&str, String)],
    bench: Option<&BenchSummary>,
) -> String {
    let run: Vec<Vec<String>> = t
        .run
        .iter()
        .map(|(k, v)| vec![k.clone(), v.as_str().map_or(v.to_string(), str::to_string)])
        .collect();
    let summary: Vec<Vec<String>> = rows
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    let scenario = t
        .run
        .get("scenario")
        .and_then(|v| v.as_str())
        .unwrap_or("run");
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>npc-sync demo: {scenario}</title><style>\
body{{font-family:sans-serif;margin:24px;max-width:1140px;color:#222}}\
table{{border-collapse:collapse;margin:8px 0 20px}}td,th{{border:1px solid #bbb;padding:3px 8px;text-align:left}}\
th{{background:#eee}}svg{{display:block;margin:8px 0 24px}}.row{{display:flex;gap:40px}}\
</style></head><body>\n<h1>npc-sync demo: {}</h1>\n<div class=\"row\"><div><h2>Run</h2>{}</div><div><h2>Summary</h2>{}</div></div>\n",
        esc(scenario),
        table(&[], &run),
        table(&[], &summary)
    );
    for (id, svg) in plots {
        s += &format!("<div id=\"{id}\">{svg}</div>\n");
    }
    if let Some(b) = bench {
        s += "<h2>Frame cost by runtime (<code>target/bench/summary.json</code>)</h2>\n";
        let rows: Vec<Vec<String>> = b
            .frame_cost
            .iter()
            .map(|r| {
                vec![
                    r.runtime.clone(),
                    if r.queue == "hand" {
                        "hand-written Luau"
                    } else {
                        "npc-sync"
                    }
                    .into(),
                    r.npcs.to_string(),
                    format!("{:.3}", r.ms),
                    format!("{:.4}", r.share),
                ]
            })
            .collect();
        s += &table(
            &[
                "runtime",
                "queue",
                "NPCs",
                "ms per frame",
                "share of 16.7 ms",
            ],
            &rows,
        );
        let ratios: Vec<Vec<String>> = b
            .ratios
            .iter()
            .map(|r| {
                vec![
                    r.runtime.clone(),
                    r.npcs.to_string(),
                    format!("{:.2}", r.modulescript_over_hand),
                ]
            })
            .collect();
        s += &table(&["runtime", "NPCs", "ModuleScript / hand-written"], &ratios);
    }
    s + "</body></html>\n"
}
