//! `kiln`: thin binary over `kiln_imager`. Parses arguments, runs, prints the error chain once.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kiln_imager::pipeline::{self, BuildOptions};

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Bakes Kiln node images from Debian packages"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build a bootable disk image (raw + qcow2) from a spec (default: the built-in node).
    Build {
        /// Image spec (TOML). Without it, the built-in node spec.
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Output folder.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Lock file (default: next to the spec as <spec>.lock; out/kiln.lock for the built-in).
        #[arg(long)]
        lock: Option<PathBuf>,
        /// Refuse to build when resolution differs from the lock file.
        #[arg(long)]
        locked: bool,
        /// Debian mirror URL (default: the spec's, else the host's apt sources).
        #[arg(long)]
        mirror: Option<String>,
        /// Use this init binary instead of the one embedded in kiln.
        #[arg(long)]
        init: Option<PathBuf>,
        /// Download cache (default: $XDG_CACHE_HOME/kiln).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// No progress output.
        #[arg(long, short)]
        quiet: bool,
    },
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Build {
            spec,
            out,
            lock,
            locked,
            mirror,
            init,
            cache,
            quiet,
        } => {
            let opts = BuildOptions {
                spec,
                out,
                lock,
                locked,
                mirror,
                init,
                cache,
                quiet,
            };
            let r = pipeline::build(&opts)?;
            println!(
                "built {} in {:.1}s: {} packages, {} root entries, squashfs {:.1} MiB",
                r.name,
                r.seconds,
                r.packages,
                r.root_files,
                r.squashfs_bytes as f64 / 1048576.0
            );
            for (path, size, digest) in &r.outputs {
                let d = if digest.is_empty() {
                    String::new()
                } else {
                    format!(" sha256 {digest}")
                };
                println!(
                    "  {} ({:.1} MiB on disk){d}",
                    path.display(),
                    *size as f64 / 1048576.0
                );
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("kiln: error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}
