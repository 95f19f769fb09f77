//! The ACPI power button: a thread that watches the input devices named "Power Button"
//! and turns a KEY_POWER press into SIGTERM for PID 1, so it takes the same orderly
//! poweroff path as any other request (services stopped in order, sync, unmount).
//!
//! Owns finding the devices (sysfs) and decoding `struct input_event`; it must not shut
//! anything down itself.

use std::io::Read;
use std::path::{Path, PathBuf};

const EV_KEY: u16 = 1;
const KEY_POWER: u16 = 116;
/// `struct input_event` on 64-bit: timeval (16 bytes), type u16, code u16, value i32.
const EVENT_SIZE: usize = 24;

/// Event devices (`/dev/input/eventN`) whose input device is named like a power button.
pub fn find_devices(sys_root: &Path, dev_root: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(sys_root.join("class/input")) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("event") {
                return None;
            }
            let dev_name = std::fs::read_to_string(e.path().join("device/name")).ok()?;
            dev_name
                .trim()
                .eq_ignore_ascii_case("Power Button")
                .then(|| dev_root.join("input").join(&name))
        })
        .collect();
    found.sort();
    found
}

/// Whether one raw input event is a power-key press (value 1; 0 is release, 2 repeat).
pub fn is_power_press(ev: &[u8]) -> bool {
    if ev.len() < EVENT_SIZE {
        return false;
    }
    let ty = u16::from_ne_bytes([ev[16], ev[17]]);
    let code = u16::from_ne_bytes([ev[18], ev[19]]);
    let value = i32::from_ne_bytes([ev[20], ev[21], ev[22], ev[23]]);
    ty == EV_KEY && code == KEY_POWER && value == 1
}

/// Starts one watcher thread per power-button device; returns how many. A press sends
/// SIGTERM to PID 1 (blocked there and read through its signalfd).
pub fn watch(sys_root: &Path, dev_root: &Path) -> usize {
    let devices = find_devices(sys_root, dev_root);
    let mut started = 0;
    for dev in devices {
        let Ok(mut file) = std::fs::File::open(&dev) else {
            continue;
        };
        let spawned = std::thread::Builder::new()
            .name("power-button".into())
            .spawn(move || {
                let mut buf = [0u8; EVENT_SIZE];
                while file.read_exact(&mut buf).is_ok() {
                    if is_power_press(&buf) {
                        let _ = crate::sys::kill(1, libc::SIGTERM);
                    }
                }
            });
        if spawned.is_ok() {
            started += 1;
        }
    }
    started
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testutil::TempDir;

    fn event(ty: u16, code: u16, value: i32) -> Vec<u8> {
        let mut e = vec![0u8; 16];
        e.extend_from_slice(&ty.to_ne_bytes());
        e.extend_from_slice(&code.to_ne_bytes());
        e.extend_from_slice(&value.to_ne_bytes());
        e
    }

    #[test]
    fn press_table() {
        let cases = [
            (event(EV_KEY, KEY_POWER, 1), true),
            (event(EV_KEY, KEY_POWER, 0), false),
            (event(EV_KEY, KEY_POWER, 2), false),
            (event(EV_KEY, 115, 1), false),
            (event(0, KEY_POWER, 1), false),
            (vec![0u8; 10], false),
        ];
        for (ev, want) in cases {
            assert_eq!(is_power_press(&ev), want, "{ev:?}");
        }
    }

    #[test]
    fn finds_power_buttons_by_name() {
        let tmp = TempDir::new("powerbutton");
        tmp.write(
            "sys/class/input/event0/device/name",
            "AT Translated Set 2 keyboard\n",
        );
        tmp.write("sys/class/input/event1/device/name", "Power Button\n");
        tmp.write("sys/class/input/mouse0/device/name", "Power Button\n");
        let got = find_devices(&tmp.path().join("sys"), Path::new("/dev"));
        assert_eq!(got, vec![PathBuf::from("/dev/input/event1")]);
    }
}
