//! Embeds into `kiln` what one binary needs to bake the default image on its own: the
//! `base` overlay and a statically linked `init` per architecture.
//!
//! `init` is built by a nested cargo run into its own target folder (so it never waits on
//! the outer build's lock). `KILN_INIT_X86_64=/path/init` embeds a prebuilt one instead;
//! `KILN_EMBED_INIT=0` embeds none (then `kiln build` needs `--init PATH`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let mut code = String::new();
    overlay(&root.join("overlays/base"), &mut code);
    let init = init_x86_64(&root);
    match init {
        Some(p) => writeln!(
            code,
            "pub static INIT_X86_64: Option<&[u8]> = Some(include_bytes!({:?}));",
            p
        ),
        None => writeln!(code, "pub static INIT_X86_64: Option<&[u8]> = None;"),
    }
    .ok();
    if let Err(e) = std::fs::write(out.join("embedded.rs"), code) {
        panic!("write embedded.rs: {e}");
    }
    println!("cargo:rerun-if-env-changed=KILN_INIT_X86_64");
    println!("cargo:rerun-if-env-changed=KILN_EMBED_INIT");
}

fn overlay(dir: &Path, code: &mut String) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    code.push_str("pub static BASE_OVERLAY: &[(&str, u32, &[u8])] = &[\n");
    for (rel, mode, abs) in files {
        println!("cargo:rerun-if-changed={}", abs.display());
        writeln!(code, "    ({rel:?}, 0o{mode:o}, include_bytes!({abs:?})),").ok();
    }
    code.push_str("];\n");
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, u32, PathBuf)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(base, &p, out);
        } else if let (Ok(rel), Ok(meta)) = (p.strip_prefix(base), p.metadata()) {
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
            out.push((rel.display().to_string(), mode, p.clone()));
        }
    }
}

fn init_x86_64(root: &Path) -> Option<PathBuf> {
    if let Ok(p) = std::env::var("KILN_INIT_X86_64") {
        return Some(PathBuf::from(p));
    }
    if std::env::var("KILN_EMBED_INIT").as_deref() == Ok("0") {
        return None;
    }
    println!("cargo:rerun-if-changed={}", root.join("init/src").display());
    println!(
        "cargo:rerun-if-changed={}",
        root.join("init/Cargo.toml").display()
    );
    let target_dir = root.join("target/init-embed");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-p",
            "kiln-init",
            "--target",
            "x86_64-unknown-linux-gnu",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => {
            panic!("building the static init failed ({other:?}); set KILN_EMBED_INIT=0 to skip")
        }
    }
    Some(target_dir.join("x86_64-unknown-linux-gnu/release/init"))
}
