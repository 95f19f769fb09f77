//! The cluster's L2 segment as its own process (`kiln dev hub`, started detached by `up`):
//! it must outlive `kiln dev up`. It binds one UDP port pair per node, writes them to
//! `hub.json` (atomically; `up` waits for the file), and repeats frames until it is sent
//! SIGTERM by `down` or its `hub.json` disappears (the state folder was removed).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::state::{write_atomic, Layout};
use crate::qemu::hub::Hub;

/// hub.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubFile {
    pub pid: u32,
    /// Per node, in state order: (hub port, VM port).
    pub ports: Vec<(u16, u16)>,
}

/// `kiln dev hub --name <name> --ports <n>`: runs until killed.
pub fn serve(layout: &Layout, ports: usize) -> Result<()> {
    if !layout.dir.is_dir() {
        bail!(
            "no dev cluster {} ({} is missing)",
            layout.name,
            layout.dir.display()
        );
    }
    let hub = Hub::start(ports)?;
    let file = HubFile {
        pid: std::process::id(),
        ports: hub.ports().to_vec(),
    };
    let path = layout.hub_file();
    let text = serde_json::to_string(&file).context("encode hub.json")?;
    write_atomic(&path, text.as_bytes())?;
    eprintln!("kiln: dev: hub for {} on {:?}", layout.name, file.ports);
    hub.run_until(|| !path.exists());
    Ok(())
}

/// Waits for the hub started as `pid` to write `hub.json` with `ports` port pairs.
pub fn wait_for(path: &Path, pid: u32, ports: usize, timeout: Duration) -> Result<HubFile> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            let file: HubFile =
                serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
            if file.pid == pid && file.ports.len() == ports {
                return Ok(file);
            }
        }
        if Instant::now() >= deadline {
            bail!("the hub (pid {pid}) did not start within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_right_hub_file() {
        let dir = std::env::temp_dir().join(format!("kiln-dev-hub-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("hub.json");
        let short = Duration::from_millis(200);
        let Err(e) = wait_for(&path, 7, 2, short) else {
            panic!("no file accepted")
        };
        assert!(e.to_string().contains("did not start"), "{e}");
        std::fs::write(&path, r#"{"pid":7,"ports":[[1,2],[3,4]]}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        let file = wait_for(&path, 7, 2, short).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.ports, [(1, 2), (3, 4)]);
        assert!(wait_for(&path, 8, 2, short).is_err(), "another pid's file");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
