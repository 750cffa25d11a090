//! The Node boundary's one error type, thrown into JavaScript as an `Error` whose
//! `message` is the Rust message and whose `code` names the kind.

use crate::error::Error;
use alloc::string::{String, ToString};
use wasm_bindgen::JsValue;

/// Why a `SyncQueue` call was refused (thrown as a JavaScript `Error`). The queue is
/// unchanged after any of them.
#[derive(Debug)]
pub enum JsError {
    /// The core refused the call (its code is the variant name, `Error::kind`).
    Core(Error),
    /// An argument is not of the shape the call takes (missing key, wrong type, unknown
    /// setting): `what` names the argument or key, `reason` says what was expected.
    BadInput {
        /// The argument or key.
        what: String,
        /// What was expected.
        reason: String,
    },
    /// A setting is out of range (the core's validation), named by its JavaScript key.
    Config {
        /// The setting's JavaScript key.
        key: &'static str,
        /// Why it is refused.
        reason: &'static str,
    },
    /// `removeAgent` of an id the queue does not hold.
    NoSuchAgent {
        /// The id given.
        agent: String,
    },
}

impl JsError {
    pub(crate) fn input(what: impl Into<String>, reason: impl Into<String>) -> JsError {
        JsError::BadInput {
            what: what.into(),
            reason: reason.into(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            JsError::Core(e) => e.kind(),
            JsError::BadInput { .. } => "BadInput",
            JsError::Config { .. } => "Config",
            JsError::NoSuchAgent { .. } => "UnknownAgent",
        }
    }

    fn message(&self) -> String {
        match self {
            JsError::Core(e) => e.to_string(),
            JsError::BadInput { what, reason } => alloc::format!("{what}: {reason}"),
            JsError::Config { key, reason } => {
                alloc::format!("invalid setting `{key}`: {reason}")
            }
            JsError::NoSuchAgent { agent } => alloc::format!(
                "agent '{agent}' is not known to this queue (never used, or already removed)"
            ),
        }
    }
}

impl From<Error> for JsError {
    fn from(e: Error) -> Self {
        JsError::Core(e)
    }
}

impl From<JsError> for JsValue {
    fn from(e: JsError) -> JsValue {
        let err = js_sys::Error::new(&e.message());
        // Setting a property on a fresh Error object cannot fail.
        let _ = js_sys::Reflect::set(&err, &"code".into(), &e.code().into());
        err.into()
    }
}

/// Results of the facade's calls.
pub type JsResult<T> = Result<T, JsError>;
