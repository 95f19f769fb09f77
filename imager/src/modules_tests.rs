#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::io::Write;

use super::*;

/// A minimal ELF64 LE object with a `.modinfo` section holding `info` (NUL-separated).
pub(crate) fn fake_ko(info: &[&str]) -> Vec<u8> {
    let mut modinfo = Vec::new();
    for kv in info {
        modinfo.extend_from_slice(kv.as_bytes());
        modinfo.push(0);
    }
    let shstr = b"\0.modinfo\0.shstrtab\0".to_vec();
    let mut elf = vec![0u8; 64];
    elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
    let modinfo_off = elf.len();
    elf.extend_from_slice(&modinfo);
    let shstr_off = elf.len();
    elf.extend_from_slice(&shstr);
    let shoff = elf.len();
    let sh = |name: u32, off: usize, size: usize| {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(&name.to_le_bytes());
        h[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
        h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
        h
    };
    let headers = [
        sh(0, 0, 0),
        sh(1, modinfo_off, modinfo.len()),
        sh(10, shstr_off, shstr.len()),
    ];
    for h in headers {
        elf.extend_from_slice(&h);
    }
    elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
    elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
    elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
    elf[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
    elf
}

pub(crate) fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

const K: &str = "usr/lib/modules/6.12.0-test/kernel";

fn tree() -> Tree {
    let mut t = Tree::new();
    let mods: &[(&str, &[&str])] = &[
        (
            "fs/ext4/ext4.ko.xz",
            &["depends=mbcache,jbd2", "softdep=pre: crypto-crc32c"],
        ),
        ("fs/mbcache.ko.xz", &["depends="]),
        ("fs/jbd2/jbd2.ko.xz", &["depends=", "softdep=pre: crc32c"]),
        ("crypto/crc32c_generic.ko.xz", &["alias=crc32c", "depends="]),
        ("drivers/block/virtio_blk.ko.xz", &["depends=virtio_ring"]),
        (
            "net/ip-vs/ip_vs.ko.xz",
            &["depends=nf_conntrack", "softdep=post: ip_vs_rr"],
        ),
        ("net/ip-vs/ip_vs_rr.ko.xz", &["depends=ip_vs"]),
        (
            "net/nf_conntrack.ko",
            &["depends=", "softdep=pre: not_here"],
        ),
        ("fs/broken.ko.xz", &["depends=gone"]),
    ];
    for (p, info) in mods {
        let ko = fake_ko(info);
        let data = if p.ends_with(".xz") { xz(&ko) } else { ko };
        t.add_file(&format!("{K}/{p}"), 0o644, data).unwrap();
    }
    let builtin = "kernel/drivers/virtio/virtio_ring.ko\n";
    t.add_file(
        "usr/lib/modules/6.12.0-test/modules.builtin",
        0o644,
        builtin.into(),
    )
    .unwrap();
    t
}

fn names(mods: &[Module]) -> Vec<&str> {
    mods.iter().map(|m| m.name.as_str()).collect()
}

#[test]
fn order_table() {
    let t = tree();
    let k = Kernel::find(&t).unwrap();
    assert_eq!(k.release, "6.12.0-test");
    let cases: &[(&[&str], &[&str])] = &[
        (&["ext4"], &["crc32c_generic", "mbcache", "jbd2", "ext4"]),
        (&["virtio_blk"], &["virtio_blk"]),
        (&["ip_vs"], &["nf_conntrack", "ip_vs", "ip_vs_rr"]),
        (
            &["ip-vs-rr", "ext4", "jbd2"],
            &[
                "nf_conntrack",
                "ip_vs",
                "ip_vs_rr",
                "crc32c_generic",
                "mbcache",
                "jbd2",
                "ext4",
            ],
        ),
    ];
    for (want, order) in cases {
        assert_eq!(names(&k.load_order(want).unwrap()), *order, "{want:?}");
    }
}

#[test]
fn decompressed_paths_and_bytes() {
    let t = tree();
    let k = Kernel::find(&t).unwrap();
    let m = &k.load_order(&["mbcache"]).unwrap()[0];
    assert_eq!(m.path, format!("{K}/fs/mbcache.ko"));
    assert_eq!(&m.data[..4], b"\x7fELF");
}

#[test]
fn errors() {
    let t = tree();
    let k = Kernel::find(&t).unwrap();
    assert_eq!(
        k.load_order(&["nope"]).unwrap_err(),
        ModuleError::Missing("nope".into())
    );
    assert_eq!(
        k.load_order(&["broken"]).unwrap_err(),
        ModuleError::Missing("gone".into())
    );
    assert_eq!(
        Kernel::find(&Tree::new()).err(),
        Some(ModuleError::NoKernel)
    );
    assert_eq!(
        modinfo("x", b"not an elf").unwrap_err(),
        ModuleError::BadElf("x".into())
    );
    let mut t2 = tree();
    t2.add_file("usr/lib/modules/7.0/kernel/a.ko", 0o644, vec![])
        .unwrap();
    assert!(matches!(
        Kernel::find(&t2),
        Err(ModuleError::SeveralKernels(_))
    ));
}
