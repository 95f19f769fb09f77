//! Kernel modules listed by the imager in /etc/kiln/modules.load, loaded in file order.
//!
//! Owns parsing the list and loading each file with `finit_module`. It does not resolve
//! dependencies or decompress (the imager already did both) and never aborts the boot: a
//! module that fails to load is reported and the next one is tried.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::chain::error_chain;

/// Errors parsing the list or loading one module.
#[derive(Debug, thiserror::Error)]
pub enum ModulesError {
    #[error("line {line}: {path:?} is not an absolute path")]
    NotAbsolute { line: usize, path: String },
    #[error("open module file")]
    Open(#[source] io::Error),
    #[error("finit_module")]
    Load(#[source] io::Error),
    /// finit_module's ENOENT: the kernel logged "Unknown symbol" for this module.
    #[error("finit_module: unknown symbol (a dependency is missing or listed later)")]
    UnknownSymbol,
}

/// Parses modules.load: one absolute path per line; blank lines and `#` comments allowed.
pub fn parse(text: &str) -> Result<Vec<PathBuf>, ModulesError> {
    let mut paths = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !line.starts_with('/') {
            return Err(ModulesError::NotAbsolute {
                line: index + 1,
                path: line.to_string(),
            });
        }
        paths.push(PathBuf::from(line));
    }
    Ok(paths)
}

/// Host boundary: loads one module file into the kernel.
pub trait ModuleLoader {
    fn load(&mut self, path: &Path) -> Result<(), ModulesError>;
}

/// The real loader: open + finit_module(2).
#[derive(Debug, Default)]
pub struct SysLoader;

impl ModuleLoader for SysLoader {
    fn load(&mut self, path: &Path) -> Result<(), ModulesError> {
        let file = File::open(path).map_err(ModulesError::Open)?;
        crate::sys::finit_module(&file).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => ModulesError::UnknownSymbol,
            _ => ModulesError::Load(e),
        })
    }
}

/// A module that did not load, with the error chain as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub module: String,
    pub error: String,
}

/// Result of loading a whole list.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Loaded now or already present (EEXIST).
    pub loaded: usize,
    pub failed: Vec<Failure>,
}

/// Loads `paths` in order; EEXIST (already loaded or built in) counts as loaded.
pub fn load_all(loader: &mut dyn ModuleLoader, paths: &[PathBuf]) -> LoadReport {
    let mut report = LoadReport::default();
    for path in paths {
        match loader.load(path) {
            Ok(()) => report.loaded += 1,
            Err(ModulesError::Load(e)) if e.raw_os_error() == Some(libc::EEXIST) => {
                report.loaded += 1;
            }
            Err(e) => report.failed.push(Failure {
                module: path.display().to_string(),
                error: error_chain(&e),
            }),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_lists() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("\n\n# only comments\n  # indented\n", &[]),
            (
                "/lib/modules/k/a.ko\n\n# c\n  /lib/modules/k/b.ko  \n",
                &["/lib/modules/k/a.ko", "/lib/modules/k/b.ko"],
            ),
            ("/x.ko\r\n/y.ko", &["/x.ko", "/y.ko"]),
        ];
        for (text, want) in cases {
            let got = parse(text).unwrap();
            let want: Vec<PathBuf> = want.iter().map(PathBuf::from).collect();
            assert_eq!(got, want, "list {text:?}");
        }
    }

    #[test]
    fn rejects_relative_paths_with_line_number() {
        let cases: &[(&str, usize, &str)] = &[
            ("virtio_blk.ko", 1, "virtio_blk.ko"),
            ("/a.ko\n\n# c\nkernel/b.ko\n", 4, "kernel/b.ko"),
        ];
        for (text, want_line, want_path) in cases {
            match parse(text) {
                Err(ModulesError::NotAbsolute { line, path }) => {
                    assert_eq!((line, path.as_str()), (*want_line, *want_path));
                }
                other => panic!("list {text:?}: got {other:?}"),
            }
        }
    }

    /// Fake loader: records calls and fails with a chosen errno per file name.
    struct FakeLoader {
        calls: Vec<PathBuf>,
        errors: Vec<(&'static str, i32)>,
    }

    impl ModuleLoader for FakeLoader {
        fn load(&mut self, path: &Path) -> Result<(), ModulesError> {
            self.calls.push(path.to_path_buf());
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            match self.errors.iter().find(|(n, _)| *n == name) {
                Some((_, libc::ENOENT)) => Err(ModulesError::Open(io::Error::from_raw_os_error(
                    libc::ENOENT,
                ))),
                Some((_, errno)) => Err(ModulesError::Load(io::Error::from_raw_os_error(*errno))),
                None => Ok(()),
            }
        }
    }

    #[test]
    fn load_all_counts_eexist_as_loaded_and_continues_after_failures() {
        let paths = parse("/m/a.ko\n/m/b.ko\n/m/c.ko\n/m/d.ko\n").unwrap();
        let mut loader = FakeLoader {
            calls: Vec::new(),
            errors: vec![
                ("b.ko", libc::EEXIST),
                ("c.ko", libc::ENOEXEC),
                ("d.ko", libc::ENOENT),
            ],
        };
        let report = load_all(&mut loader, &paths);
        assert_eq!(loader.calls, paths, "every module tried, in order");
        assert_eq!(report.loaded, 2);
        let failed: Vec<&str> = report.failed.iter().map(|f| f.module.as_str()).collect();
        assert_eq!(failed, ["/m/c.ko", "/m/d.ko"]);
        assert!(
            report.failed[0].error.starts_with("finit_module: "),
            "{}",
            report.failed[0].error
        );
        assert!(
            report.failed[1].error.starts_with("open module file: "),
            "{}",
            report.failed[1].error
        );
    }
}
