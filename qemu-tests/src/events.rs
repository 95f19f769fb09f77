//! Boot-event bookkeeping: turns the raw bytes QEMU wrote to the `kiln.events`
//! port file and to the serial log into one de-duplicated list of JSON events.
//!
//! Pure data handling only: this module never touches files or processes, so it
//! is unit-tested with byte strings. The [`crate::Vm`] feeds it whatever new bytes
//! appeared since the last poll.

use serde_json::Value;

/// Marker that PID 1 puts in front of every event it mirrors on the console.
pub const CONSOLE_MARKER: &str = "KILN-EVENT ";

/// Splits a byte stream into complete `\n`-terminated lines, keeping the
/// unfinished tail until more bytes arrive.
#[derive(Debug, Default)]
pub struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    /// Appends `bytes` and returns every line completed by them, without the
    /// trailing `\n` or `\r\n`, decoded lossily.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.partial.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let rest = self.partial.split_off(pos + 1);
            let mut line = std::mem::replace(&mut self.partial, rest);
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            lines.push(String::from_utf8_lossy(&line).into_owned());
        }
        lines
    }
}

#[derive(Debug)]
struct Entry {
    value: Value,
    from_port: bool,
    from_console: bool,
}

/// All events seen so far, in arrival order, from both sources.
///
/// The same event normally arrives twice (port and console). An event from one
/// source is merged with an equal event already recorded from the other source
/// only, so repeated identical events are still counted correctly.
#[derive(Debug, Default)]
pub struct EventLog {
    port: LineBuffer,
    console: LineBuffer,
    entries: Vec<Entry>,
    garbage: Vec<String>,
    returned: Vec<bool>,
}

impl EventLog {
    /// Feeds new bytes read from the event port file.
    pub fn feed_port(&mut self, bytes: &[u8]) {
        for line in self.port.push(bytes) {
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            match parse_event(text) {
                Some(value) => self.record(value, true),
                None => self.garbage.push(format!("port: {line}")),
            }
        }
    }

    /// Feeds new bytes read from the serial log; only `KILN-EVENT ` lines count.
    pub fn feed_console(&mut self, bytes: &[u8]) {
        for line in self.console.push(bytes) {
            let Some(pos) = line.find(CONSOLE_MARKER) else {
                continue;
            };
            let text = line[pos + CONSOLE_MARKER.len()..].trim();
            match parse_event(text) {
                Some(value) => self.record(value, false),
                None => self.garbage.push(format!("console: {line}")),
            }
        }
    }

    fn record(&mut self, value: Value, from_port: bool) {
        let twin = self.entries.iter_mut().find(|e| {
            e.value == value
                && if from_port {
                    !e.from_port
                } else {
                    !e.from_console
                }
        });
        match twin {
            Some(entry) if from_port => entry.from_port = true,
            Some(entry) => entry.from_console = true,
            None => {
                self.entries.push(Entry {
                    value,
                    from_port,
                    from_console: !from_port,
                });
                self.returned.push(false);
            }
        }
    }

    /// Every event so far, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.entries.iter().map(|e| e.value.clone()).collect()
    }

    /// Lines that looked like events but were not JSON objects with an
    /// `event` string, prefixed with their source.
    pub fn garbage(&self) -> &[String] {
        &self.garbage
    }

    /// Events seen only on the console, never on the port (a sign the port is
    /// broken or the guest died before flushing it).
    pub fn console_only(&self) -> Vec<Value> {
        let only = self.entries.iter().filter(|e| !e.from_port);
        only.map(|e| e.value.clone()).collect()
    }

    /// The first event named `name` not yet handed out by this method; marks it
    /// handed out so a later call waits for the next one.
    pub fn take_next(&mut self, name: &str) -> Option<Value> {
        let idx = self
            .entries
            .iter()
            .zip(&self.returned)
            .position(|(e, &done)| !done && event_name(&e.value) == Some(name))?;
        self.returned[idx] = true;
        Some(self.entries[idx].value.clone())
    }

    /// The first `fatal` event, if any.
    pub fn fatal(&self) -> Option<&Value> {
        let mut all = self.entries.iter().map(|e| &e.value);
        all.find(|v| event_name(v) == Some("fatal"))
    }
}

/// The `event` field of an event object.
pub fn event_name(value: &Value) -> Option<&str> {
    value.get("event").and_then(Value::as_str)
}

fn parse_event(text: &str) -> Option<Value> {
    let value: Value = serde_json::from_str(text).ok()?;
    event_name(&value)?;
    Some(value)
}

/// Removes ANSI escape sequences (OVMF clears the screen a lot) so console
/// excerpts in error messages stay readable.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            // CSI: parameters and intermediates, then one final byte in @..~.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

/// The last `n` lines of `text`, with escape sequences removed.
pub fn tail_lines(text: &str, n: usize) -> String {
    let clean = strip_ansi(text);
    let lines: Vec<&str> = clean.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn line_buffer_keeps_partial_lines() {
        let mut buf = LineBuffer::default();
        assert_eq!(buf.push(b"ab"), Vec::<String>::new());
        assert_eq!(buf.push(b"c\r\nd\ne"), vec!["abc", "d"]);
        assert_eq!(buf.push(b"\n"), vec!["e"]);
    }

    #[test]
    fn port_and_console_copies_merge() {
        let mut log = EventLog::default();
        log.feed_console(b"junk\r\n[  1.0] KILN-EVENT {\"ts\":1.0,\"event\":\"ready\"}\r\n");
        log.feed_port(b"{\"ts\":1.0,\"event\":\"ready\"}\n{\"ts\":2.0,\"ev");
        assert_eq!(log.events(), vec![json!({"ts":1.0,"event":"ready"})]);
        assert!(log.console_only().is_empty());
        log.feed_port(b"ent\":\"x\"}\n");
        assert_eq!(log.events().len(), 2);
        assert_eq!(log.console_only(), Vec::<Value>::new());
    }

    #[test]
    fn identical_events_from_one_source_are_kept() {
        let mut log = EventLog::default();
        log.feed_port(b"{\"event\":\"tick\"}\n{\"event\":\"tick\"}\n");
        log.feed_console(b"KILN-EVENT {\"event\":\"tick\"}\n");
        assert_eq!(log.events().len(), 2);
        assert!(log.take_next("tick").is_some());
        assert!(log.take_next("tick").is_some());
        assert!(log.take_next("tick").is_none());
    }

    #[test]
    fn garbage_is_kept_aside() {
        let mut log = EventLog::default();
        log.feed_port(b"not json\n\n{\"no_event\":1}\n");
        log.feed_console(b"KILN-EVENT {broken\nplain line\n");
        assert!(log.events().is_empty());
        assert_eq!(log.garbage().len(), 3);
    }

    #[test]
    fn fatal_is_found() {
        let mut log = EventLog::default();
        log.feed_port(b"{\"event\":\"ready\"}\n{\"event\":\"fatal\",\"error\":\"x\"}\n");
        assert_eq!(log.fatal(), Some(&json!({"event":"fatal","error":"x"})));
    }

    #[test]
    fn ansi_is_stripped() {
        let text = "\u{1b}[2J\u{1b}[01;01Hhello\n\u{1b}[=3hworld\nlast";
        assert_eq!(tail_lines(text, 2), "world\nlast");
    }
}
