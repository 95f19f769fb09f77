//! The build's progress display on stderr: one line per phase with its time, and a live
//! counter for downloads when stderr is a terminal.
//!
//! Owns presentation only; phases report through it and never print themselves.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

pub struct Progress {
    start: Instant,
    phase: Mutex<Option<(String, Instant)>>,
    tty: bool,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Progress {
            start: Instant::now(),
            phase: Mutex::new(None),
            tty: std::io::stderr().is_terminal(),
            quiet,
        }
    }

    /// Starts a phase, closing the previous one with its duration.
    pub fn phase(&self, name: &str) {
        self.finish_phase();
        if let Ok(mut p) = self.phase.lock() {
            *p = Some((name.to_string(), Instant::now()));
        }
        if !self.quiet && self.tty {
            eprint!("  {name} …");
        }
    }

    /// A detail of the current phase shown on the phase's closing line.
    pub fn note(&self, text: &str) {
        if let Ok(mut p) = self.phase.lock() {
            if let Some((name, _)) = p.as_mut() {
                name.push_str(&format!(" ({text})"));
            }
        }
    }

    pub fn finish_phase(&self) {
        let Ok(mut p) = self.phase.lock() else { return };
        if let Some((name, t)) = p.take() {
            if !self.quiet {
                let clear = if self.tty { "\r\x1b[K" } else { "" };
                eprintln!("{clear}  {name}: {:.1}s", t.elapsed().as_secs_f64());
            }
        }
    }

    /// Live counter (terminal only): `done/total` items and bytes.
    pub fn bytes(&self, label: &str, items: u64, done: u64, total: u64) {
        if self.quiet || !self.tty {
            return;
        }
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        eprint!(
            "\r\x1b[K  {label}: {items} files, {:.1}/{:.1} MiB",
            mib(done),
            mib(total)
        );
        let _ = std::io::stderr().flush();
    }

    pub fn elapsed(&self) -> std::time::Duration {
        self.start.elapsed()
    }
}
