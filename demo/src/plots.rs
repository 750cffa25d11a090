//! The report's plots, drawn by plotters into SVG strings (text stays text: the browser
//! renders it, so no font is needed where the report is made).

use crate::bench::BenchSummary;
use crate::error::ReportError;
use crate::timeline::Timeline;
use plotters::coord::cartesian::Cartesian2d;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

/// Width and height of every plot, pixels.
pub const SIZE: (u32, u32) = (1100, 420);
/// A 60 Hz frame, milliseconds.
pub const FRAME_MS: f64 = 16.7;
/// Requests per second below which a log-scale plot draws at its floor.
const LOG_FLOOR: f64 = 0.5;

const NAIVE: RGBColor = RGBColor(214, 69, 65);
const SYNC: RGBColor = RGBColor(52, 101, 164);
const SYNC_AVG: RGBColor = RGBColor(20, 40, 90);
const LIMIT: RGBColor = RGBColor(0, 0, 0);
const BUDGET: RGBColor = RGBColor(120, 120, 120);
const COMBAT: RGBColor = RGBColor(214, 69, 65);
const CALM: RGBColor = RGBColor(52, 101, 164);

fn draw_err<E: std::fmt::Display>(e: E) -> ReportError {
    ReportError::Draw(e.to_string())
}

/// A drawing of `size` as an SVG string.
fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), ReportError>,
) -> Result<String, ReportError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    Ok(out)
}

fn legend_line(c: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
}

fn t_end(t: &Timeline) -> f64 {
    t.seconds.last().map_or(1.0, |s| s.t + 1.0)
}

/// A chart over the run's time (x: seconds, `0..end`); `Y` is the value axis.
type TimeChart<'a, 'b, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>;

/// What a plot over the run's time shows on its axes.
struct TimeAxes<'f> {
    caption: String,
    y_desc: String,
    y_format: &'f dyn Fn(&f64) -> String,
}

/// One plot over the run's time: the axes, whatever `series` draws (each series labelled
/// for the legend), then the legend in the upper right. Every time plot is drawn by it.
fn time_plot<Y>(
    end: f64,
    y: Y,
    axes: TimeAxes<'_>,
    series: impl FnOnce(&mut TimeChart<'_, '_, Y::CoordDescType>) -> Result<(), ReportError>,
) -> Result<String, ReportError>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    svg(SIZE, |root| {
        let mut c = ChartBuilder::on(root)
            .caption(axes.caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..end, y)
            .map_err(draw_err)?;
        c.configure_mesh()
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .x_desc("time (s)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_desc(axes.y_desc)
            .y_label_formatter(axes.y_format)
            .draw()
            .map_err(draw_err)?;
        series(&mut c)?;
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(draw_err)
    })
}

/// One labelled line on a time plot.
fn line<Y>(
    c: &mut TimeChart<'_, '_, Y>,
    points: impl IntoIterator<Item = (f64, f64)>,
    color: RGBColor,
    style: ShapeStyle,
    label: impl Into<String>,
) -> Result<(), ReportError>
where
    Y: Ranged<ValueType = f64>,
{
    c.draw_series(LineSeries::new(points, style))
        .map_err(draw_err)?
        .label(label)
        .legend(legend_line(color));
    Ok(())
}

/// A labelled horizontal line at `v` across the run (a limit or a threshold).
fn level<Y>(
    c: &mut TimeChart<'_, '_, Y>,
    end: f64,
    v: f64,
    color: RGBColor,
    width: u32,
    label: impl Into<String>,
) -> Result<(), ReportError>
where
    Y: Ranged<ValueType = f64>,
{
    line(
        c,
        [(0.0, v), (end, v)],
        color,
        color.stroke_width(width),
        label,
    )
}

/// Requests per second, naive against npc-sync (log scale), with HttpService's 500 a
/// minute and the queue's budget drawn as rates per second.
pub fn requests(t: &Timeline) -> Result<String, ReportError> {
    let http = t.limits.http_per_minute / 60.0;
    let budget = t.limits.budget_per_minute / 60.0;
    let top = t
        .seconds
        .iter()
        .map(|s| s.naive.max(s.calls))
        .fold(http, f64::max)
        * 200.0; // headroom above the naive line for the legend (two decades)
    let end = t_end(t);
    // npc-sync's calls averaged over the last 60 s: what the budget counts
    let mut avg = Vec::with_capacity(t.seconds.len());
    let mut sum = 0.0;
    for (i, s) in t.seconds.iter().enumerate() {
        sum += s.calls;
        if i >= 60 {
            sum -= t.seconds[i - 60].calls;
        }
        avg.push((s.t, (sum / 60.0).max(LOG_FLOOR)));
    }
    let floor = |v: f64| v.max(LOG_FLOOR);
    let axes = TimeAxes {
        caption: "Requests per second: naive (one per change) against npc-sync".into(),
        y_desc: "requests per second (log scale)".into(),
        y_format: &|v| format!("{v}"),
    };
    time_plot(end, (LOG_FLOOR..top).log_scale(), axes, |c| {
        line(
            c,
            t.seconds.iter().map(|s| (s.t, floor(s.naive))),
            NAIVE,
            NAIVE.stroke_width(2),
            "naive: one request per change",
        )?;
        line(
            c,
            t.seconds.iter().map(|s| (s.t, floor(s.calls))),
            SYNC,
            SYNC.mix(0.6).stroke_width(1),
            "npc-sync: HTTP calls in each second",
        )?;
        line(
            c,
            avg,
            SYNC_AVG,
            SYNC_AVG.stroke_width(3),
            "npc-sync: calls per second over the last 60 s",
        )?;
        level(
            c,
            end,
            http,
            LIMIT,
            2,
            format!(
                "HttpService limit: {:.0} a minute ({http:.2} a second)",
                t.limits.http_per_minute
            ),
        )?;
        level(
            c,
            end,
            budget,
            BUDGET,
            1,
            format!(
                "npc-sync budget: {:.0} a minute",
                t.limits.budget_per_minute
            ),
        )
    })
}

/// Staleness at each decision over time, in and out of combat, against both thresholds
/// (log scale: the combat threshold is 1 s, the other 15 s; a staleness of 0 is drawn at
/// the floor).
pub fn staleness(t: &Timeline) -> Result<String, ReportError> {
    const FLOOR: f64 = 0.01;
    let end = t_end(t);
    let top = t
        .decisions
        .iter()
        .map(|d| d.staleness_s)
        .fold(t.limits.freshness_s, f64::max)
        * 4.0;
    let axes = TimeAxes {
        caption: "Staleness of the backend's view at each LLM decision".into(),
        y_desc: format!("staleness (s, log scale; 0 drawn at {FLOOR})"),
        y_format: &|v| format!("{v}"),
    };
    time_plot(end, (FLOOR..top).log_scale(), axes, |c| {
        for (combat, color, label) in [
            (false, CALM, "decision out of combat"),
            (true, COMBAT, "decision in combat"),
        ] {
            c.draw_series(
                t.decisions.iter().filter(|d| d.combat == combat).map(|d| {
                    Circle::new((d.t, d.staleness_s.max(FLOOR)), 2, color.mix(0.5).filled())
                }),
            )
            .map_err(draw_err)?
            .label(label)
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
        }
        for (v, color, label) in [
            (t.limits.freshness_s, CALM, "threshold out of combat"),
            (t.limits.combat_freshness_s, COMBAT, "threshold in combat"),
        ] {
            level(c, end, v, color, 2, format!("{label}: {v} s"))?;
        }
        Ok(())
    })
}

/// Fields waiting to be sent and requests in flight, at the end of each second.
pub fn queue_depth(t: &Timeline) -> Result<String, ReportError> {
    let end = t_end(t);
    let top = t
        .seconds
        .iter()
        .map(|s| s.queue_depth.max(s.in_flight))
        .fold(1.0, f64::max)
        * 1.1;
    let axes = TimeAxes {
        caption: "Queue depth".into(),
        y_desc: "fields / requests".into(),
        y_format: &|v| format!("{v:.0}"),
    };
    time_plot(end, 0f64..top, axes, |c| {
        line(
            c,
            t.seconds.iter().map(|s| (s.t, s.queue_depth)),
            SYNC,
            SYNC.stroke_width(2),
            "fields waiting to be sent",
        )?;
        line(
            c,
            t.seconds.iter().map(|s| (s.t, s.in_flight)),
            NAIVE,
            NAIVE.stroke_width(2),
            "requests in flight",
        )
    })
}

/// The run's own frame cost, second by second (mean and slowest frame, and the step's
/// share when timed), against a 60 Hz frame and its 10 % (log scale: the slowest frames of
/// a loaded machine are tens of times the mean).
pub fn frame_cost(t: &Timeline) -> Result<String, ReportError> {
    const FLOOR: f64 = 0.001;
    let end = t_end(t);
    let tenth = FRAME_MS * 0.1;
    let top = t
        .seconds
        .iter()
        .map(|s| s.frame_ms.max(s.frame_ms_max))
        .fold(FRAME_MS, f64::max)
        * 8.0; // headroom for the legend
    let bottom = t
        .seconds
        .iter()
        .flat_map(|s| [s.frame_ms, s.step_ms.unwrap_or(s.frame_ms)])
        .filter(|v| *v > 0.0)
        .fold(tenth, f64::min)
        .max(FLOOR)
        / 2.0;
    let runtime = t.run.get("runtime").and_then(|v| v.as_str()).unwrap_or("?");
    let axes = TimeAxes {
        caption: format!("Cost per frame during the run ({runtime})"),
        y_desc: "ms per frame (log scale)".into(),
        y_format: &|v| format!("{v}"),
    };
    let floor = move |v: f64| v.max(bottom);
    time_plot(end, (bottom..top).log_scale(), axes, |c| {
        line(
            c,
            t.seconds.iter().map(|s| (s.t, floor(s.frame_ms_max))),
            NAIVE,
            NAIVE.mix(0.6).stroke_width(1),
            "slowest frame of the second",
        )?;
        line(
            c,
            t.seconds.iter().map(|s| (s.t, floor(s.frame_ms))),
            SYNC,
            SYNC.stroke_width(2),
            "mean frame of the second",
        )?;
        if t.seconds.iter().any(|s| s.step_ms.is_some()) {
            line(
                c,
                t.seconds
                    .iter()
                    .map(|s| (s.t, floor(s.step_ms.unwrap_or(0.0)))),
                SYNC_AVG,
                SYNC_AVG.stroke_width(1),
                "of which the queue step (mean)",
            )?;
        }
        level(
            c,
            end,
            FRAME_MS,
            BUDGET,
            2,
            format!("a 60 Hz frame ({FRAME_MS} ms)"),
        )?;
        level(
            c,
            end,
            tenth,
            LIMIT,
            2,
            format!("10 % of a 60 Hz frame ({tenth:.2} ms)"),
        )
    })
}

/// The bench's cost per frame by runtime and queue (horizontal bars, log scale: native
/// and interpreted Luau differ by orders of magnitude), against a 60 Hz frame and its 10 %.
pub fn bench_cost(b: &BenchSummary) -> Result<String, ReportError> {
    let rows = &b.frame_cost;
    let n = rows.len() as i32;
    let right = rows.iter().map(|r| r.ms).fold(FRAME_MS, f64::max) * 2.0;
    let left = rows
        .iter()
        .map(|r| r.ms)
        .filter(|v| *v > 0.0)
        .fold(FRAME_MS * 0.01, f64::min)
        / 2.0;
    // first row at the top
    let labels: Vec<String> = rows.iter().rev().map(BenchSummary::label).collect();
    let height = (120 + 34 * rows.len()) as u32;
    svg((SIZE.0, height), |root| {
        let mut c = ChartBuilder::on(root)
            .caption(
                "Cost per frame of the bench workload; lines: a 60 Hz frame (16.7 ms) and its 10 %",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(230)
            .build_cartesian_2d(
                (left..right).log_scale(),
                (0..(n - 1).max(0)).into_segmented(),
            )
            .map_err(draw_err)?;
        c.configure_mesh()
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .disable_y_mesh()
            .y_labels(rows.len() + 1)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .y_label_style(("sans-serif", 14))
            .x_desc("ms per frame (log scale)")
            .x_label_formatter(&|v| format!("{v}"))
            .draw()
            .map_err(draw_err)?;
        c.draw_series(rows.iter().rev().enumerate().map(|(i, r)| {
            let color = if r.queue == "hand" { NAIVE } else { SYNC };
            let i = i as i32;
            let mut bar = Rectangle::new(
                [
                    (left, SegmentValue::Exact(i)),
                    (r.ms.max(left), SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            );
            bar.set_margin(5, 5, 0, 0);
            bar
        }))
        .map_err(draw_err)?;
        for (v, color) in [(FRAME_MS, LIMIT), (FRAME_MS * 0.1, BUDGET)] {
            c.draw_series(LineSeries::new(
                [(v, SegmentValue::Exact(0)), (v, SegmentValue::Exact(n))],
                color.stroke_width(2),
            ))
            .map_err(draw_err)?;
        }
        Ok(())
    })
}
