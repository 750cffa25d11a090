//! Error messages: the core's `Display` of [`npc_sync::Error`] is the one owner of their
//! text, written into the facade's message area; this module only maps each error to its
//! ABI code (luau-bridge/ABI.md). Measured: the core already links `core::fmt` and its
//! float formatting for Letta's block texts (`block_text::render`), so reusing `Display`
//! here costs nothing in size (figures in ABI.md, "Measured").

use alloc::vec::Vec;
use core::fmt::Write;
use npc_sync::Error;

/// A message area `core::fmt` writes into.
pub(crate) struct Msg<'a>(pub(crate) &'a mut Vec<u8>);

impl Write for Msg<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

impl Msg<'_> {
    /// Appends text.
    pub(crate) fn s(&mut self, s: &str) -> &mut Self {
        self.0.extend_from_slice(s.as_bytes());
        self
    }
}

/// The ABI code of a core error (luau-bridge/ABI.md); its message (the core's `Display`)
/// is appended to `out`.
pub(crate) fn describe(e: &Error, out: &mut Vec<u8>) -> i32 {
    let _ = write!(Msg(out), "{e}");
    match e {
        Error::Config(_) => 1,
        Error::BadTime { .. } => 2,
        Error::TimeWentBackwards { .. } => 3,
        Error::BadNumber { .. } => 4,
        Error::BadString { .. } => 5,
        Error::UnknownAgent { .. } => 6,
        Error::AgentRemoved { .. } => 7,
        Error::UnknownChange { .. } => 8,
        Error::DependencyRemoved { .. } => 9,
        Error::UnknownRequest { .. } => 10,
        Error::BadGroup { .. } => 11,
        Error::BadRetryAfter { .. } => 12,
        Error::UnknownHandle { .. } => 13,
        Error::AgentLive { .. } => 16,
        Error::BlockText { .. } => 17,
        Error::BlockBusy { .. } => 18,
        Error::Absorb { .. } => 19,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use npc_sync::block_text::BlockTextError;

    #[test]
    fn codes_follow_the_abi_table_and_the_text_is_the_cores() {
        let cases = [
            (
                Error::BadTime {
                    what: "now",
                    value: -1.5,
                },
                2,
                "`now` must be a finite time of 0 s or more, got -1.5",
            ),
            (
                Error::UnknownRequest {
                    request: npc_sync::RequestId(12),
                },
                10,
                "request #12 is not in flight (never emitted, or already reported)",
            ),
            (
                Error::BlockText {
                    agent: "npc-1".into(),
                    error: BlockTextError::TooLarge {
                        block: "status".into(),
                        chars: 9,
                        limit: 8,
                    },
                },
                17,
                "agent 'npc-1': block `status` renders to 9 characters, over its limit of 8",
            ),
            (
                Error::BlockBusy {
                    agent: "npc-1".into(),
                    block: "status".into(),
                },
                18,
                "agent 'npc-1', block `status`: a write of it is in flight; take in what Letta holds before writing it",
            ),
        ];
        for (e, code, text) in cases {
            let mut out = Vec::new();
            assert_eq!(describe(&e, &mut out), code);
            assert_eq!(alloc::string::String::from_utf8(out).unwrap(), text);
        }
    }
}
