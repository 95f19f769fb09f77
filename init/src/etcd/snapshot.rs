//! Snapshot files: receiving the gateway's snapshot stream into a file, their names
//! (`etcd-20250102T030405Z.db`, UTC) and pruning old ones.
//!
//! The stream is a sequence of `{"result":{"blob":"<base64>","remaining_bytes":"N"}}`
//! messages: the database in pieces, then one last blob holding the sha256 of all the
//! data before it. The file keeps that trailer (`etcdutl snapshot restore` checks it).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::digest::{Context, SHA256, SHA256_OUTPUT_LEN};

use super::gateway::{error_value_message, StreamMessage};
use super::http::io_error;
use super::{EtcdError, RequestError};

/// A snapshot written to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    /// File size, trailer included.
    pub bytes: u64,
    /// sha256 of the whole file (what `sha256sum` prints), lowercase hex.
    pub sha256_hex: String,
}

/// How one attempt failed: at the endpoint (another one may do) or here (none will).
#[derive(Debug)]
pub(super) enum Fail {
    Remote(RequestError),
    Local(EtcdError),
}

/// `dest` with `.tmp` appended.
fn tmp_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Writes the stream in `body` to `dest` through `dest.tmp`; nothing is left behind on
/// failure.
pub(super) fn receive<R: Read>(
    body: R,
    dest: &Path,
    timeout: Duration,
) -> Result<SnapshotInfo, Fail> {
    let tmp = tmp_path(dest);
    let local = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Fail::Local(EtcdError::Write { path, source })
    };
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(local(&tmp))?;
    let written = write_stream(body, file, &tmp, timeout);
    let renamed = written.and_then(|info| {
        fs::rename(&tmp, dest).map_err(local(dest))?;
        if let Some(dir) = dest.parent() {
            // Makes the rename durable; best effort (some filesystems refuse it).
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(info)
    });
    if renamed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    renamed.map(|(bytes, sha256_hex)| SnapshotInfo {
        path: dest.to_path_buf(),
        bytes,
        sha256_hex,
    })
}

/// File size and sha256 of the file.
fn write_stream<R: Read>(
    body: R,
    mut file: File,
    tmp: &Path,
    timeout: Duration,
) -> Result<(u64, String), Fail> {
    let local = |source| {
        Fail::Local(EtcdError::Write {
            path: tmp.to_path_buf(),
            source,
        })
    };
    let remote = |e: RequestError| Fail::Remote(e);
    let mut whole = Context::new(&SHA256);
    let mut data = Context::new(&SHA256);
    let mut bytes = 0u64;
    // The last blob is the trailer: hold each one back until the next arrives.
    let mut held: Option<(Vec<u8>, u64)> = None;
    let messages = serde_json::Deserializer::from_reader(BufReader::new(body));
    for message in messages.into_iter::<StreamMessage>() {
        let message = message.map_err(|e| remote(io_error("read snapshot", e.into(), timeout)))?;
        if let Some(error) = message.error {
            let status = error["http_code"].as_u64().unwrap_or(500);
            return Err(remote(RequestError::Status {
                status: u16::try_from(status).unwrap_or(500),
                message: error_value_message(&serde_json::json!({ "error": error }))
                    .unwrap_or_else(|| error.to_string()),
            }));
        }
        let Some(chunk) = message.result else {
            return Err(remote(RequestError::Malformed(
                "snapshot stream message without result".into(),
            )));
        };
        let blob = STANDARD.decode(&chunk.blob).map_err(|e| {
            remote(RequestError::Malformed(format!(
                "snapshot blob is not base64: {e}"
            )))
        })?;
        if let Some((previous, _)) = held.replace((blob, chunk.remaining_bytes)) {
            file.write_all(&previous).map_err(local)?;
            whole.update(&previous);
            data.update(&previous);
            bytes += previous.len() as u64;
        }
    }
    let Some((trailer, remaining)) = held else {
        return Err(remote(RequestError::Malformed(
            "empty snapshot stream".into(),
        )));
    };
    if remaining != 0 {
        return Err(remote(RequestError::Malformed(format!(
            "snapshot stream ended with {remaining} bytes still to come"
        ))));
    }
    if trailer.len() != SHA256_OUTPUT_LEN || data.finish().as_ref() != trailer.as_slice() {
        return Err(remote(RequestError::Checksum));
    }
    file.write_all(&trailer).map_err(local)?;
    whole.update(&trailer);
    bytes += trailer.len() as u64;
    file.sync_all().map_err(local)?;
    Ok((bytes, crate::pki::hex(whole.finish().as_ref())))
}

const PREFIX: &str = "etcd-";
const SUFFIX: &str = ".db";

/// `etcd-<yyyymmddThhmmssZ>.db` for a UTC time in seconds since the epoch.
pub fn snapshot_name(now_unix: u64) -> String {
    let days = now_unix / 86_400;
    let secs = now_unix % 86_400;
    let (y, m, d) = crate::civil::civil_from_days(days);
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    format!("{PREFIX}{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z{SUFFIX}")
}

/// The time a `snapshot_name` stands for; `None` for any other name.
pub fn parse_snapshot_name(name: &str) -> Option<u64> {
    let stamp = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let b = stamp.as_bytes();
    let shape = b.len() == 16 && b[8] == b'T' && b[15] == b'Z';
    let digits = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = stamp.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if !shape {
        return None;
    }
    let (y, m, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hh, mm, ss) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    let days = crate::civil::days_from_civil(y, m, d)?;
    (hh < 24 && mm < 60 && ss < 60).then_some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Removes the oldest snapshot files in `dir` until `keep` are left; other files are
/// never touched. Returns the removed paths, oldest first.
pub fn prune(dir: &Path, keep: u32) -> Result<Vec<PathBuf>, EtcdError> {
    let read_err = |source| EtcdError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let name = entry.file_name();
        let Some(time) = name.to_str().and_then(parse_snapshot_name) else {
            continue;
        };
        if entry.file_type().map_err(read_err)?.is_file() {
            found.push((time, entry.path()));
        }
    }
    found.sort();
    let excess = found.len().saturating_sub(keep as usize);
    let mut removed = Vec::new();
    for (_, path) in found.into_iter().take(excess) {
        match fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(EtcdError::Write { path, source }),
        }
    }
    Ok(removed)
}
