//! The report's one error enum.

use std::fmt;

/// Why a report could not be made.
#[derive(Debug)]
pub enum ReportError {
    /// A file could not be read or written.
    Io {
        /// The file.
        path: String,
        /// What the system said.
        msg: String,
    },
    /// An input is not the JSON it should be.
    Parse {
        /// Which input (timeline, bench summary).
        what: String,
        /// What serde_json said (with line and column).
        msg: String,
    },
    /// An input parsed but a value is unusable.
    Invalid {
        /// The field, as a path (`seconds[3].frame_ms`).
        field: String,
        /// Why.
        why: String,
    },
    /// plotters failed to draw.
    Draw(String),
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::Io { path, msg } => write!(f, "{path}: {msg}"),
            ReportError::Parse { what, msg } => {
                write!(f, "{what}: not valid JSON of its format: {msg}")
            }
            ReportError::Invalid { field, why } => write!(f, "{field}: {why}"),
            ReportError::Draw(m) => write!(f, "drawing a plot failed: {m}"),
        }
    }
}

impl std::error::Error for ReportError {}
