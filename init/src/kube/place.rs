//! Pre-places the cluster PKI where kubeadm looks for it (/etc/kubernetes/pki), so every
//! control plane signs with the CAs from `kiln cluster gen` instead of kubeadm making new
//! ones, and a worker knows the CA before it joins.
//!
//! A file already there with the same PEM content (line breaks aside: kubeadm rewrites
//! ca.crt on join with its own wrapping) is left alone; one with other content is an
//! error, never silently replaced.

use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{KubeError, PKI_DIR};
use crate::cluster::settings::ClusterSettings;

/// Whether the settings carry every key kubeadm shares between control planes (cluster
/// CA, front-proxy CA, service-account pair): then nothing has to be downloaded on join.
pub(crate) fn carries_shared_pki(settings: &ClusterSettings) -> bool {
    settings.ca.key.is_some()
        && settings
            .front_proxy_ca
            .as_ref()
            .is_some_and(|c| c.key.is_some())
        && settings.service_account.is_some()
}

/// Writes the PKI files the settings carry under `root`/etc/kubernetes/pki: always
/// ca.crt; ca.key, the front-proxy pair and sa.key/sa.pub when present (keys 0600,
/// the rest 0644). A CA certificate goes without its key only for the cluster CA (a
/// worker): kubeadm would take a lone front-proxy-ca.crt for an external CA and refuse
/// to start. Returns the files written now (unchanged ones are not listed).
pub fn place_pki(root: &Path, settings: &ClusterSettings) -> Result<Vec<PathBuf>, KubeError> {
    let mut files: Vec<(&str, &str, u32)> = vec![("ca.crt", settings.ca.cert.as_str(), 0o644)];
    if let Some(key) = &settings.ca.key {
        files.push(("ca.key", key.as_str(), 0o600));
    }
    if let Some(fp) = &settings.front_proxy_ca {
        if let Some(key) = &fp.key {
            files.push(("front-proxy-ca.crt", fp.cert.as_str(), 0o644));
            files.push(("front-proxy-ca.key", key.as_str(), 0o600));
        }
    }
    if let Some(sa) = &settings.service_account {
        files.push(("sa.key", sa.private.as_str(), 0o600));
        files.push(("sa.pub", sa.public.as_str(), 0o644));
    }
    let dir = root.join(PKI_DIR);
    let plan: Vec<(PathBuf, String, u32, bool)> = files
        .into_iter()
        .map(|(name, pem, mode)| {
            let path = dir.join(name);
            let text = with_newline(pem);
            let present = existing(&path, &text)?;
            Ok((path, text, mode, present))
        })
        .collect::<Result<_, KubeError>>()?;
    // Every conflict is found before anything is written: all or nothing.
    make_dirs(&dir).map_err(|source| KubeError::Write {
        path: dir.clone(),
        source,
    })?;
    let mut written = Vec::new();
    for (path, text, mode, present) in plan {
        let result = if present {
            fs::set_permissions(&path, Permissions::from_mode(mode))
        } else {
            crate::atomic::write(&path, text.as_bytes(), mode)
        };
        result.map_err(|source| KubeError::Write {
            path: path.clone(),
            source,
        })?;
        if !present {
            written.push(path);
        }
    }
    Ok(written)
}

fn with_newline(pem: &str) -> String {
    let mut text = pem.trim().to_string();
    text.push('\n');
    text
}

/// Whether `path` already holds `want`; an error when it holds something else.
fn existing(path: &Path, want: &str) -> Result<bool, KubeError> {
    match fs::read(path) {
        Ok(bytes) => {
            let have = String::from_utf8_lossy(&bytes);
            if same_pem(&have, want) {
                Ok(true)
            } else {
                Err(KubeError::Conflict(path.to_path_buf()))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(KubeError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Equal PEM text once whitespace is gone (line length and line ends do not matter).
fn same_pem(a: &str, b: &str) -> bool {
    let strip = |s: &str| -> String { s.chars().filter(|c| !c.is_whitespace()).collect() };
    strip(a) == strip(b)
}

fn make_dirs(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o755).create(dir)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{self, CA_CERT, CA_KEY, SA_PUB};
    use super::*;
    use crate::testutil::TempDir;

    fn names(paths: &[PathBuf]) -> Vec<String> {
        let name = |p: &PathBuf| p.file_name().map(|n| n.to_string_lossy().into_owned());
        paths.iter().filter_map(name).collect()
    }

    fn mode(path: &Path) -> u32 {
        let meta = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        meta.permissions().mode() & 0o777
    }

    #[test]
    fn control_plane_gets_every_file_with_key_modes() {
        let tmp = TempDir::new("kube-pki-cp");
        let settings = fixtures::settings("10.0.0.11");
        let written = place_pki(tmp.path(), &settings).unwrap_or_else(|e| panic!("{e}"));
        let want = [
            "ca.crt",
            "ca.key",
            "front-proxy-ca.crt",
            "front-proxy-ca.key",
            "sa.key",
            "sa.pub",
        ];
        assert_eq!(names(&written), want);
        let dir = tmp.path().join(PKI_DIR);
        for (name, m) in [
            ("ca.key", 0o600),
            ("sa.key", 0o600),
            ("front-proxy-ca.key", 0o600),
        ] {
            assert_eq!(mode(&dir.join(name)), m, "{name}");
        }
        assert_eq!(mode(&dir.join("ca.crt")), 0o644);
        let read = |n: &str| fs::read_to_string(dir.join(n)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read("ca.crt"), CA_CERT);
        assert_eq!(read("ca.key"), CA_KEY);
        assert_eq!(read("sa.pub"), SA_PUB);
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".kiln-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn worker_gets_only_the_ca_certificate() {
        let tmp = TempDir::new("kube-pki-worker");
        let settings = fixtures::worker_settings("10.0.0.21");
        let written = place_pki(tmp.path(), &settings).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names(&written), ["ca.crt"]);
        assert!(!tmp.path().join(PKI_DIR).join("ca.key").exists());
    }

    #[test]
    fn same_content_is_kept_and_other_content_refused() {
        let tmp = TempDir::new("kube-pki-again");
        let settings = fixtures::settings("10.0.0.11");
        // kubeadm's own wrapping of the same certificate counts as the same file.
        let rewrapped = CA_CERT.replace('\n', "\r\n").replace("Q0Eg", "Q0Eg\n");
        tmp.write(&format!("{PKI_DIR}/ca.crt"), &rewrapped);
        let written = place_pki(tmp.path(), &settings).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !names(&written).contains(&"ca.crt".to_string()),
            "{written:?}"
        );
        let again = place_pki(tmp.path(), &settings).unwrap_or_else(|e| panic!("{e}"));
        assert!(again.is_empty(), "{again:?}");

        let other = TempDir::new("kube-pki-conflict");
        other.write(
            &format!("{PKI_DIR}/sa.key"),
            "-----BEGIN PRIVATE KEY-----\nb3RoZXI=\n-----END PRIVATE KEY-----\n",
        );
        match place_pki(other.path(), &settings) {
            Err(KubeError::Conflict(path)) => assert!(path.ends_with("sa.key"), "{path:?}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
        // Nothing was written before the conflict was found.
        assert!(!other.path().join(PKI_DIR).join("ca.crt").exists());
    }

    #[test]
    fn front_proxy_certificate_without_key_is_not_placed() {
        let tmp = TempDir::new("kube-pki-fp");
        let mut shape: crate::cluster::settings::Shape = fixtures::settings("10.0.0.11").into();
        if let Some(fp) = shape.front_proxy_ca.as_mut() {
            fp.key = None;
        }
        let settings = crate::cluster::settings::ClusterSettings::try_from(shape)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!carries_shared_pki(&settings));
        let written = place_pki(tmp.path(), &settings).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !names(&written).iter().any(|n| n.starts_with("front-proxy")),
            "{written:?}"
        );
        assert!(carries_shared_pki(&fixtures::settings("10.0.0.11")));
    }
}
