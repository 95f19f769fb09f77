//! `kiln pxe serve`: the HTTP side of network boot. Serves a PXE bundle folder (vmlinuz,
//! initrd, root.squashfs, boot.ipxe, …) with byte ranges, and per-MAC NoCloud seeds in the
//! shape `ds=nocloud-net;s=http://host/seeds/${mac}/` asks for.
//!
//! `http` owns the protocol subset and the target → route mapping (the only place a URL
//! becomes a file name), `seeds` the MAC → seed folder lookup, `range` and `mac` the pure
//! parsers, `respond` a request's answer (files opened and streamed), `serve` the
//! sockets and threads. Nothing here writes to disk.
//!
//! The seeds carry a node's keys and bootstrap token and are served to anyone who can
//! reach the port and knows (or guesses) a MAC: run it on the provisioning network only.

pub mod bundle;
pub mod http;
pub mod mac;
pub mod range;
mod respond;
pub mod seeds;
pub mod serve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use mac::{normalize_mac, MacError};
pub use range::{parse_range, RangeError};
pub use serve::{Config, Handle, Server};

/// `kiln cluster gen`'s folder of per-node seeds, inside `--seeds`.
pub const NODES: &str = "nodes";

/// Why the server did not start. One line each; sources add the cause.
#[derive(Debug, thiserror::Error)]
pub enum PxeError {
    #[error("{what} {}: no such folder", path.display())]
    NoFolder { what: &'static str, path: PathBuf },
    #[error("{what} {}: not a folder", path.display())]
    NotFolder { what: &'static str, path: PathBuf },
    #[error("invalid --listen {0:?}: expected ADDR:PORT such as 0.0.0.0:8080 or [::]:8080")]
    Listen(String),
    #[error("listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Macs { path: PathBuf, reason: String },
}

/// `--listen`'s value: an IP address and a port (`0` picks a free one).
pub fn parse_listen(s: &str) -> Result<SocketAddr, PxeError> {
    s.trim()
        .parse()
        .map_err(|_| PxeError::Listen(s.to_string()))
}

/// The canonical path of an existing folder given as option `what`.
fn folder(what: &'static str, path: &Path) -> Result<PathBuf, PxeError> {
    let no = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => PxeError::NoFolder {
            what,
            path: path.to_path_buf(),
        },
        _ => PxeError::Read {
            path: path.to_path_buf(),
            source: e,
        },
    };
    let meta = std::fs::metadata(path).map_err(no)?;
    if !meta.is_dir() {
        return Err(PxeError::NotFolder {
            what,
            path: path.to_path_buf(),
        });
    }
    std::fs::canonicalize(path).map_err(no)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        for good in [
            "0.0.0.0:8080",
            "127.0.0.1:0",
            "[::]:80",
            "[::1]:8080",
            " 10.0.0.1:1 ",
        ] {
            assert!(parse_listen(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "8080",
            ":8080",
            "localhost:8080",
            "0.0.0.0",
            "1.2.3.4:99999",
            "::1:80",
        ] {
            let Err(e) = parse_listen(bad) else {
                panic!("{bad:?} accepted");
            };
            let want = format!("invalid --listen {bad:?}: expected ADDR:PORT such as ");
            assert!(e.to_string().starts_with(&want), "{e}");
        }
    }
}
