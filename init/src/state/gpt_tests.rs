//! Growing a real image file, checked by util-linux `sfdisk` (a tool we did not write).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::Command;

use super::*;
use crate::state::plan::{plan, STATE_PARTNAME};
use crate::testutil::TempDir;

const MIB: u64 = 1 << 20;
const VAR_TYPE: [u8; 16] = [
    0x16, 0xB0, 0x21, 0x4D, 0x34, 0xB5, 0xC2, 0x45, 0xA9, 0xFB, 0x5C, 0x16, 0xE0, 0x91, 0xFD, 0x2D,
];

/// Writes the imager's layout (EFI, ROOT-A, ROOT-B, 64 MiB STATE) on a `mib` MiB file.
pub(crate) fn imager_disk(path: &Path, mib: u64) {
    let mut f = File::create(path).unwrap();
    f.set_len(mib * MIB).unwrap();
    let mut gpt = gptman::GPT::new_from(&mut f, 512, [7; 16]).unwrap();
    let layout = [
        ("EFI", 1, 8),
        ("KILN-ROOT-A", 9, 40),
        ("KILN-ROOT-B", 49, 40),
        (STATE_PARTNAME, 89, 64),
    ];
    for (i, (name, at, size)) in layout.into_iter().enumerate() {
        let mut unique = [0x11; 16];
        unique[0] = i as u8;
        gpt[i as u32 + 1] = gptman::GPTPartitionEntry {
            partition_type_guid: VAR_TYPE,
            unique_partition_guid: unique,
            starting_lba: at * MIB / 512,
            ending_lba: (at + size) * MIB / 512 - 1,
            attribute_bits: 0,
            partition_name: name.into(),
        };
    }
    gpt.write_into(&mut f).unwrap();
    gptman::GPT::write_protective_mbr_into(&mut f, 512).unwrap();
}

fn sfdisk(args: &[&str], path: &Path) -> std::process::Output {
    Command::new("sfdisk")
        .args(args)
        .arg(path)
        .output()
        .expect("sfdisk (util-linux fdisk package) must be installed")
}

/// Grows `path` (already enlarged) in place; returns the plan used.
fn grow_file(path: &Path) -> crate::state::plan::StatePlan {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let len = f.metadata().unwrap().len();
    let mut gpt = read(&mut f, 512).unwrap();
    let p = plan(len, &facts(&gpt), 4).unwrap();
    apply(&mut f, &mut gpt, &p).unwrap();
    p
}

#[test]
fn grows_a_real_image_and_sfdisk_agrees() {
    let tmp = TempDir::new("state-gpt");
    let img = tmp.path().join("disk.img");
    imager_disk(&img, 200);
    let before = sfdisk(&["--verify"], &img);
    assert!(before.status.success(), "{before:?}");
    OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(300 * MIB)
        .unwrap();

    let p = grow_file(&img);
    assert_eq!(p.grow, Some((153 * MIB / 512 - 1, 299 * MIB / 512 - 1)));

    let verify = sfdisk(&["--verify"], &img);
    let text = String::from_utf8_lossy(&verify.stdout).to_string()
        + &String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "sfdisk --verify: {text}");
    assert!(text.contains("No errors detected."), "{text}");
    assert!(!text.contains("mismatch"), "{text}");
    assert!(!text.contains("not at the end"), "{text}");

    let dump = String::from_utf8(sfdisk(&["-d"], &img).stdout).unwrap();
    let line = |key: &str| {
        dump.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in {dump}"))
            .to_string()
    };
    assert_eq!(
        line("last-lba:"),
        format!("last-lba: {}", 300 * MIB / 512 - 34)
    );
    let state = line(&format!("{}4 :", img.display()));
    let want = "start=      182272, size=      430080, type=4D21B016-B534-45C2-A9FB-5C16E091FD2D";
    assert!(state.contains(want), "{state}\n{dump}");
    assert!(state.contains("name=\"KILN-STATE\""), "{state}");

    // Old backup header (LBA at the 200 MiB end) is wiped, the new one is at the real end.
    let bytes = std::fs::read(&img).unwrap();
    let at = |lba: u64| &bytes[(lba * 512) as usize..(lba * 512 + 8) as usize];
    assert_eq!(at(200 * MIB / 512 - 1), [0u8; 8]);
    assert_eq!(at(300 * MIB / 512 - 1), b"EFI PART");

    // Running again changes nothing.
    let again = grow_file(&img);
    assert!(!again.rewrite(), "{again:?}");
}
