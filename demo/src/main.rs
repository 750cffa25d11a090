//! `npc-sync-demo-report --timeline FILE [--bench FILE] [-o FILE]`: prints the summary
//! table, writes the report (default `target/demo/report.html`) and ends by printing its
//! path.

use npc_sync_demo::{render, summary, BenchSummary, ReportError, Timeline};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: npc-sync-demo-report --timeline FILE [--bench target/bench/summary.json] [-o target/demo/report.html]";

struct Args {
    timeline: PathBuf,
    bench: Option<PathBuf>,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut timeline = None;
    let mut bench = None;
    let mut out = PathBuf::from("target/demo/report.html");
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--timeline" => timeline = Some(PathBuf::from(value("--timeline")?)),
            "--bench" => bench = Some(PathBuf::from(value("--bench")?)),
            "-o" | "--out" => out = PathBuf::from(value("-o")?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    Ok(Args {
        timeline: timeline.ok_or_else(|| format!("--timeline is required\n{USAGE}"))?,
        bench,
        out,
    })
}

fn read(path: &Path) -> Result<String, ReportError> {
    std::fs::read_to_string(path).map_err(|e| ReportError::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    })
}

fn run(a: &Args) -> Result<(), ReportError> {
    let t = Timeline::parse(&read(&a.timeline)?)?;
    let bench = match &a.bench {
        Some(p) => Some(BenchSummary::parse(&read(p)?)?),
        None => None,
    };
    let report = render(&t, bench.as_ref())?;
    print!("{}", summary::text(&report.rows));
    let io = |e: std::io::Error| ReportError::Io {
        path: a.out.display().to_string(),
        msg: e.to_string(),
    };
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(&a.out, report.html).map_err(io)?;
    let shown = std::fs::canonicalize(&a.out).unwrap_or_else(|_| a.out.clone());
    println!("report: {}", shown.display());
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("npc-sync-demo-report: {e}");
            ExitCode::FAILURE
        }
    }
}
