//! Embeds into `kiln` what one binary needs to bake the default image on its own: the
//! `base` overlay and a statically linked `init` per architecture.
//!
//! `init` is built by a nested cargo run into its own target folder (so it never waits on
//! the outer build's lock). `KILN_INIT_X86_64=/path/init` / `KILN_INIT_AARCH64=/path/init`
//! embed prebuilt ones instead; `KILN_EMBED_INIT=0` embeds none and `KILN_EMBED_INIT=x86_64`
//! only the host's (then `kiln build` needs `--init PATH` for the others).
//!
//! The aarch64 init is cross-compiled with Debian's `rustc-web` (/usr/bin/rustc, or
//! `KILN_RUSTC_AARCH64`), whose `libstd-rust-web-dev:arm64` ships the standard library for
//! aarch64, linked statically by `aarch64-linux-gnu-gcc` (all from `.ci/setup-host`). Without
//! that toolchain kiln is built without an aarch64 init and says so (a cargo warning).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let mut code = String::new();
    overlay(&root.join("overlays/base"), &mut code);
    // Both inits at once: each nested build ends in a single-threaded (LTO) link.
    let (x86_64, aarch64) = std::thread::scope(|s| {
        let arm = s.spawn(|| init_aarch64(&root));
        let x86 = init_x86_64(&root);
        (
            x86,
            arm.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
        )
    });
    for (name, init) in [("INIT_X86_64", x86_64), ("INIT_AARCH64", aarch64)] {
        match init {
            Some(p) => writeln!(
                code,
                "pub static {name}: Option<&[u8]> = Some(include_bytes!({p:?}));"
            ),
            None => writeln!(code, "pub static {name}: Option<&[u8]> = None;"),
        }
        .ok();
    }
    if let Err(e) = std::fs::write(out.join("embedded.rs"), code) {
        panic!("write embedded.rs: {e}");
    }
    println!("cargo:rerun-if-env-changed=KILN_INIT_X86_64");
    println!("cargo:rerun-if-env-changed=KILN_INIT_AARCH64");
    println!("cargo:rerun-if-env-changed=KILN_RUSTC_AARCH64");
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
    build_init(
        root,
        "x86_64-unknown-linux-gnu",
        "target/init-embed",
        None,
        &[],
    )
}

fn init_aarch64(root: &Path) -> Option<PathBuf> {
    if let Ok(p) = std::env::var("KILN_INIT_AARCH64") {
        return Some(PathBuf::from(p));
    }
    if matches!(
        std::env::var("KILN_EMBED_INIT").as_deref(),
        Ok("0" | "x86_64")
    ) {
        return None;
    }
    let rustc = std::env::var("KILN_RUSTC_AARCH64").unwrap_or_else(|_| "/usr/bin/rustc".into());
    let std_lib = Path::new("/usr/lib/rustlib/aarch64-unknown-linux-gnu/lib");
    let linker = "aarch64-linux-gnu-gcc";
    let has_linker = Command::new(linker).arg("--version").output().is_ok();
    if !Path::new(&rustc).is_file() || !std_lib.is_dir() || !has_linker {
        println!(
            "cargo:warning=kiln is built without an aarch64 init: {rustc}, {} or {linker} missing (run .ci/setup-host)",
            std_lib.display()
        );
        return None;
    }
    build_init(
        root,
        "aarch64-unknown-linux-gnu",
        "target/init-embed-aarch64",
        Some(&rustc),
        &[("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", linker)],
    )
}

/// `cargo build --release -p kiln-init --target TRIPLE` into `root/dir`, static; panics on
/// failure (a half-embedded kiln would fail later and less clearly).
fn build_init(
    root: &Path,
    triple: &str,
    dir: &str,
    rustc: Option<&str>,
    env: &[(&str, &str)],
) -> Option<PathBuf> {
    println!("cargo:rerun-if-changed={}", root.join("init/src").display());
    println!(
        "cargo:rerun-if-changed={}",
        root.join("init/Cargo.toml").display()
    );
    let target_dir = root.join(dir);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // What cargo sets for this build script only. The nested cargo checks its crates'
    // `rerun-if-env-changed` against its own environment: an inherited OUT_DIR (different
    // for `cargo clippy` and `cargo build`) made it rebuild ring and all above it each time.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let ours = ["CARGO_CFG_", "CARGO_PKG_", "CARGO_MANIFEST_", "DEP_"]
            .iter()
            .any(|p| key.starts_with(p))
            || [
                "OUT_DIR",
                "TARGET",
                "HOST",
                "NUM_JOBS",
                "OPT_LEVEL",
                "DEBUG",
                "PROFILE",
                "RUSTC_LINKER",
            ]
            .contains(&key.as_ref());
        if ours {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd.current_dir(root)
        .args(["build", "--release", "-p", "kiln-init", "--target", triple])
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        // `cargo clippy` of the outer build wraps rustc with clippy-driver: not for init.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env("RUSTFLAGS", "-C target-feature=+crt-static");
    if let Some(rustc) = rustc {
        cmd.env("RUSTC", rustc);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        other => panic!(
            "building the static {triple} init failed ({other:?}); set KILN_EMBED_INIT=0 to skip"
        ),
    }
    Some(target_dir.join(triple).join("release/init"))
}
