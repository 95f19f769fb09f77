//! What Kiln needs to know about an ext4 filesystem without mounting it: is there one (the
//! superblock magic) and how big is it; plus the meaning of `e2fsck -p` exit codes and the
//! e2fsprogs command lines.
//!
//! Owns parsing and argument lists only; running the tools is the `Runner`'s job.

/// The superblock starts 1024 bytes into the partition; reading this much covers it.
pub const SUPERBLOCK_END: usize = 2048;
const SB: usize = 1024;
const MAGIC: u16 = 0xEF53;
const INCOMPAT_64BIT: u32 = 0x80;

pub const MKFS: &str = "/usr/sbin/mkfs.ext4";
pub const E2FSCK: &str = "/usr/sbin/e2fsck";
pub const RESIZE2FS: &str = "/usr/sbin/resize2fs";
pub const LABEL: &str = "KILN-STATE";

/// Size facts of an ext2/3/4 superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    pub block_size: u64,
    pub blocks: u64,
}

impl Superblock {
    pub fn bytes(&self) -> u64 {
        self.blocks * self.block_size
    }
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The superblock in the first `SUPERBLOCK_END` bytes of a partition, or `None` when the
/// magic (0xEF53 at 1024 + 56) is absent: "no filesystem yet".
pub fn superblock(head: &[u8]) -> Option<Superblock> {
    if le16(head, SB + 0x38)? != MAGIC {
        return None;
    }
    let log = le32(head, SB + 0x18)?;
    let block_size = 1024u64.checked_shl(log)?;
    let mut blocks = u64::from(le32(head, SB + 0x04)?);
    if le32(head, SB + 0x60)? & INCOMPAT_64BIT != 0 {
        blocks |= u64::from(le32(head, SB + 0x150)?) << 32;
    }
    Some(Superblock { block_size, blocks })
}

/// The filesystem leaves at least one block of the partition unused: resize2fs grows it.
pub fn needs_resize(sb: &Superblock, partition_bytes: u64) -> bool {
    sb.bytes() + sb.block_size <= partition_bytes
}

/// Outcome of `e2fsck -p` that lets the boot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsck {
    Clean,
    Fixed,
    /// Errors fixed; e2fsck advises a reboot (only matters for a mounted root: STATE was
    /// not mounted, so going on is safe).
    RebootAdvised,
}

/// Maps an `e2fsck -p` exit code (fsck(8) bit mask): 0, 1 and 2 go on; 4 and above
/// (uncorrected errors, operational error, usage, cancelled) do not.
pub fn fsck_outcome(code: i32) -> Result<Fsck, i32> {
    match code {
        0 => Ok(Fsck::Clean),
        1 => Ok(Fsck::Fixed),
        2 | 3 => Ok(Fsck::RebootAdvised),
        other => Err(other),
    }
}

pub fn mkfs_args(device: &str) -> Vec<String> {
    let args = ["-F", "-q", "-L", LABEL, "-E"];
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    v.push("lazy_itable_init=1,lazy_journal_init=1".into());
    v.push(device.into());
    v
}

pub fn fsck_args(device: &str) -> Vec<String> {
    vec!["-p".into(), device.into()]
}

pub fn resize_args(device: &str) -> Vec<String> {
    vec![device.into()]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::testutil::TempDir;
    use std::process::Command;

    fn mkfs_image(path: &std::path::Path, mib: u64, extra: &[&str]) {
        let f = std::fs::File::create(path).unwrap();
        f.set_len(mib << 20).unwrap();
        let out = Command::new("mkfs.ext4")
            .args(["-F", "-q"])
            .args(extra)
            .arg(path)
            .output()
            .expect("mkfs.ext4 (e2fsprogs) must be installed");
        assert!(out.status.success(), "{out:?}");
    }

    fn head(path: &std::path::Path) -> Vec<u8> {
        let bytes = std::fs::read(path).unwrap();
        bytes[..SUPERBLOCK_END].to_vec()
    }

    #[test]
    fn reads_superblocks_made_by_mkfs() {
        let tmp = TempDir::new("state-ext4");
        let cases: &[(u64, &[&str], u64)] = &[
            (64, &["-b", "4096"], 4096),
            (16, &["-b", "1024"], 1024),
            (32, &["-O", "64bit", "-b", "4096"], 4096),
        ];
        for (mib, extra, block) in cases {
            let img = tmp.path().join(format!("fs-{mib}.img"));
            mkfs_image(&img, *mib, extra);
            let sb = superblock(&head(&img)).unwrap();
            assert_eq!(sb.block_size, *block, "{extra:?}");
            assert_eq!(sb.bytes(), mib << 20, "{extra:?}");
            assert!(!needs_resize(&sb, mib << 20));
            assert!(needs_resize(&sb, (mib + 1) << 20));
        }
    }

    #[test]
    fn no_filesystem_is_none() {
        let cases: &[&[u8]] = &[&[0u8; SUPERBLOCK_END], &[0u8; 100], &[]];
        for head in cases {
            assert_eq!(superblock(head), None);
        }
        let tmp = TempDir::new("state-ext4-vfat");
        let img = tmp.path().join("zero.img");
        std::fs::write(&img, vec![0xEFu8; SUPERBLOCK_END]).unwrap();
        assert_eq!(superblock(&head(&img)), None);
    }

    #[test]
    fn maps_fsck_exit_codes() {
        let cases = [
            (0, Ok(Fsck::Clean)),
            (1, Ok(Fsck::Fixed)),
            (2, Ok(Fsck::RebootAdvised)),
            (3, Ok(Fsck::RebootAdvised)),
            (4, Err(4)),
            (8, Err(8)),
            (12, Err(12)),
            (16, Err(16)),
            (32, Err(32)),
            (128, Err(128)),
            (-1, Err(-1)),
        ];
        for (code, want) in cases {
            assert_eq!(fsck_outcome(code), want, "exit {code}");
        }
    }

    #[test]
    fn command_lines() {
        assert_eq!(
            mkfs_args("/dev/vda4").join(" "),
            "-F -q -L KILN-STATE -E lazy_itable_init=1,lazy_journal_init=1 /dev/vda4"
        );
        assert_eq!(fsck_args("/dev/vda4"), ["-p", "/dev/vda4"]);
    }
}
