//! Raw disk image → qcow2 v3 converter, in-process and deterministic.
//!
//! Owns the qcow2 byte layout only: 64 KiB clusters, no compression, no backing file,
//! 16-bit refcounts. The output file holds, in order: the header cluster, every non-zero
//! data cluster of the raw image in guest order, the L2 tables, the L1 table, the refcount
//! table and the refcount blocks. It reads the raw image and writes `out`; nothing else.
//!
//! Holes are skipped with `SEEK_DATA`/`SEEK_HOLE`; clusters inside data extents are still
//! read and dropped when all zero.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const CLUSTER_BITS: u32 = 16;
const CLUSTER: u64 = 1 << CLUSTER_BITS;
/// 8-byte entries per L2 table / refcount-table cluster.
const L2_ENTRIES: u64 = CLUSTER / 8;
/// 16-bit refcounts per refcount block.
const RC_ENTRIES: u64 = CLUSTER / 2;
const HEADER_LEN: u32 = 104;
/// L1/L2 flag: refcount is exactly one, the cluster may be written in place.
const COPIED: u64 = 1 << 63;
/// Raw bytes read per `read` call while scanning.
const SCAN_CHUNK: usize = 16 * CLUSTER as usize;

/// Errors from converting a raw image to qcow2.
#[derive(Debug, thiserror::Error)]
pub enum Qcow2Error {
    #[error("opening raw image {0}")]
    OpenRaw(PathBuf, #[source] std::io::Error),
    #[error("reading raw image {path} at byte {offset}")]
    Read {
        path: PathBuf,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("raw image {path} is {size} bytes, not a multiple of 512")]
    UnalignedSize { path: PathBuf, size: u64 },
    #[error("creating qcow2 image {0}")]
    Create(PathBuf, #[source] std::io::Error),
    #[error("writing qcow2 image {0}")]
    Write(PathBuf, #[source] std::io::Error),
}

/// What [`write_qcow2`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Qcow2Stats {
    /// Guest-visible size in bytes (the raw file's length).
    pub virtual_size: u64,
    /// Non-zero 64 KiB clusters stored.
    pub data_clusters: u64,
    /// Length of the qcow2 file in bytes.
    pub file_size: u64,
}

/// Host cluster indices of the metadata that follows the data clusters.
struct Layout {
    l1_entries: u64,
    /// Guest L2-table index → host cluster of that L2 table, ascending.
    l2: Vec<(u64, u64)>,
    l1_at: u64,
    l1_clusters: u64,
    rt_at: u64,
    rt_clusters: u64,
    rb_at: u64,
    rb_count: u64,
    total_clusters: u64,
}

/// Converts the raw image `raw` to a qcow2 v3 image at `out`, storing only non-zero
/// clusters. The raw length must be a multiple of 512 (qemu truncates the rest).
pub fn write_qcow2(raw: &Path, out: &Path) -> Result<Qcow2Stats, Qcow2Error> {
    let mut src = File::open(raw).map_err(|e| Qcow2Error::OpenRaw(raw.to_owned(), e))?;
    let virtual_size = src
        .seek(SeekFrom::End(0))
        .map_err(|e| read_err(raw, 0, e))?;
    if !virtual_size.is_multiple_of(512) {
        return Err(Qcow2Error::UnalignedSize {
            path: raw.to_owned(),
            size: virtual_size,
        });
    }
    let file = File::create(out).map_err(|e| Qcow2Error::Create(out.to_owned(), e))?;
    let werr = |e| Qcow2Error::Write(out.to_owned(), e);
    let mut dst = BufWriter::with_capacity(SCAN_CHUNK, file);
    dst.seek(SeekFrom::Start(CLUSTER)).map_err(werr)?;
    let guest = copy_data(&mut src, virtual_size, &mut dst).map_err(|e| match e {
        CopyError::Read(offset, source) => read_err(raw, offset, source),
        CopyError::Write(source) => werr(source),
    })?;
    let layout = Layout::plan(virtual_size, &guest);
    write_metadata(&mut dst, virtual_size, &guest, &layout).map_err(werr)?;
    let file = dst.into_inner().map_err(|e| werr(e.into_error()))?;
    let file_size = layout.total_clusters * CLUSTER;
    file.set_len(file_size).map_err(werr)?;
    Ok(Qcow2Stats {
        virtual_size,
        data_clusters: guest.len() as u64,
        file_size,
    })
}

fn read_err(path: &Path, offset: u64, source: std::io::Error) -> Qcow2Error {
    Qcow2Error::Read {
        path: path.to_owned(),
        offset,
        source,
    }
}

enum CopyError {
    Read(u64, std::io::Error),
    Write(std::io::Error),
}

/// Byte ranges of `src` below `size` that may hold data, ascending and disjoint, found
/// with `SEEK_DATA`/`SEEK_HOLE`; the whole file if the filesystem cannot tell.
fn data_extents(src: &File, size: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < size {
        let start = match seek(src, pos, libc::SEEK_DATA) {
            Ok(start) => start,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => break, // only a hole is left
            Err(_) => return vec![(0, size)],
        };
        let end = seek(src, start, libc::SEEK_HOLE).unwrap_or(size).min(size);
        if start >= end {
            break;
        }
        out.push((start, end));
        pos = end;
    }
    out
}

/// `lseek(2)` on `file`; moves its position, so callers seek again before reading.
#[allow(unsafe_code)]
fn seek(file: &File, pos: u64, whence: i32) -> std::io::Result<u64> {
    use std::os::fd::AsRawFd;
    let off = libc::off_t::try_from(pos).map_err(std::io::Error::other)?;
    // SAFETY: lseek only reads the descriptor number, which `file` keeps open for the call.
    let r = unsafe { libc::lseek(file.as_raw_fd(), off, whence) };
    u64::try_from(r).map_err(|_| std::io::Error::last_os_error())
}

/// Streams the non-zero clusters of `src` to `dst` (positioned at host cluster 1) and
/// returns their guest cluster indices in ascending order; host cluster = 1 + position.
fn copy_data<W: Write>(src: &mut File, size: u64, dst: &mut W) -> Result<Vec<u64>, CopyError> {
    let mut guest = Vec::new();
    let mut buf = vec![0u8; SCAN_CHUNK];
    let mut done = 0u64;
    for (start, end) in data_extents(src, size) {
        let mut pos = (start / CLUSTER * CLUSTER).max(done);
        let end = end.next_multiple_of(CLUSTER).min(size);
        src.seek(SeekFrom::Start(pos))
            .map_err(|e| CopyError::Read(pos, e))?;
        while pos < end {
            let want = (end - pos).min(SCAN_CHUNK as u64) as usize;
            let chunk = &mut buf[..want];
            src.read_exact(chunk).map_err(|e| CopyError::Read(pos, e))?;
            for (i, cluster) in chunk.chunks(CLUSTER as usize).enumerate() {
                if is_zero(cluster) {
                    continue;
                }
                guest.push(pos / CLUSTER + i as u64);
                dst.write_all(cluster).map_err(CopyError::Write)?;
                let tail = CLUSTER as usize - cluster.len();
                dst.write_all(&vec![0; tail]).map_err(CopyError::Write)?;
            }
            pos += want as u64;
        }
        done = done.max(end);
    }
    Ok(guest)
}

fn is_zero(bytes: &[u8]) -> bool {
    // Slice equality compiles to memcmp, which stays fast even in unoptimised builds.
    static ZERO: [u8; CLUSTER as usize] = [0; CLUSTER as usize];
    bytes == &ZERO[..bytes.len()]
}

impl Layout {
    fn plan(virtual_size: u64, guest: &[u64]) -> Self {
        let l1_entries = virtual_size.div_ceil(CLUSTER * L2_ENTRIES);
        let mut next = 1 + guest.len() as u64;
        let mut l2 = Vec::new();
        for &g in guest {
            let table = g / L2_ENTRIES;
            if l2.last().is_none_or(|&(t, _)| t != table) {
                l2.push((table, next));
                next += 1;
            }
        }
        let l1_at = next;
        let l1_clusters = (l1_entries * 8).div_ceil(CLUSTER);
        next += l1_clusters;
        // Refcount table and blocks must also cover themselves: iterate to a fixed point.
        let (mut rt_clusters, mut rb_count) = (1, 1);
        loop {
            let total = next + rt_clusters + rb_count;
            let rb = total.div_ceil(RC_ENTRIES);
            let rt = (rb * 8).div_ceil(CLUSTER);
            if (rt, rb) == (rt_clusters, rb_count) {
                break;
            }
            (rt_clusters, rb_count) = (rt.max(rt_clusters), rb.max(rb_count));
        }
        Self {
            l1_entries,
            l2,
            l1_at,
            l1_clusters,
            rt_at: next,
            rt_clusters,
            rb_at: next + rt_clusters,
            rb_count,
            total_clusters: next + rt_clusters + rb_count,
        }
    }
}

fn write_metadata<W: Write + Seek>(
    dst: &mut W,
    virtual_size: u64,
    guest: &[u64],
    layout: &Layout,
) -> std::io::Result<()> {
    // L2 tables, in host order right after the data.
    let mut data_host = 1u64;
    let mut rest = guest;
    for &(table, _) in &layout.l2 {
        let n = rest
            .iter()
            .take_while(|&&g| g / L2_ENTRIES == table)
            .count();
        let mut l2 = vec![0u8; CLUSTER as usize];
        for &g in &rest[..n] {
            let slot = (g % L2_ENTRIES) as usize * 8;
            l2[slot..slot + 8].copy_from_slice(&(COPIED | (data_host * CLUSTER)).to_be_bytes());
            data_host += 1;
        }
        dst.write_all(&l2)?;
        rest = &rest[n..];
    }
    let mut l1 = vec![0u8; (layout.l1_clusters * CLUSTER) as usize];
    for &(table, host) in &layout.l2 {
        let slot = table as usize * 8;
        l1[slot..slot + 8].copy_from_slice(&(COPIED | (host * CLUSTER)).to_be_bytes());
    }
    dst.write_all(&l1)?;
    let mut rt = vec![0u8; (layout.rt_clusters * CLUSTER) as usize];
    for i in 0..layout.rb_count {
        let slot = i as usize * 8;
        rt[slot..slot + 8].copy_from_slice(&((layout.rb_at + i) * CLUSTER).to_be_bytes());
    }
    dst.write_all(&rt)?;
    // Every cluster 0..total is allocated exactly once.
    for i in 0..layout.rb_count {
        let used = (layout.total_clusters - i * RC_ENTRIES).min(RC_ENTRIES) as usize;
        let mut rb = vec![0u8; CLUSTER as usize];
        rb[..used * 2]
            .chunks_exact_mut(2)
            .for_each(|c| c.copy_from_slice(&1u16.to_be_bytes()));
        dst.write_all(&rb)?;
    }
    dst.seek(SeekFrom::Start(0))?;
    dst.write_all(&header(virtual_size, layout))
}

fn header(virtual_size: u64, layout: &Layout) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN as usize + 8);
    h.extend_from_slice(b"QFI\xfb");
    h.extend_from_slice(&3u32.to_be_bytes()); // version
    h.extend_from_slice(&0u64.to_be_bytes()); // backing_file_offset
    h.extend_from_slice(&0u32.to_be_bytes()); // backing_file_size
    h.extend_from_slice(&CLUSTER_BITS.to_be_bytes());
    h.extend_from_slice(&virtual_size.to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes()); // crypt_method
    h.extend_from_slice(&(layout.l1_entries as u32).to_be_bytes());
    // An empty image has no L1 table; qemu-img then records offset 0 as well.
    let l1_offset = if layout.l1_clusters == 0 {
        0
    } else {
        layout.l1_at * CLUSTER
    };
    h.extend_from_slice(&l1_offset.to_be_bytes());
    h.extend_from_slice(&(layout.rt_at * CLUSTER).to_be_bytes());
    h.extend_from_slice(&(layout.rt_clusters as u32).to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes()); // nb_snapshots
    h.extend_from_slice(&0u64.to_be_bytes()); // snapshots_offset
    h.extend_from_slice(&[0u8; 24]); // incompatible, compatible, autoclear features
    h.extend_from_slice(&4u32.to_be_bytes()); // refcount_order: 16-bit
    h.extend_from_slice(&HEADER_LEN.to_be_bytes());
    h.extend_from_slice(&[0u8; 8]); // end-of-extensions marker
    h
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::FileExt;
    use std::process::Command;

    const MIB: u64 = 1 << 20;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-qcow2-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Sparse raw image of `size` bytes with `(offset, byte, len)` runs of data.
    fn raw_image(path: &Path, size: u64, runs: &[(u64, u8, usize)]) {
        let f = File::create(path).unwrap();
        f.set_len(size).unwrap();
        for &(at, byte, len) in runs {
            let data: Vec<u8> = (0..len).map(|i| byte ^ (i % 251) as u8).collect();
            f.write_all_at(&data, at).unwrap();
        }
    }

    fn be64(b: &[u8], at: usize) -> u64 {
        u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
    }

    /// Minimal independent reader: maps guest clusters to host offsets and recounts
    /// references of every cluster against the stored refcounts.
    fn read_back(q: &[u8]) -> BTreeMap<u64, usize> {
        assert_eq!(&q[..4], b"QFI\xfb");
        let size = be64(q, 24);
        let l1_size = u32::from_be_bytes(q[36..40].try_into().unwrap()) as usize;
        let (l1_at, rt_at) = (be64(q, 40) as usize, be64(q, 48) as usize);
        let mut refs = vec![0u16; q.len() / CLUSTER as usize];
        let mut mark = |off: u64| refs[(off / CLUSTER) as usize] += 1;
        mark(0);
        let mut guest = BTreeMap::new();
        for i in 0..l1_size {
            let l2 = be64(q, l1_at + 8 * i) & !COPIED;
            if l2 == 0 {
                continue;
            }
            mark(l2);
            for j in 0..L2_ENTRIES as usize {
                let host = be64(q, l2 as usize + 8 * j) & !COPIED;
                if host == 0 {
                    continue;
                }
                mark(host);
                let g = i as u64 * L2_ENTRIES + j as u64;
                assert!(g * CLUSTER < size, "mapping past the virtual size");
                guest.insert(g, host as usize);
            }
        }
        let rt_clusters = u32::from_be_bytes(q[56..60].try_into().unwrap()) as u64;
        let l1_clusters = (l1_size as u64 * 8).div_ceil(CLUSTER);
        (0..l1_clusters).for_each(|c| mark(l1_at as u64 + c * CLUSTER));
        (0..rt_clusters).for_each(|c| mark(rt_at as u64 + c * CLUSTER));
        let mut stored = Vec::new();
        for i in 0..(rt_clusters * L2_ENTRIES) as usize {
            let rb = be64(q, rt_at + 8 * i) as usize;
            if rb != 0 {
                mark(rb as u64);
                let block = &q[rb..rb + CLUSTER as usize];
                stored.extend(block.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])));
            }
        }
        stored.truncate(refs.len());
        assert_eq!(stored, refs, "refcounts");
        guest
    }

    /// Compares the raw image cluster by cluster with what the qcow2 maps.
    fn assert_same(raw: &Path, q: &[u8], map: &BTreeMap<u64, usize>) {
        let f = File::open(raw).unwrap();
        let size = f.metadata().unwrap().len();
        let mut buf = vec![0u8; CLUSTER as usize];
        for g in 0..size.div_ceil(CLUSTER) {
            let n = (size - g * CLUSTER).min(CLUSTER) as usize;
            f.read_exact_at(&mut buf[..n], g * CLUSTER).unwrap();
            match map.get(&g) {
                Some(&host) => assert!(buf[..n] == q[host..host + n], "cluster {g}"),
                None => assert!(is_zero(&buf[..n]), "cluster {g} lost"),
            }
        }
    }

    fn qemu_img(args: &[&str]) -> Option<(bool, String)> {
        let out = Command::new("qemu-img").args(args).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        Some((out.status.success(), text))
    }

    fn convert_and_check(name: &str, size: u64, runs: &[(u64, u8, usize)]) -> Qcow2Stats {
        let dir = scratch(name);
        let (raw, q1, q2) = (dir.join("raw"), dir.join("a.qcow2"), dir.join("b.qcow2"));
        raw_image(&raw, size, runs);
        let stats = write_qcow2(&raw, &q1).unwrap();
        assert_eq!(write_qcow2(&raw, &q2).unwrap(), stats);
        let (a, b) = (std::fs::read(&q1).unwrap(), std::fs::read(&q2).unwrap());
        assert!(a == b, "{name}: two conversions differ");
        assert_eq!(stats.file_size, a.len() as u64);
        assert_eq!(stats.virtual_size, size);
        assert_same(&raw, &a, &read_back(&a));
        let (q, r) = (q1.to_str().unwrap(), raw.to_str().unwrap());
        match qemu_img(&["check", q]) {
            None => println!("skipped: qemu-img not installed (check/compare of {name})"),
            Some((ok, text)) => {
                assert!(ok && text.contains("No errors"), "{name}: {text}");
                let (ok, text) = qemu_img(&["compare", "-f", "raw", "-F", "qcow2", r, q]).unwrap();
                assert!(
                    ok && text.contains("Images are identical"),
                    "{name}: {text}"
                );
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
        stats
    }

    #[test]
    fn converts_table() {
        // (name, size, runs, expected data clusters)
        type Case = (&'static str, u64, &'static [(u64, u8, usize)], u64);
        let cases: [Case; 5] = [
            ("zero", 8 * MIB, &[], 0),
            ("empty", 0, &[], 0),
            ("start", 4 * MIB, &[(0, 0x11, 70_000)], 2),
            // 600 MiB spans two L2 tables (512 MiB each); one run straddles the boundary.
            (
                "spread",
                600 * MIB,
                &[
                    (5, 1, 3),
                    (512 * MIB - 10, 2, 20),
                    (600 * MIB - 512, 3, 512),
                ],
                4,
            ),
            (
                "tail",
                2 * MIB + 4608,
                &[(2 * MIB + 4000, 9, 608), (MIB, 4, 1)],
                2,
            ),
        ];
        for (name, size, runs, clusters) in cases {
            let stats = convert_and_check(name, size, runs);
            assert_eq!(stats.data_clusters, clusters, "{name}");
        }
    }

    #[test]
    fn unaligned_size_is_rejected() {
        let dir = scratch("unaligned");
        let raw = dir.join("raw");
        raw_image(&raw, 1000, &[(0, 1, 10)]);
        let err = write_qcow2(&raw, &dir.join("o")).unwrap_err();
        assert!(matches!(err, Qcow2Error::UnalignedSize { size: 1000, .. }));
        let err = write_qcow2(&dir.join("missing"), &dir.join("o")).unwrap_err();
        assert!(matches!(err, Qcow2Error::OpenRaw(..)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
