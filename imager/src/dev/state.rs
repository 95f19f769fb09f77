//! Where a dev cluster lives on the host and what `up` recorded about it.
//!
//! `$XDG_STATE_HOME/kiln/dev/<name>/` (fallback `~/.local/state`) holds `state.json`
//! (written atomically, rewritten after every change), `hub.json` and `hub.log` from the
//! hub process, `cluster/` from `kiln cluster gen`, and one folder per node with its
//! overlay disk, firmware variables, sockets and logs. Owns the layout and the file
//! format; starting or stopping anything is the other modules' job.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub const STATE_FILE: &str = "state.json";
pub const HUB_FILE: &str = "hub.json";
pub const HUB_LOG: &str = "hub.log";
pub const CLUSTER_DIR: &str = "cluster";
pub const KUBECONFIG: &str = "kubeconfig";
/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// One dev cluster's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub name: String,
    pub dir: PathBuf,
}

/// Files of one node, under `<cluster dir>/<node>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePaths {
    pub dir: PathBuf,
    pub disk: PathBuf,
    pub vars: PathBuf,
    pub console_sock: PathBuf,
    pub console_log: PathBuf,
    pub events: PathBuf,
    pub qmp: PathBuf,
    pub pidfile: PathBuf,
    pub qemu_log: PathBuf,
}

/// The base folder of all dev clusters: `$XDG_STATE_HOME/kiln/dev`, or
/// `$HOME/.local/state/kiln/dev` when XDG_STATE_HOME is unset or not absolute.
pub fn root(xdg_state_home: Option<&str>, home: Option<&str>) -> Result<PathBuf> {
    let base = match (xdg_state_home, home) {
        (Some(x), _) if Path::new(x).is_absolute() => PathBuf::from(x),
        (_, Some(h)) if Path::new(h).is_absolute() => Path::new(h).join(".local/state"),
        _ => bail!("neither XDG_STATE_HOME nor HOME is set to an absolute path"),
    };
    Ok(base.join("kiln").join("dev"))
}

/// A dev cluster name: a DNS label (it names the folder and the cluster).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        bail!("invalid --name {name:?}: use lowercase letters, digits and '-' (at most 63)");
    }
    Ok(())
}

impl Layout {
    /// The layout of cluster `name` under the environment's state folder.
    pub fn for_name(name: &str) -> Result<Layout> {
        check_name(name)?;
        let xdg = std::env::var("XDG_STATE_HOME").ok();
        let home = std::env::var("HOME").ok();
        let root = root(xdg.as_deref(), home.as_deref())?;
        Ok(Layout {
            name: name.to_string(),
            dir: root.join(name),
        })
    }

    pub fn state_file(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    pub fn hub_file(&self) -> PathBuf {
        self.dir.join(HUB_FILE)
    }

    pub fn cluster_dir(&self) -> PathBuf {
        self.dir.join(CLUSTER_DIR)
    }

    pub fn node(&self, node: &str) -> NodePaths {
        let dir = self.dir.join(node);
        NodePaths {
            disk: dir.join("disk.qcow2"),
            vars: dir.join("efivars.fd"),
            console_sock: dir.join("console.sock"),
            console_log: dir.join("console.log"),
            events: dir.join("events.jsonl"),
            qmp: dir.join("qmp.sock"),
            pidfile: dir.join("qemu.pid"),
            qemu_log: dir.join("qemu.log"),
            dir,
        }
    }

    /// Unix sockets must fit `sun_path`; says which folder is too deep otherwise.
    pub fn check_socket_paths(&self, node: &str) -> Result<()> {
        let p = self.node(node);
        for sock in [&p.console_sock, &p.qmp] {
            if sock.as_os_str().len() > MAX_SOCKET_PATH {
                bail!(
                    "socket path {} is longer than {MAX_SOCKET_PATH} bytes; set XDG_STATE_HOME to a shorter folder",
                    sock.display()
                );
            }
        }
        Ok(())
    }
}

/// state.json: everything `status` and `down` need, without asking QEMU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub name: String,
    /// The base image every overlay points at (never written).
    pub image: PathBuf,
    /// `kvm` or `tcg`.
    pub accel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_pid: Option<u32>,
    /// Whether the image carries Kubernetes (a kubeconfig was written).
    #[serde(default)]
    pub kubernetes: bool,
    pub nodes: Vec<NodeState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeState {
    pub name: String,
    /// `control-plane` or `worker`.
    pub role: String,
    /// The static address on the cluster's L2 segment (eth0).
    pub address: IpAddr,
    /// MAC of eth0 (hub) and eth1 (user networking).
    pub macs: [String; 2],
    /// Host port → guest port forwards on 127.0.0.1.
    #[serde(default)]
    pub forwards: Vec<(u16, u16)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl State {
    pub fn parse(text: &str, origin: &Path) -> Result<State> {
        serde_json::from_str(text).with_context(|| format!("parse {}", origin.display()))
    }

    pub fn load(layout: &Layout) -> Result<State> {
        let path = layout.state_file();
        let text = fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        State::parse(&text, &path)
    }

    pub fn save(&self, layout: &Layout) -> Result<()> {
        let text = serde_json::to_string_pretty(self).context("encode state")?;
        write_atomic(&layout.state_file(), text.as_bytes())
    }

    pub fn node(&self, name: &str) -> Result<&NodeState> {
        match self.nodes.iter().find(|n| n.name == name) {
            Some(n) => Ok(n),
            None => {
                let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
                bail!(
                    "no node {name:?} in dev cluster {} (nodes: {})",
                    self.name,
                    names.join(", ")
                )
            }
        }
    }
}

/// Writes `data` to a temporary sibling, syncs and renames it over `path`.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let written = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(data).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_prefers_absolute_xdg() {
        let cases: [(Option<&str>, Option<&str>, Option<&str>); 5] = [
            (Some("/x"), Some("/h"), Some("/x/kiln/dev")),
            (None, Some("/h"), Some("/h/.local/state/kiln/dev")),
            (Some("rel"), Some("/h"), Some("/h/.local/state/kiln/dev")),
            (Some(""), None, None),
            (None, None, None),
        ];
        for (xdg, home, want) in cases {
            let got = root(xdg, home).ok();
            assert_eq!(got, want.map(PathBuf::from), "{xdg:?} {home:?}");
        }
    }

    #[test]
    fn names() {
        for good in ["dev", "a", "b-2", "x1"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Dev", "-a", "a-", "a/b", "..", "a_b", &"a".repeat(64)] {
            let Err(e) = check_name(bad) else {
                panic!("{bad:?} accepted")
            };
            assert!(e.to_string().starts_with("invalid --name"), "{e}");
        }
    }

    fn sample() -> State {
        State {
            name: "dev".into(),
            image: "/img/node.qcow2".into(),
            accel: "tcg".into(),
            hub_pid: Some(42),
            kubernetes: false,
            nodes: vec![NodeState {
                name: "cp-1".into(),
                role: "control-plane".into(),
                address: "192.168.87.11".parse().unwrap_or_else(|e| panic!("{e}")),
                macs: ["52:54:00:6b:01:01".into(), "52:54:00:6c:01:01".into()],
                forwards: vec![(40000, 6443), (40001, 2379)],
                pid: Some(4242),
            }],
        }
    }

    #[test]
    fn state_round_trip_and_atomic_write() {
        let dir = std::env::temp_dir().join(format!("kiln-dev-state-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let layout = Layout {
            name: "dev".into(),
            dir: dir.clone(),
        };
        let state = sample();
        state.save(&layout).unwrap_or_else(|e| panic!("{e}"));
        let back = State::load(&layout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, state);
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names, [STATE_FILE], "no temporary file left");
        assert!(back.node("cp-1").is_ok());
        let Err(e) = back.node("cp-9") else {
            panic!("unknown node found")
        };
        assert_eq!(
            e.to_string(),
            "no node \"cp-9\" in dev cluster dev (nodes: cp-1)"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = r#"{"name":"dev","image":"/i","accel":"tcg","nodes":[],"extra":1}"#;
        assert!(State::parse(text, Path::new("s.json")).is_err());
        let text = r#"{"name":"dev","image":"/i","accel":"tcg","nodes":[]}"#;
        assert!(State::parse(text, Path::new("s.json")).is_ok());
    }

    #[test]
    fn long_socket_paths_are_refused() {
        let short = Layout {
            name: "dev".into(),
            dir: "/s/dev".into(),
        };
        assert!(short.check_socket_paths("cp-1").is_ok());
        let long = Layout {
            name: "dev".into(),
            dir: PathBuf::from("/").join("d".repeat(100)),
        };
        let Err(e) = long.check_socket_paths("cp-1") else {
            panic!("long path accepted")
        };
        assert!(e.to_string().contains("set XDG_STATE_HOME"), "{e}");
    }
}
