//! Error messages written without `core::fmt`: the Luau build stays small, and the text
//! is the same as the native `Display` of [`npc_sync::Error`] wherever a number is integral.

use alloc::vec::Vec;
use npc_sync::block_text::BlockTextError;
use npc_sync::Error;

/// A message being written.
pub(crate) struct Msg<'a>(pub(crate) &'a mut Vec<u8>);

impl Msg<'_> {
    pub(crate) fn s(&mut self, s: &str) -> &mut Self {
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    pub(crate) fn int(&mut self, mut v: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.0.extend_from_slice(&digits[i..]);
        self
    }

    /// A number: `NaN`, `inf`, `-inf`, an integer, or up to 6 decimals (trailing zeros cut).
    pub(crate) fn num(&mut self, v: f64) -> &mut Self {
        if v.is_nan() {
            return self.s("NaN");
        }
        if v < 0.0 {
            self.s("-");
        }
        let a = if v < 0.0 { -v } else { v };
        if a.is_infinite() {
            return self.s("inf");
        }
        if a >= 1e18 {
            return self.s("(a very large number)");
        }
        let whole = a as u64;
        self.int(whole);
        let mut frac = ((a - whole as f64) * 1e6 + 0.5) as u64;
        if frac >= 1_000_000 {
            frac = 999_999;
        }
        if frac > 0 {
            let mut d = [b'0'; 6];
            for k in (0..6).rev() {
                d[k] = b'0' + (frac % 10) as u8;
                frac /= 10;
            }
            let mut end = 6;
            while end > 0 && d[end - 1] == b'0' {
                end -= 1;
            }
            self.s(".");
            self.0.extend_from_slice(&d[..end]);
        }
        self
    }
}

/// The ABI code of a core error (luau-bridge/ABI.md) and its message.
pub(crate) fn describe(e: &Error, out: &mut Vec<u8>) -> i32 {
    let mut m = Msg(out);
    match e {
        Error::Config(c) => {
            m.s("invalid setting `").s(c.setting).s("`: ").s(c.reason);
            1
        }
        Error::BadTime { what, value } => {
            m.s("`")
                .s(what)
                .s("` must be a finite time of 0 s or more, got ")
                .num(*value);
            2
        }
        Error::TimeWentBackwards { now, latest } => {
            m.s("`now` went backwards: ")
                .num(*now)
                .s(" is before ")
                .num(*latest)
                .s(", a time already seen");
            3
        }
        Error::BadNumber {
            agent,
            field,
            value,
        } => {
            m.s("agent '")
                .s(agent)
                .s("', field `")
                .s(field)
                .s("`: number must be finite, got ")
                .num(*value);
            4
        }
        Error::BadString { what, len, reason } => {
            m.s(what).s(" (").int(*len as u64).s(" bytes): ").s(reason);
            5
        }
        Error::UnknownAgent { index } => {
            m.s("agent handle #")
                .int(*index as u64)
                .s(" was not issued by this queue");
            6
        }
        Error::AgentRemoved { agent } => {
            m.s("agent '").s(agent).s("' was removed");
            7
        }
        Error::UnknownChange { seq } => {
            m.s("change #")
                .int(*seq)
                .s(" was never issued by this queue");
            8
        }
        Error::DependencyRemoved { seq, agent } => {
            m.s("dependency on change #")
                .int(*seq)
                .s(" of agent '")
                .s(agent)
                .s("', which was removed: it will never be delivered");
            9
        }
        Error::UnknownRequest { request } => {
            m.s("request #")
                .int(request.0)
                .s(" is not in flight (never emitted, or already reported)");
            10
        }
        Error::BadGroup { reason } => {
            m.s("atomic group rejected: ").s(reason);
            11
        }
        Error::AgentLive { agent } => {
            m.s("agent '")
                .s(agent)
                .s("' is still registered: remove it before forgetting it");
            16
        }
        Error::BadRetryAfter { value } => {
            m.s("`retry_after` must be a finite number of seconds of 0 or more, got ")
                .num(*value);
            12
        }
        Error::BlockText { agent, error } => {
            m.s("agent '").s(agent).s("': ");
            match error {
                BlockTextError::TooLarge {
                    block,
                    chars,
                    limit,
                } => {
                    m.s("block `")
                        .s(block)
                        .s("` renders to ")
                        .int(*chars as u64)
                        .s(" characters, over its limit of ")
                        .int(*limit as u64);
                }
                BlockTextError::BadFieldName {
                    block,
                    field,
                    reason,
                } => {
                    m.s("block `")
                        .s(block)
                        .s("`, field name \"")
                        .s(field)
                        .s("\": ")
                        .s(reason);
                }
                BlockTextError::DuplicateField { block, field } => {
                    m.s("block `")
                        .s(block)
                        .s("`: field `")
                        .s(field)
                        .s("` is given twice");
                }
                BlockTextError::NonFinite { block, field } => {
                    m.s("block `")
                        .s(block)
                        .s("`, field `")
                        .s(field)
                        .s("`: number is not finite");
                }
            }
            17
        }
        Error::BlockBusy { agent, block } => {
            m.s("agent '")
                .s(agent)
                .s("', block `")
                .s(block)
                .s("`: a write of it is in flight; take in what Letta holds before writing it");
            18
        }
        Error::UnknownHandle { what, index } => {
            m.s(what)
                .s(" handle #")
                .int(*index as u64)
                .s(" was not issued by this queue");
            13
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(v: f64) -> alloc::string::String {
        let mut out = Vec::new();
        Msg(&mut out).num(v);
        alloc::string::String::from_utf8(out).unwrap()
    }

    #[test]
    fn numbers_without_fmt() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(62.0), "62");
        assert_eq!(num(-1.5), "-1.5");
        assert_eq!(num(0.125), "0.125");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(num(f64::NEG_INFINITY), "-inf");
        assert_eq!(num(1234567.0000001), "1234567");
    }

    #[test]
    fn messages_match_the_native_display() {
        let errors = [
            Error::BadTime {
                what: "now",
                value: -1.0,
            },
            Error::UnknownAgent { index: 7 },
            Error::AgentRemoved {
                agent: "npc-1".into(),
            },
            Error::BadNumber {
                agent: "npc-1".into(),
                field: "status.health".into(),
                value: f64::INFINITY,
            },
            Error::UnknownRequest {
                request: npc_sync::RequestId(12),
            },
            Error::UnknownHandle {
                what: "slot",
                index: 3,
            },
        ];
        for e in errors {
            let mut out = Vec::new();
            describe(&e, &mut out);
            assert_eq!(
                alloc::string::String::from_utf8(out).unwrap(),
                e.to_string()
            );
        }
    }
}
