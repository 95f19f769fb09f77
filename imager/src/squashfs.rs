//! Writes a [`Tree`] as a squashfs (zstd) image, in-process and byte-reproducibly.
//!
//! Owns the squashfs settings (block size, compression level, fixed timestamps). It must
//! not decide the tree's content.

use std::io::{Cursor, Seek, Write};

use backhand::compression::{CompressionOptions, Compressor, Zstd};
use backhand::{FilesystemCompressor, FilesystemWriter, NodeHeader};

use crate::tree::{Node, Tree};

/// Every inode and the superblock carry this time, so rebuilds are byte-identical.
pub const MTIME: u32 = 0;
/// zstd level, set explicitly: the crate default may change between releases.
pub const ZSTD_LEVEL: u32 = 3;
const BLOCK_SIZE: u32 = 128 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SquashfsError {
    #[error("squashfs: add {path}")]
    Add {
        path: String,
        #[source]
        source: backhand::BackhandError,
    },
    #[error("squashfs: write image")]
    Write(#[source] backhand::BackhandError),
    #[error("squashfs: set compressor")]
    Compressor(#[source] backhand::BackhandError),
}

fn header(mode: u32, uid: u32, gid: u32) -> NodeHeader {
    NodeHeader {
        permissions: (mode & 0o7777) as u16,
        uid,
        gid,
        mtime: MTIME,
    }
}

/// Writes `tree` to `w`; returns the image size in bytes.
pub fn write<W: Write + Seek>(tree: &Tree, w: W) -> Result<u64, SquashfsError> {
    let mut fs = FilesystemWriter::default();
    fs.set_time(MTIME);
    fs.set_block_size(BLOCK_SIZE);
    fs.set_root_mode(0o755);
    let opts = CompressionOptions::Zstd(Zstd {
        compression_level: ZSTD_LEVEL,
    });
    let comp = FilesystemCompressor::new(Compressor::Zstd, Some(opts))
        .map_err(SquashfsError::Compressor)?;
    fs.set_compressor(comp);
    for (path, e) in tree.iter() {
        let h = header(e.mode, e.uid, e.gid);
        let add = |source| SquashfsError::Add {
            path: path.clone(),
            source,
        };
        match &e.node {
            Node::Dir => fs.push_dir(path, h).map_err(add)?,
            Node::File(data) => fs
                .push_file(Cursor::new(data.as_slice()), path, h)
                .map_err(add)?,
            Node::Symlink(t) => fs.push_symlink(t.as_str(), path, h).map_err(add)?,
        }
    }
    let (_, size) = fs.write(w).map_err(SquashfsError::Write)?;
    Ok(size)
}
