//! Reading `.deb` packages: the outer `ar` container, the compressed `data.tar` and
//! `control.tar` members, and their tar entries.
//!
//! Owns the binary .deb format only. It must not touch the filesystem, run maintainer
//! scripts or decide where entries go: entries are streamed, in archive order, to a caller
//! sink with normalized paths. Symlink targets are kept verbatim (they are data, resolved
//! later inside the image); paths and hardlink targets containing `..` are rejected.

use std::io::{self, Read};

use thiserror::Error;

/// What a tar entry is, with its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file and its full contents.
    File(Vec<u8>),
    /// A symbolic link and its target, verbatim.
    Symlink(String),
    /// A hard link to an earlier entry, by normalized path.
    Hardlink(String),
}

/// One entry of a .deb's data or control tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Normalized: no leading `./` or `/`, no trailing `/`, e.g. `usr/bin/foo`.
    pub path: String,
    /// Permission bits including setuid/setgid/sticky, without file type bits.
    pub mode: u32,
    /// Owner user id as recorded in the archive.
    pub uid: u32,
    /// Owner group id as recorded in the archive.
    pub gid: u32,
    /// Type and payload.
    pub kind: EntryKind,
}

/// Errors while reading a .deb.
#[derive(Debug, Error)]
pub enum DebError {
    #[error("not a .deb package (no ar archive starting with debian-binary)")]
    NotADeb,
    #[error("reading the ar container")]
    Ar(#[source] io::Error),
    #[error("no data.tar member in the .deb")]
    NoDataMember,
    #[error("no control.tar member in the .deb")]
    NoControlMember,
    #[error("no control file in control.tar")]
    NoControlFile,
    #[error("control file is not UTF-8")]
    ControlNotUtf8,
    #[error("unknown compression of member {0}")]
    UnknownCompression(String),
    #[error("reading tar member {member}")]
    Tar {
        member: String,
        #[source]
        source: io::Error,
    },
    #[error("entry path {0:?} is not UTF-8")]
    NonUtf8Path(String),
    #[error("unsafe entry path {0:?}")]
    UnsafePath(String),
    #[error("link entry {0} has no target")]
    MissingLinkTarget(String),
    #[error("unsupported {kind} entry {path}")]
    Unsupported { path: String, kind: String },
    #[error("sink failed on {path}")]
    Sink {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

const AR_MAGIC: &[u8] = b"!<arch>\n";

/// Reads an ar-format .deb, finds `data.tar{,.xz,.zst,.gz}` and streams its entries to
/// `sink` in archive order. The root `./` entry is skipped. The first sink error stops
/// extraction and is returned unchanged.
pub fn extract_data(
    deb: &[u8],
    sink: &mut dyn FnMut(Entry) -> Result<(), DebError>,
) -> Result<(), DebError> {
    with_member(
        deb,
        "data.tar",
        DebError::NoDataMember,
        &mut |name, reader| read_tar(name, reader, sink),
    )
}

/// The decompressed `data.tar` of a .deb, for callers that cache it (see [`extract_tar`]).
pub fn data_tar(deb: &[u8]) -> Result<Vec<u8>, DebError> {
    let mut out = Vec::new();
    with_member(
        deb,
        "data.tar",
        DebError::NoDataMember,
        &mut |name, reader| {
            reader.read_to_end(&mut out).map_err(|e| tar_err(name, e))?;
            Ok(())
        },
    )?;
    Ok(out)
}

/// Streams the entries of an uncompressed `data.tar` (as returned by [`data_tar`]).
pub fn extract_tar(
    tar: &[u8],
    sink: &mut dyn FnMut(Entry) -> Result<(), DebError>,
) -> Result<(), DebError> {
    read_tar("data.tar", &mut { tar }, sink)
}

/// Reads `control.tar.*` of a .deb and returns the text of its `control` file.
pub fn control_text(deb: &[u8]) -> Result<String, DebError> {
    let mut control = None;
    with_member(
        deb,
        "control.tar",
        DebError::NoControlMember,
        &mut |name, reader| {
            read_tar(name, reader, &mut |entry| {
                if let (true, EntryKind::File(data)) = (entry.path == "control", entry.kind) {
                    control = Some(data);
                }
                Ok(())
            })
        },
    )?;
    let data = control.ok_or(DebError::NoControlFile)?;
    String::from_utf8(data).map_err(|_| DebError::ControlNotUtf8)
}

/// Finds the ar member named `stem` or `stem.<compression>` and hands its decompressed
/// stream to `f`.
fn with_member(
    deb: &[u8],
    stem: &str,
    missing: DebError,
    f: &mut dyn FnMut(&str, &mut dyn Read) -> Result<(), DebError>,
) -> Result<(), DebError> {
    if !deb.starts_with(AR_MAGIC) {
        return Err(DebError::NotADeb);
    }
    let mut archive = ar::Archive::new(deb);
    let mut first = true;
    while let Some(member) = archive.next_entry() {
        let member = member.map_err(DebError::Ar)?;
        let name = member_name(member.header().identifier());
        if std::mem::take(&mut first) && name != "debian-binary" {
            return Err(DebError::NotADeb);
        }
        let Some(rest) = name.strip_prefix(stem) else {
            continue;
        };
        let buffered = io::BufReader::with_capacity(1 << 16, member);
        return match rest {
            "" => f(&name, &mut { buffered }),
            ".xz" => f(&name, &mut liblzma::bufread::XzDecoder::new(buffered)),
            ".gz" => f(&name, &mut flate2::bufread::MultiGzDecoder::new(buffered)),
            ".zst" => {
                let mut decoder = zstd::stream::read::Decoder::with_buffer(buffered)
                    .map_err(|source| tar_err(&name, source))?;
                f(&name, &mut decoder)
            }
            _ => Err(DebError::UnknownCompression(name)),
        };
    }
    if first {
        return Err(DebError::NotADeb);
    }
    Err(missing)
}

fn member_name(identifier: &[u8]) -> String {
    let name = String::from_utf8_lossy(identifier);
    name.trim_end_matches('/').to_string()
}

fn tar_err(member: &str, source: io::Error) -> DebError {
    DebError::Tar {
        member: member.to_string(),
        source,
    }
}

/// Streams the entries of one (decompressed) tarball to `sink`.
fn read_tar(
    member: &str,
    reader: &mut dyn Read,
    sink: &mut dyn FnMut(Entry) -> Result<(), DebError>,
) -> Result<(), DebError> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| tar_err(member, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| tar_err(member, e))?;
        if let Some(entry) = convert(member, entry)? {
            sink(entry)?;
        }
    }
    Ok(())
}

/// Converts a tar entry; `None` for the root directory and pax global headers.
fn convert(
    member: &str,
    mut entry: tar::Entry<'_, &mut dyn Read>,
) -> Result<Option<Entry>, DebError> {
    use tar::EntryType as T;
    let raw = utf8(&entry.path_bytes())?;
    let header = entry.header();
    let ty = header.entry_type();
    if ty == T::XGlobalHeader {
        return Ok(None);
    }
    let path = normalize(&raw)?;
    let mode = header.mode().map_err(|e| tar_err(member, e))? & 0o7777;
    let uid = header.uid().map_err(|e| tar_err(member, e))?;
    let gid = header.gid().map_err(|e| tar_err(member, e))?;
    let uid = u32::try_from(uid).map_err(|_| unsupported(&raw, "uid overflow"))?;
    let gid = u32::try_from(gid).map_err(|_| unsupported(&raw, "gid overflow"))?;
    let kind = match ty {
        T::Directory => EntryKind::Dir,
        T::Regular | T::Continuous => {
            let mut data = Vec::with_capacity(capacity_hint(entry.size()));
            entry
                .read_to_end(&mut data)
                .map_err(|e| tar_err(member, e))?;
            EntryKind::File(data)
        }
        T::Symlink => EntryKind::Symlink(link_target(&entry, &raw)?),
        T::Link => EntryKind::Hardlink(normalize(&link_target(&entry, &raw)?)?),
        T::Char => return Err(unsupported(&raw, "character device")),
        T::Block => return Err(unsupported(&raw, "block device")),
        T::Fifo => return Err(unsupported(&raw, "fifo")),
        other => {
            return Err(unsupported(
                &raw,
                &format!("tar type {:?}", other.as_byte()),
            ))
        }
    };
    if path.is_empty() {
        return match kind {
            EntryKind::Dir => Ok(None),
            _ => Err(DebError::UnsafePath(raw)),
        };
    }
    Ok(Some(Entry {
        path,
        mode,
        uid,
        gid,
        kind,
    }))
}

fn link_target(entry: &tar::Entry<'_, &mut dyn Read>, path: &str) -> Result<String, DebError> {
    let target = entry
        .link_name_bytes()
        .ok_or_else(|| DebError::MissingLinkTarget(path.to_string()))?;
    utf8(&target)
}

/// Pre-allocation for a file body; capped because the size field is untrusted.
fn capacity_hint(size: u64) -> usize {
    usize::try_from(size.min(64 << 20)).unwrap_or(0)
}

fn utf8(bytes: &[u8]) -> Result<String, DebError> {
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|_| DebError::NonUtf8Path(String::from_utf8_lossy(bytes).into_owned()))
}

fn unsupported(path: &str, kind: &str) -> DebError {
    DebError::Unsupported {
        path: path.to_string(),
        kind: kind.to_string(),
    }
}

/// Drops leading `/`, `.` components and empty components; rejects `..`.
/// Returns the empty string for the archive root.
fn normalize(raw: &str) -> Result<String, DebError> {
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(DebError::UnsafePath(raw.to_string())),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests;
