//! Chat aggregation: an agent's messages leave as one inference request when the window
//! after the last message closes, the maximum wait passes, or enough messages wait.

use crate::config::Config;
use crate::request::ChatMessage;
use alloc::vec::Vec;

#[derive(Default, Clone, Debug)]
pub(crate) struct ChatBuffer {
    pub(crate) messages: Vec<ChatMessage>,
    /// Earliest time a retry of failed messages may go.
    pub(crate) not_before: f64,
    /// Attempts already made for the oldest messages (0 for new ones).
    pub(crate) attempts: u32,
}

impl ChatBuffer {
    /// When this buffer must be flushed, if it holds anything.
    pub(crate) fn due_at(&self, cfg: &Config) -> Option<f64> {
        let first = self.messages.first()?;
        let last = self.messages.last()?;
        let mut due = if self.messages.len() >= cfg.chat_max_messages as usize {
            last.at
        } else {
            (last.at + cfg.chat_window_s).min(first.at + cfg.chat_max_wait_s)
        };
        if self.not_before > due {
            due = self.not_before;
        }
        Some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn msg(at: f64) -> ChatMessage {
        ChatMessage {
            sender: String::from("p"),
            text: String::from("hi"),
            at,
        }
    }

    #[test]
    fn window_max_wait_and_count() {
        let cfg = Config::default();
        let mut b = ChatBuffer::default();
        assert_eq!(b.due_at(&cfg), None);
        b.messages.push(msg(0.0));
        assert_eq!(b.due_at(&cfg), Some(0.5));
        b.messages.push(msg(0.4));
        assert_eq!(b.due_at(&cfg), Some(0.9));
        b.messages.push(msg(1.2));
        assert_eq!(b.due_at(&cfg), Some(1.5));
        for i in 0..13 {
            b.messages.push(msg(1.3 + i as f64 * 0.001));
        }
        assert_eq!(b.messages.len(), 16);
        assert_eq!(b.due_at(&cfg), Some(1.312));
    }
}
