//! Interned names. Agent ids, block labels and field names are compared as small integers
//! on the hot path; their text is kept for errors and for rendering requests.

use crate::error::Error;
use crate::ids::Sym;
use crate::value::json_string_bytes;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// Length limits of inputs, in bytes. A single change of maximal size always fits in one
/// request, which is why the request body cap cannot go below 24 KiB.
#[derive(Clone, Copy, Debug)]
pub struct Limits;

impl Limits {
    /// Agent ids, block labels, field names, chat senders.
    pub const NAME_BYTES: usize = 256;
    /// String field values.
    pub const VALUE_BYTES: usize = 16 * 1024;
    /// One chat message's text.
    pub const CHAT_BYTES: usize = 2 * 1024;
}

#[derive(Default)]
pub(crate) struct Symbols {
    texts: Vec<String>,
    /// Each text's bytes as a JSON string without its quotes ([`json_string_bytes`]), by
    /// symbol: a request's size is measured per change without reading the text again.
    json_bytes: Vec<usize>,
    index: BTreeMap<String, Sym>,
    /// The symbols of the names the queue's rules look at on every change, once interned
    /// (compared as integers instead of texts; not interned ahead, so that symbol numbers,
    /// which order each agent's fields, stay what the inputs make them).
    known: KnownSyms,
}

/// The symbols of `status`, `status.state`'s and `status.health`'s field names, if
/// interned yet (see [`Symbols::known`]).
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct KnownSyms {
    pub(crate) status: Option<Sym>,
    pub(crate) state: Option<Sym>,
    pub(crate) health: Option<Sym>,
}

impl Symbols {
    /// Whether `s` may be a name: non-empty, at most [`Limits::NAME_BYTES`].
    pub(crate) fn is_name(s: &str) -> bool {
        !s.is_empty() && s.len() <= Limits::NAME_BYTES
    }

    pub(crate) fn check_name(what: &'static str, s: &str) -> Result<(), Error> {
        if Self::is_name(s) {
            return Ok(());
        }
        if s.is_empty() {
            return Err(Error::BadString {
                what,
                len: 0,
                reason: "must not be empty",
            });
        }
        if s.len() > Limits::NAME_BYTES {
            return Err(Error::BadString {
                what,
                len: s.len(),
                reason: "longer than the 256-byte limit",
            });
        }
        Ok(())
    }

    pub(crate) fn lookup(&self, s: &str) -> Option<Sym> {
        self.index.get(s).copied()
    }

    /// Interns `s` (already checked).
    pub(crate) fn intern(&mut self, s: &str) -> Sym {
        if let Some(sym) = self.index.get(s) {
            return *sym;
        }
        let sym = Sym(self.texts.len() as u32);
        match s {
            crate::names::STATUS => self.known.status = Some(sym),
            crate::names::STATE => self.known.state = Some(sym),
            crate::names::HEALTH => self.known.health = Some(sym),
            _ => {}
        }
        self.texts.push(String::from(s));
        self.json_bytes.push(json_string_bytes(s));
        self.index.insert(String::from(s), sym);
        sym
    }

    /// The well-known names' symbols (those interned so far).
    pub(crate) fn known(&self) -> KnownSyms {
        self.known
    }

    pub(crate) fn get(&self, sym: Sym) -> Option<&str> {
        self.texts.get(sym.0 as usize).map(String::as_str)
    }

    /// The symbol's text's bytes as a JSON string, without quotes: [`json_string_bytes`]
    /// of [`Symbols::text`] (of `"?"` for an unknown symbol, as `text` gives).
    pub(crate) fn json_bytes(&self, sym: Sym) -> usize {
        self.json_bytes.get(sym.0 as usize).copied().unwrap_or(1)
    }

    pub(crate) fn text(&self, sym: Sym) -> &str {
        self.texts
            .get(sym.0 as usize)
            .map(String::as_str)
            .unwrap_or("?")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept size of each name is the escaped size of its text, whatever it holds.
    #[test]
    fn json_bytes_is_the_escaped_size_of_the_text() {
        let mut s = Symbols::default();
        for text in ["npc-1", "say \"hi\"", "a\\b", "tab\there", "\u{1}", "é"] {
            let sym = s.intern(text);
            assert_eq!(s.json_bytes(sym), json_string_bytes(text), "{text:?}");
        }
        let quoted = s.intern("say \"hi\"");
        assert_eq!(s.json_bytes(quoted), 10);
        // An unknown symbol reads as "?", and measures as it.
        assert_eq!(s.text(Sym(99)), "?");
        assert_eq!(s.json_bytes(Sym(99)), json_string_bytes("?"));
    }
}
