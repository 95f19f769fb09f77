//! Log files: rotation, the forwarding rate limit, write errors, line splitting and a
//! reader that panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Cursor, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::logs::{numbered, spawn_reader, EventQueue, LogSink, RotatingFile, Rotation};
use crate::events::{encode, Event};
use crate::testutil::TempDir;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|_| "<missing>".into())
}

fn drained(queue: &EventQueue) -> Vec<String> {
    let mut out = Vec::new();
    queue.drain(&mut |e: &Event| out.push(encode(e, Duration::ZERO)[20..].to_string()));
    out
}

fn sink(path: &Path, rotation: Rotation, forward: Option<u32>) -> (LogSink, EventQueue) {
    let queue = EventQueue::default();
    let file = RotatingFile::new(path.to_path_buf(), rotation);
    (LogSink::new("svc", file, queue.clone(), forward), queue)
}

#[test]
fn rotates_by_size_keeping_n_files() {
    // Each line is 6 bytes; 15 bytes hold two.
    let cases = [
        (
            2,
            [
                "line8\nline9\n",
                "line6\nline7\n",
                "line4\nline5\n",
                "<missing>",
            ],
        ),
        (
            1,
            ["line8\nline9\n", "line6\nline7\n", "<missing>", "<missing>"],
        ),
        (0, ["line8\nline9\n", "<missing>", "<missing>", "<missing>"]),
    ];
    for (keep, want) in cases {
        let tmp = TempDir::new("rotate");
        let log = tmp.path().join("sub/svc.log");
        let (mut sink, _) = sink(
            &log,
            Rotation {
                max_bytes: 15,
                keep,
            },
            None,
        );
        for n in 0..10 {
            sink.line(format!("line{n}\n").as_bytes(), Duration::ZERO);
        }
        let got = [
            read(&log),
            read(&numbered(&log, 1)),
            read(&numbered(&log, 2)),
            read(&numbered(&log, 3)),
        ];
        assert_eq!(got, want, "keep {keep}");
    }
}

#[test]
fn appends_to_an_existing_file_and_counts_its_size() {
    let tmp = TempDir::new("append");
    let log = tmp.write("svc.log", "0123456789abcdef\n");
    let (mut sink, _) = sink(
        &log,
        Rotation {
            max_bytes: 20,
            keep: 1,
        },
        None,
    );
    sink.line(b"no newline", Duration::ZERO);
    assert_eq!(read(&numbered(&log, 1)), "0123456789abcdef\n");
    assert_eq!(read(&log), "no newline\n");
}

#[test]
fn forwards_lines_within_the_rate_limit() {
    let tmp = TempDir::new("forward");
    let (mut sink, queue) = sink(&tmp.path().join("l"), Rotation::default(), Some(3));
    for (ms, line) in [
        (0, "a"),
        (100, "b\r\n"),
        (200, "c"),
        (300, "d"),
        (999, "e"),
        (1000, "f"),
    ] {
        sink.line(line.as_bytes(), Duration::from_millis(ms));
    }
    let want = [
        r#""log","service":"svc","line":"a"}"#,
        r#""log","service":"svc","line":"b"}"#,
        r#""log","service":"svc","line":"c"}"#,
        r#""log_dropped","service":"svc","lines":2}"#,
        r#""log","service":"svc","line":"f"}"#,
    ];
    assert_eq!(drained(&queue), want);
    assert_eq!(read(&tmp.path().join("l")), "a\nb\r\nc\nd\ne\nf\n");
}

#[test]
fn reports_a_write_failure_once_until_it_recovers() {
    let tmp = TempDir::new("unwritable");
    let blocker = tmp.write("blocker", "a file where a directory should be");
    let (mut sink, queue) = sink(&blocker.join("svc.log"), Rotation::default(), None);
    sink.line(b"one", Duration::ZERO);
    sink.line(b"two", Duration::ZERO);
    let got = drained(&queue);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(r#""log_error","service":"svc","error":"open log "#),
        "{got:?}"
    );
    assert!(got[0].ends_with("File exists (os error 17)\"}"), "{got:?}");
}

#[test]
fn reader_splits_long_lines_and_keeps_the_last_partial_one() {
    let tmp = TempDir::new("reader");
    let log = tmp.path().join("svc.log");
    let (sink, queue) = sink(&log, Rotation::default(), None);
    let mut input = vec![b'x'; 8192 + 10];
    input.extend_from_slice(b"\nshort\ntail");
    let handle = spawn_reader(
        "svc",
        Cursor::new(input),
        Arc::new(Mutex::new(sink)),
        queue,
        || Duration::ZERO,
    )
    .unwrap();
    handle.join().unwrap();
    let text = read(&log);
    let lines: Vec<usize> = text.lines().map(str::len).collect();
    assert_eq!(lines, [8192, 10, 5, 4]);
}

struct Panicky;

impl Read for Panicky {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        panic!("boom")
    }
}

#[test]
fn a_panicking_reader_is_reported_not_propagated() {
    let tmp = TempDir::new("panic");
    let (sink, queue) = sink(&tmp.path().join("l"), Rotation::default(), None);
    let handle = spawn_reader(
        "svc",
        Panicky,
        Arc::new(Mutex::new(sink)),
        queue.clone(),
        || Duration::ZERO,
    )
    .unwrap();
    assert!(handle.join().is_ok());
    assert_eq!(
        drained(&queue),
        [r#""log_error","service":"svc","error":"panic: boom"}"#]
    );
}
