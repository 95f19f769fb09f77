//! Container image references (`[host[:port]/]path[:tag][@sha256:…]`), normalised the way
//! Docker and containerd do (`flannel/flannel:v1` is `docker.io/flannel/flannel:v1`,
//! `busybox` is `docker.io/library/busybox:latest`), and where each one is fetched from.
//!
//! Pure: parsing and naming only.

use std::fmt;

use serde::Deserialize;

/// A normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct ImageRef {
    /// `docker.io`, `registry.k8s.io`, `localhost:5000`…
    pub domain: String,
    /// `library/busybox`, `coredns/coredns`…
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl TryFrom<String> for ImageRef {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        ImageRef::parse(s)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Whether `host` (without port) is this machine.
pub fn is_loopback(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1")
}

/// `host[:port]` without the port (IPv6 literals keep their brackets).
pub fn host_only(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// Whether `s` is a `sha256:<64 lower-case hex>` digest.
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn component_ok(c: &str) -> bool {
    !c.is_empty()
        && c.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
        && c.as_bytes()[0].is_ascii_alphanumeric()
        && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
}

fn tag_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !t.starts_with(['.', '-'])
}

impl ImageRef {
    pub fn parse(text: impl Into<String>) -> Result<Self, String> {
        let text: String = text.into();
        let bad = |why: &str| format!("image {text:?}: {why}");
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) if is_digest(d) => (r, Some(d.to_string())),
            Some(_) => return Err(bad("digest must be sha256: and 64 lower-case hex digits")),
            None => (text.as_str(), None),
        };
        let (domain, path) = match rest.split_once('/') {
            Some((d, p)) if d.contains(['.', ':']) || d == "localhost" => (d.to_string(), p),
            _ => ("docker.io".to_string(), rest),
        };
        let (path, tag) = match path.rsplit_once(':') {
            Some((p, t)) => (p, Some(t.to_string())),
            None => (path, None),
        };
        if domain.is_empty() || domain.contains(['/', '@']) {
            return Err(bad("bad registry host"));
        }
        if !path.split('/').all(component_ok) {
            return Err(bad(
                "name components are lower-case letters, digits, '.', '_' and '-'",
            ));
        }
        if let Some(t) = &tag {
            if !tag_ok(t) {
                return Err(bad("bad tag"));
            }
        }
        let domain = match domain.as_str() {
            "index.docker.io" => "docker.io".to_string(),
            _ => domain,
        };
        let repository = match (domain.as_str(), path.contains('/')) {
            ("docker.io", false) => format!("library/{path}"),
            _ => path.to_string(),
        };
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(ImageRef {
            domain,
            repository,
            tag,
            digest,
        })
    }

    /// What the manifest request names: the digest if pinned, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The archive's file name under /usr/share/kiln/images: `<last name>_<tag>.tar`.
    pub fn archive_name(&self) -> String {
        let name = self.repository.rsplit('/').next().unwrap_or_default();
        let tag = match (&self.tag, &self.digest) {
            (Some(t), _) => t.clone(),
            (None, Some(d)) => format!("sha256-{}", &d[7..19]),
            (None, None) => "latest".into(),
        };
        format!("{name}_{tag}.tar")
    }

    /// The base URL the image is fetched from. `registry.k8s.io` images come from
    /// `k8s_registry` (its mirror, if the spec names one); Docker Hub lives at
    /// registry-1.docker.io; registries on this machine speak plain HTTP.
    pub fn endpoint(&self, k8s_registry: &str) -> String {
        match self.domain.as_str() {
            "registry.k8s.io" => k8s_registry.trim_end_matches('/').to_string(),
            "docker.io" => "https://registry-1.docker.io".to_string(),
            d if is_loopback(host_only(d)) => format!("http://{d}"),
            d => format!("https://{d}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        let cases = [
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox_latest.tar",
            ),
            (
                "flannel/flannel:v0.26.7",
                "docker.io/flannel/flannel:v0.26.7",
                "flannel_v0.26.7.tar",
            ),
            (
                "registry.k8s.io/coredns/coredns:v1.12.1",
                "registry.k8s.io/coredns/coredns:v1.12.1",
                "coredns_v1.12.1.tar",
            ),
            (
                "localhost:5000/a/b",
                "localhost:5000/a/b:latest",
                "b_latest.tar",
            ),
            ("index.docker.io/x/y:1", "docker.io/x/y:1", "y_1.tar"),
        ];
        for (input, full, file) in cases {
            let r = ImageRef::parse(input).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (r.to_string().as_str(), r.archive_name().as_str()),
                (full, file)
            );
        }
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = ImageRef::parse(format!("quay.io/x/y@{d}")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.tag.as_deref(), r.manifest_reference()),
            (None, d.as_str())
        );
        assert_eq!(r.archive_name(), "y_sha256-abababababab.tar");
    }

    #[test]
    fn bad_references() {
        for (input, why) in [
            ("Busybox", "name components"),
            ("a/b:", "bad tag"),
            ("a/b:-x", "bad tag"),
            ("a/b@sha256:12", "digest must be"),
            ("quay.io//x", "name components"),
            ("quay.io/x/", "name components"),
        ] {
            let Err(e) = ImageRef::parse(input) else {
                panic!("{input} parsed")
            };
            assert!(e.contains(why) && e.contains(input), "{input}: {e}");
        }
    }

    #[test]
    fn endpoints() {
        let ep = |s: &str| ImageRef::parse(s).map(|r| r.endpoint("http://127.0.0.1:9/"));
        assert_eq!(
            ep("registry.k8s.io/pause:3.10"),
            Ok("http://127.0.0.1:9".into())
        );
        assert_eq!(ep("busybox"), Ok("https://registry-1.docker.io".into()));
        assert_eq!(ep("127.0.0.1:5000/x"), Ok("http://127.0.0.1:5000".into()));
        assert_eq!(ep("ghcr.io/x/y"), Ok("https://ghcr.io".into()));
    }
}
