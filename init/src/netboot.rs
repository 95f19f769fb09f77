//! Stage 1's network part: with `kiln.root=http://…` it downloads the squashfs root into
//! RAM, refuses it unless its SHA-256 matches `kiln.root.sha256`, and binds it to a loop
//! device for mounting; with `ds=nocloud-net;s=http://…/` it fetches the NoCloud seed for
//! stage 2 (which has no network yet when it reads its config).
//!
//! Owns the hand-over folder `SEED_DIR` (the seed files plus `status`: `found`, `absent`
//! or `error: <reason>`, and `source`: the URL). The network itself is the DHCP client's.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::events;
use crate::fetch::{self, FetchError, HttpUrl};
use crate::loopdev::{self, LoopError};
use crate::report::Reporter;

/// Where the root image is downloaded to (tmpfs; unlinked once the loop device holds it).
pub const ROOT_FILE: &str = "/run/kiln/root.squashfs";
/// The fetched NoCloud seed, handed to stage 2 through the carried /run.
pub const SEED_DIR: &str = "/run/kiln/nocloud-net";
/// The NoCloud files discovery reads (`discovery::NOCLOUD`); meta-data, first, decides
/// whether there is a seed at all.
pub const SEED_FILES: [&str; 3] = ["meta-data", "user-data", "network-config"];
/// How long to keep trying while the network or the server come up.
const PATIENCE: Duration = Duration::from_secs(90);
const PAUSE: Duration = Duration::from_secs(2);

/// Why the network root could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NetbootError {
    #[error("kiln.root")]
    Url(#[source] FetchError),
    #[error("create {0}")]
    Create(PathBuf, #[source] io::Error),
    #[error("download the root")]
    Download(#[source] FetchError),
    #[error(
        "root image {url} has sha256 {got}, the kernel command line wants {want}: refusing it"
    )]
    Digest {
        url: String,
        got: String,
        want: String,
    },
    #[error("open {0}")]
    Open(PathBuf, #[source] io::Error),
    #[error("loop device for the root")]
    Loop(#[source] LoopError),
}

/// Downloads the root into `ROOT_FILE`, checks it, binds it to a loop device and unlinks
/// the file (the device keeps it); returns the device, to be held open until mounted.
pub fn fetch_root(
    reporter: &mut Reporter,
    url: &str,
    want: &str,
) -> Result<loopdev::Attached, NetbootError> {
    let parsed = fetch::parse_url(url).map_err(NetbootError::Url)?;
    let path = Path::new(ROOT_FILE);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| NetbootError::Create(dir.into(), e))?;
    }
    reporter.info(&format!("downloading root {url}"));
    let start = Instant::now();
    let fetched = {
        let mut open = || {
            File::create(path)
                .map(|f| BufWriter::with_capacity(1 << 20, f))
                .map_err(|source| FetchError::Write {
                    url: url.to_string(),
                    source,
                })
        };
        let mut retry = |n: u32, e: &FetchError| {
            let reason = crate::chain::error_chain(e);
            reporter.info(&format!(
                "root download attempt {n} failed: {reason}; retrying"
            ));
        };
        fetch::get_retrying(&parsed, PATIENCE, PAUSE, &mut open, &mut retry)
    };
    let fetched = match fetched {
        Ok((f, _)) => f,
        Err(e) => {
            let _ = std::fs::remove_file(path);
            return Err(NetbootError::Download(e));
        }
    };
    if fetched.sha256 != want {
        let _ = std::fs::remove_file(path);
        return Err(NetbootError::Digest {
            url: url.to_string(),
            got: fetched.sha256,
            want: want.to_string(),
        });
    }
    reporter.event(&events::root_fetched(
        url,
        fetched.bytes,
        &fetched.sha256,
        start.elapsed(),
    ));
    let file = OpenOptions::new()
        .read(true)
        .open(path)
        .map_err(|e| NetbootError::Open(path.into(), e))?;
    let attached = loopdev::attach_read_only(Path::new("/dev"), &file, Path::new(url))
        .map_err(NetbootError::Loop)?;
    // The loop device holds the file open; nobody needs its name any more.
    let _ = std::fs::remove_file(path);
    Ok(attached)
}

/// The URL of a `ds=nocloud[-net];s=http://…` seed on the command line, if any.
pub fn http_seed(cmdline: &str) -> Option<String> {
    let ds = crate::discovery::cmdline_ds(cmdline)?;
    match crate::discovery::seed(&ds) {
        Ok(crate::discovery::Seed::Http(url)) => Some(url),
        _ => None,
    }
}

/// What stage 1 found at a seed URL, as stage 2 reads it back from `SEED_DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedStatus {
    Found,
    /// meta-data answered 404: no config for this node, boot with defaults.
    Absent,
    Error(String),
}

impl SeedStatus {
    pub fn render(&self) -> String {
        match self {
            SeedStatus::Found => "found".into(),
            SeedStatus::Absent => "absent".into(),
            SeedStatus::Error(why) => format!("error: {why}"),
        }
    }

    pub fn parse(text: &str) -> SeedStatus {
        match text.trim() {
            "found" => SeedStatus::Found,
            "absent" => SeedStatus::Absent,
            other => SeedStatus::Error(other.strip_prefix("error: ").unwrap_or(other).to_string()),
        }
    }
}

/// Fetches the seed at `base` into `dir` (created fresh) and records the outcome there;
/// never fails, stage 2 decides what an error means.
pub fn fetch_seed(reporter: &mut Reporter, base: &str, dir: &Path) -> SeedStatus {
    let status = match std::fs::create_dir_all(dir) {
        Err(e) => SeedStatus::Error(format!("create {}: {e}", dir.display())),
        Ok(()) => match fetch_seed_files(base, dir) {
            Ok(true) => SeedStatus::Found,
            Ok(false) => SeedStatus::Absent,
            Err(e) => SeedStatus::Error(crate::chain::error_chain(&e)),
        },
    };
    let _ = std::fs::write(dir.join("source"), base);
    let _ = std::fs::write(dir.join("status"), status.render());
    reporter.event(&events::seed_fetched(base, &status.render()));
    status
}

fn fetch_seed_files(base: &str, dir: &Path) -> Result<bool, FetchError> {
    let base_url: HttpUrl = fetch::parse_url(base)?;
    for (i, name) in SEED_FILES.iter().enumerate() {
        let url = base_url.join(name);
        let mut open = || Ok(Vec::new());
        let body = match fetch::get_retrying(&url, PATIENCE, PAUSE, &mut open, &mut |_, _| ()) {
            Ok((_, body)) => body,
            Err(e) if e.status() == Some(404) && i == 0 => return Ok(false),
            Err(e) if e.status() == Some(404) => continue,
            Err(e) => return Err(e),
        };
        crate::atomic::write(&dir.join(name), &body, 0o600).map_err(|source| {
            FetchError::Write {
                url: url.to_string(),
                source,
            }
        })?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetches_exactly_what_discovery_reads() {
        let mut fetched = SEED_FILES.to_vec();
        let mut read = crate::discovery::NOCLOUD.paths();
        fetched.sort_unstable();
        read.sort_unstable();
        assert_eq!(fetched, read);
    }

    #[test]
    fn seed_status_round_trips() {
        for s in [
            SeedStatus::Found,
            SeedStatus::Absent,
            SeedStatus::Error("http://h/seeds/x/user-data: HTTP 500".into()),
        ] {
            assert_eq!(SeedStatus::parse(&s.render()), s);
        }
        assert_eq!(SeedStatus::parse("found\n"), SeedStatus::Found);
    }

    #[test]
    fn http_seed_only_for_http_urls() {
        let cases = [
            (
                "ds=nocloud-net;s=http://10.0.2.2:8080/seeds/52-54-00-00-00-01/",
                Some("http://10.0.2.2:8080/seeds/52-54-00-00-00-01/"),
            ),
            ("ds=nocloud;s=file:///seed/", None),
            ("ds=nocloud-net;s=https://h/", None),
            ("console=ttyS0", None),
        ];
        for (line, want) in cases {
            assert_eq!(http_seed(line).as_deref(), want, "{line}");
        }
    }
}
