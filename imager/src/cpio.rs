//! newc ("070701") cpio archive writer for the initramfs.
//!
//! Owns the byte layout of the archive only: headers, name and data padding, the trailer.
//! Entries are written in the order given, with uid/gid 0, mtime 0 and inode numbers
//! assigned sequentially from 1, so the same calls always produce the same bytes. It does
//! not touch the filesystem and does not decide what goes into the initramfs.

use std::collections::BTreeSet;
use std::io::Write;

const MAGIC: &[u8] = b"070701";
const TRAILER: &str = "TRAILER!!!";
const HEADER_LEN: usize = 110;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// Errors from building a cpio archive.
#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    #[error("invalid cpio path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("duplicate cpio entry {0:?}")]
    Duplicate(String),
    #[error("mode {mode:#o} of cpio entry {path:?} has bits outside 0o7777")]
    InvalidMode { path: String, mode: u32 },
    #[error("cpio entry {path:?} is {size} bytes, over the newc limit of 4 GiB")]
    TooLarge { path: String, size: u64 },
    #[error("empty symlink target for cpio entry {0:?}")]
    EmptyTarget(String),
    #[error("writing cpio entry {path:?}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Streams a newc cpio archive into `W`.
pub struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
    seen: BTreeSet<String>,
}

/// The numeric fields of one newc header.
struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    filesize: u32,
    rdev: (u32, u32),
}

impl<W: Write> CpioWriter<W> {
    /// Starts an empty archive.
    pub fn new(w: W) -> Self {
        Self {
            out: w,
            next_ino: 1,
            written: 0,
            seen: BTreeSet::new(),
        }
    }

    /// Adds a directory; `mode` holds the permission bits, e.g. `0o755`.
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<(), CpioError> {
        self.entry(path, S_IFDIR, mode, 2, (0, 0), &[])
    }

    /// Adds a regular file with the given contents.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<(), CpioError> {
        self.entry(path, S_IFREG, mode, 1, (0, 0), data)
    }

    /// Adds a symbolic link (mode 0o777) pointing at `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), CpioError> {
        if target.is_empty() {
            return Err(CpioError::EmptyTarget(path.to_owned()));
        }
        self.entry(path, S_IFLNK, 0o777, 1, (0, 0), target.as_bytes())
    }

    /// Adds a character device node, e.g. `dev/console` (5, 1).
    pub fn char_dev(
        &mut self,
        path: &str,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        self.entry(path, S_IFCHR, mode, 1, (major, minor), &[])
    }

    /// Writes the `TRAILER!!!` entry, pads the archive to 512 bytes and returns the writer.
    pub fn finish(mut self) -> Result<W, CpioError> {
        let header = Header {
            ino: 0,
            mode: 0,
            nlink: 1,
            filesize: 0,
            rdev: (0, 0),
        };
        self.raw_entry(TRAILER, &header, &[])?;
        let pad = (512 - self.written % 512) % 512;
        self.put(TRAILER, &vec![0; pad as usize])?;
        self.out.flush().map_err(|source| CpioError::Write {
            path: TRAILER.to_owned(),
            source,
        })?;
        Ok(self.out)
    }

    fn entry(
        &mut self,
        path: &str,
        kind: u32,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> Result<(), CpioError> {
        check_path(path)?;
        if mode & !0o7777 != 0 {
            return Err(CpioError::InvalidMode {
                path: path.to_owned(),
                mode,
            });
        }
        let filesize = u32::try_from(data.len()).map_err(|_| CpioError::TooLarge {
            path: path.to_owned(),
            size: data.len() as u64,
        })?;
        if !self.seen.insert(path.to_owned()) {
            return Err(CpioError::Duplicate(path.to_owned()));
        }
        let header = Header {
            ino: self.next_ino,
            mode: kind | mode,
            nlink,
            filesize,
            rdev,
        };
        self.next_ino += 1;
        self.raw_entry(path, &header, data)
    }

    fn raw_entry(&mut self, path: &str, h: &Header, data: &[u8]) -> Result<(), CpioError> {
        let mut head = Vec::with_capacity(HEADER_LEN + path.len() + 4);
        head.extend_from_slice(MAGIC);
        let name_size = path.len() as u32 + 1;
        let fields = [
            h.ino, h.mode, 0, 0, h.nlink, 0, h.filesize, 0, 0, h.rdev.0, h.rdev.1, name_size, 0,
        ];
        for field in fields {
            head.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        head.extend_from_slice(path.as_bytes());
        head.push(0);
        head.resize(head.len().next_multiple_of(4), 0);
        self.put(path, &head)?;
        self.put(path, data)?;
        let pad = data.len().next_multiple_of(4) - data.len();
        self.put(path, &[0; 3][..pad])
    }

    fn put(&mut self, path: &str, bytes: &[u8]) -> Result<(), CpioError> {
        self.out
            .write_all(bytes)
            .map_err(|source| CpioError::Write {
                path: path.to_owned(),
                source,
            })?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// Accepts relative paths such as `dev/console`: no leading `/`, no empty, `.` or `..`
/// components, no NUL, and not the trailer name.
fn check_path(path: &str) -> Result<(), CpioError> {
    let bad = |reason| {
        Err(CpioError::InvalidPath {
            path: path.to_owned(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("empty");
    }
    if path.starts_with('/') {
        return bad("leading '/'");
    }
    if path.contains('\0') {
        return bad("contains NUL");
    }
    if path == TRAILER {
        return bad("reserved trailer name");
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("empty, '.' or '..' component");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};

    fn sample() -> Vec<u8> {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("dev", 0o755).unwrap();
        w.char_dev("dev/console", 0o600, 5, 1).unwrap();
        w.dir("etc", 0o755).unwrap();
        w.file("etc/hostname", 0o644, b"kiln\n").unwrap();
        w.file("init", 0o755, b"#!/bin/sh\necho hi\n").unwrap();
        w.file("empty", 0o644, b"").unwrap();
        w.symlink("sbin", "usr/sbin").unwrap();
        w.finish().unwrap()
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-cpio-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn have_cpio() -> bool {
        Command::new("cpio").arg("--version").output().is_ok()
    }

    fn run_cpio(args: &[&str], dir: &std::path::Path, input: &[u8]) -> std::process::Output {
        let mut child = Command::new("cpio")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    #[test]
    fn layout_is_aligned_and_deterministic() {
        let a = sample();
        assert_eq!(a, sample());
        assert_eq!(a.len() % 512, 0);
        assert_eq!(&a[..6], MAGIC);
        // first entry: ino 1, directory 0o755, nlink 2, name "dev" padded to 4 bytes
        let head = std::str::from_utf8(&a[..HEADER_LEN]).unwrap();
        assert_eq!(&head[6..14], "00000001");
        assert_eq!(&head[14..22], "000041ed");
        assert_eq!(&head[38..46], "00000002");
        assert_eq!(&a[HEADER_LEN..HEADER_LEN + 4], b"dev\0");
        assert_eq!(&a[HEADER_LEN + 4..HEADER_LEN + 6], [0, 0]);
        assert_eq!(&a[HEADER_LEN + 6..HEADER_LEN + 12], MAGIC);
        let trailer = a
            .windows(TRAILER.len())
            .position(|w| w == TRAILER.as_bytes());
        assert!(trailer.is_some());
    }

    #[test]
    fn bad_inputs_are_rejected() {
        type Case = (&'static str, fn(&CpioError) -> bool);
        let cases: [Case; 8] = [
            ("", |e| matches!(e, CpioError::InvalidPath { .. })),
            ("/abs", |e| matches!(e, CpioError::InvalidPath { .. })),
            ("a//b", |e| matches!(e, CpioError::InvalidPath { .. })),
            ("a/../b", |e| matches!(e, CpioError::InvalidPath { .. })),
            ("./a", |e| matches!(e, CpioError::InvalidPath { .. })),
            ("a\0b", |e| matches!(e, CpioError::InvalidPath { .. })),
            ("TRAILER!!!", |e| matches!(e, CpioError::InvalidPath { .. })),
            (
                "dup",
                |e| matches!(e, CpioError::Duplicate(p) if p == "dup"),
            ),
        ];
        for (path, check) in cases {
            let mut w = CpioWriter::new(Vec::new());
            w.dir("dup", 0o755).unwrap();
            let err = w.file(path, 0o644, b"x").unwrap_err();
            assert!(check(&err), "{path:?}: {err:?}");
        }
        let mut w = CpioWriter::new(Vec::new());
        let err = w.file("x", 0o100_644, b"").unwrap_err();
        assert!(matches!(
            err,
            CpioError::InvalidMode {
                mode: 0o100_644,
                ..
            }
        ));
        let err = w.symlink("l", "").unwrap_err();
        assert!(matches!(err, CpioError::EmptyTarget(p) if p == "l"));
    }

    #[test]
    fn gnu_cpio_lists_archive() {
        if !have_cpio() {
            println!("skipped: cpio not installed");
            return;
        }
        let dir = scratch("list");
        let out = run_cpio(&["-itv", "--quiet"], &dir, &sample());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let rows: Vec<(String, String)> = text
            .lines()
            .map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                let name_at = cols.iter().position(|c| *c == "1970").unwrap() + 1;
                (cols[0].to_owned(), cols[name_at..].join(" "))
            })
            .collect();
        let expect = [
            ("drwxr-xr-x", "dev"),
            ("crw-------", "dev/console"),
            ("drwxr-xr-x", "etc"),
            ("-rw-r--r--", "etc/hostname"),
            ("-rwxr-xr-x", "init"),
            ("-rw-r--r--", "empty"),
            ("lrwxrwxrwx", "sbin -> usr/sbin"),
        ];
        let got: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(got, expect);
        assert!(text.contains("5,   1") || text.contains("5, 1"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gnu_cpio_extracts_contents() {
        if !have_cpio() {
            println!("skipped: cpio not installed");
            return;
        }
        let dir = scratch("extract");
        let out = run_cpio(&["-idm", "--quiet"], &dir, &sample());
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            // Only the device node may fail (mknod needs CAP_MKNOD).
            assert!(
                stderr.lines().all(|l| l.contains("dev/console")),
                "{stderr}"
            );
            println!("note: dev/console not extracted: {stderr}");
        }
        assert_eq!(std::fs::read(dir.join("etc/hostname")).unwrap(), b"kiln\n");
        assert_eq!(
            std::fs::read(dir.join("init")).unwrap(),
            b"#!/bin/sh\necho hi\n"
        );
        assert_eq!(std::fs::read(dir.join("empty")).unwrap(), b"");
        let link = std::fs::read_link(dir.join("sbin")).unwrap();
        assert_eq!(link, PathBuf::from("usr/sbin"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
