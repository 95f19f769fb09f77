//! kubeadm's preflight checks (the file, directory and port checks, with kubeadm's check
//! names, output and `--ignore-preflight-errors`) and `skipPhases` / `--skip-phases`.

use std::net::TcpListener;

use anyhow::{bail, Result};

use super::Root;

/// Phases to skip: the flag's and the config's, each a known phase (or `phase/sub`).
pub fn skip_phases(
    flag: Option<&str>,
    config: Option<&Vec<String>>,
    known: &[&str],
) -> Result<Vec<String>> {
    let mut out: Vec<String> = flag
        .into_iter()
        .flat_map(|f| f.split(','))
        .map(str::to_string)
        .collect();
    out.extend(config.into_iter().flatten().cloned());
    out.retain(|p| !p.is_empty());
    for p in &out {
        if !known.contains(&p.split('/').next().unwrap_or(p)) {
            bail!(
                "invalid phase name {p:?}: known phases are {}",
                known.join(", ")
            );
        }
    }
    Ok(out)
}

/// Preflight checks with kubeadm's names, output and `--ignore-preflight-errors`.
pub struct Preflight {
    ignored: Vec<String>,
    errors: Vec<String>,
}

impl Preflight {
    pub fn new(flag: Option<&str>, config: Option<&Vec<String>>) -> Preflight {
        let mut ignored: Vec<String> = flag
            .into_iter()
            .flat_map(|f| f.split(','))
            .map(|s| s.trim().to_lowercase())
            .collect();
        ignored.extend(config.into_iter().flatten().map(|s| s.to_lowercase()));
        println!("[preflight] Running pre-flight checks");
        Preflight {
            ignored,
            errors: Vec::new(),
        }
    }

    pub fn check(&mut self, name: &str, problem: Option<String>) {
        let Some(msg) = problem else { return };
        if self
            .ignored
            .iter()
            .any(|i| i == "all" || *i == name.to_lowercase())
        {
            println!("\t[WARNING {name}]: {msg}");
        } else {
            self.errors.push(format!("\t[ERROR {name}]: {msg}"));
        }
    }

    /// `FileAvailable--etc-…`: `path` must not exist yet.
    pub fn file_available(&mut self, root: &Root, path: &str) {
        let problem = root.exists(path).then(|| format!("{path} already exists"));
        self.check(
            &format!("FileAvailable-{}", path.replace('/', "-")),
            problem,
        );
    }

    /// `DirAvailable--…`: `path` absent or empty.
    pub fn dir_available(&mut self, root: &Root, path: &str) {
        let busy = std::fs::read_dir(root.path(path)).is_ok_and(|mut d| d.next().is_some());
        self.check(
            &format!("DirAvailable-{}", path.replace('/', "-")),
            busy.then(|| format!("{path} is not empty")),
        );
    }

    /// `Port-N`: nothing listens on N.
    pub fn port_free(&mut self, port: u16) {
        let busy = TcpListener::bind(("0.0.0.0", port)).is_err();
        self.check(
            &format!("Port-{port}"),
            busy.then(|| format!("Port {port} is in use")),
        );
    }

    pub fn finish(self) -> Result<()> {
        if self.errors.is_empty() {
            return Ok(());
        }
        bail!(
            "error execution phase preflight: [preflight] Some fatal errors occurred:\n{}\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`",
            self.errors.join("\n")
        )
    }
}
