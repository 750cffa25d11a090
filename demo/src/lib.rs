//! The demo report: a run's timeline (`npc-sync-timeline/1`, `docs/demo-timeline.md`) and,
//! when there is one, the frame bench's summary, drawn with plotters into one HTML page:
//! requests per second naive against npc-sync with HttpService's 500 a minute, staleness
//! at each decision against the thresholds, queue depth, and the cost per frame.

pub mod bench;
pub mod error;
pub mod html;
pub mod plots;
pub mod summary;
pub mod timeline;

pub use bench::BenchSummary;
pub use error::ReportError;
pub use timeline::Timeline;

/// A finished report.
pub struct Report {
    /// The page.
    pub html: String,
    /// The summary table (also in the page).
    pub rows: Vec<summary::Row>,
}

/// Draws the report of `t` (and of `bench`, if given).
pub fn render(t: &Timeline, bench: Option<&BenchSummary>) -> Result<Report, ReportError> {
    let rows = summary::rows(t);
    let mut plots = vec![
        ("requests", plots::requests(t)?),
        ("staleness", plots::staleness(t)?),
        ("queue-depth", plots::queue_depth(t)?),
        ("frame-cost", plots::frame_cost(t)?),
    ];
    if let Some(b) = bench {
        plots.push(("bench-cost", plots::bench_cost(b)?));
    }
    Ok(Report {
        html: html::page(t, &rows, &plots, bench),
        rows,
    })
}
