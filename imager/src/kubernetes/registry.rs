//! A read-only OCI distribution client: resolves a reference to one platform's manifest and
//! fetches its config and layers, verifying every digest and caching every blob by it.
//!
//! Speaks only what an anonymous pull needs: `GET /v2/<name>/manifests/<ref>` (OCI index and
//! manifest, Docker manifest list and v2 manifest), `GET /v2/<name>/blobs/<digest>`, and the
//! bearer-token dance on 401. It must not write anything but the cache.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::auth;
use super::http::{Http, Reply};
use super::layout::Blob;
use super::reference::{is_digest, ImageRef};
use super::{cache_get, cache_put, verify, KubeError};
use crate::lock::LockedImage;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const MANIFEST_LIMIT: u64 = 4 << 20;
const BLOB_LIMIT: u64 = 8 << 30;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
struct Platform {
    architecture: String,
    os: String,
    variant: Option<String>,
}

/// An index, a manifest, or (wrongly) neither: told apart by mediaType, else by fields.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    schema_version: u32,
    media_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    manifests: Option<Vec<Descriptor>>,
}

#[derive(Debug, Deserialize)]
struct ImageConfig {
    architecture: Option<String>,
    os: Option<String>,
}

/// One platform's image: its manifest and every blob it names (config first).
#[derive(Debug)]
pub struct Pulled {
    pub index_digest: Option<String>,
    pub manifest: Blob,
    pub blobs: Vec<Blob>,
}

pub struct Registry<'a> {
    http: &'a Http,
    cache: &'a Path,
    /// Bearer tokens by `<endpoint> <repository>`.
    tokens: HashMap<String, String>,
}

fn invalid(what: impl std::fmt::Display, message: impl Into<String>) -> KubeError {
    KubeError::Invalid {
        what: what.to_string(),
        message: message.into(),
    }
}

impl<'a> Registry<'a> {
    pub fn new(http: &'a Http, cache: &'a Path) -> Self {
        Registry {
            http,
            cache,
            tokens: HashMap::new(),
        }
    }

    /// Resolves `r` at `endpoint` to its `linux/<arch>` manifest (the locked digest when
    /// `pin` is given) and fetches config and layers.
    pub fn pull(
        &mut self,
        r: &ImageRef,
        endpoint: &str,
        arch: &str,
        pin: Option<&LockedImage>,
    ) -> Result<Pulled, KubeError> {
        let (index_digest, manifest) = match pin {
            Some(p) => (
                p.index_digest.clone(),
                self.manifest(r, endpoint, &p.digest)?,
            ),
            None => self.resolve(r, endpoint, arch)?,
        };
        let doc = parse_document(r, &manifest.data)?;
        let config = doc
            .config
            .ok_or_else(|| invalid(format!("{r} manifest {}", manifest.digest), "no config"))?;
        let mut blobs = vec![self.blob(r, endpoint, &config)?];
        check_platform(r, &blobs[0].data, arch)?;
        for l in &doc.layers {
            blobs.push(self.blob(r, endpoint, l)?);
        }
        Ok(Pulled {
            index_digest,
            manifest,
            blobs,
        })
    }

    /// Fetches the tag (or digest) and, for an index, the platform manifest it lists.
    fn resolve(
        &mut self,
        r: &ImageRef,
        endpoint: &str,
        arch: &str,
    ) -> Result<(Option<String>, Blob), KubeError> {
        let top = self.manifest(r, endpoint, r.manifest_reference())?;
        let doc = parse_document(r, &top.data)?;
        let is_index = matches!(top.media_type.as_str(), OCI_INDEX | DOCKER_LIST);
        let Some(list) = doc.manifests.filter(|_| is_index || doc.config.is_none()) else {
            return Ok((None, top));
        };
        let pick = pick_platform(&list, arch).ok_or_else(|| {
            let have: Vec<String> = list
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| format!("{}/{}", p.os, p.architecture))
                .collect();
            invalid(
                r,
                format!("no linux/{arch} image (has {})", have.join(", ")),
            )
        })?;
        let manifest = self.manifest(r, endpoint, &pick.digest)?;
        Ok((Some(top.digest), manifest))
    }

    /// One manifest by tag or digest; by digest it may come from the cache.
    fn manifest(
        &mut self,
        r: &ImageRef,
        endpoint: &str,
        reference: &str,
    ) -> Result<Blob, KubeError> {
        let what = format!("{r} manifest");
        if is_digest(reference) {
            if let Some(data) = cache_get(self.cache, reference) {
                let media_type = media_type_of(&data, None);
                return Ok(Blob::new(media_type, reference.to_string(), data));
            }
        }
        let accept = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(", ");
        let path = format!("manifests/{reference}");
        let reply = self.get(endpoint, &r.repository, &path, &accept, MANIFEST_LIMIT)?;
        let digest = super::digest_of(&reply.body);
        for claimed in [Some(reference), reply.header("docker-content-digest")] {
            match claimed {
                Some(d) if is_digest(d) => verify(&what, d, &reply.body)?,
                _ => {}
            }
        }
        cache_put(self.cache, &digest, &reply.body);
        let media_type = media_type_of(&reply.body, reply.header("content-type"));
        Ok(Blob::new(media_type, digest, reply.body))
    }

    /// One blob named by `d`, size and digest checked, from the cache when it is there.
    fn blob(&mut self, r: &ImageRef, endpoint: &str, d: &Descriptor) -> Result<Blob, KubeError> {
        let what = format!("{r} blob {}", d.digest);
        if !is_digest(&d.digest) {
            return Err(invalid(what, "only sha256 digests are supported"));
        }
        if d.size > BLOB_LIMIT {
            return Err(invalid(
                what,
                format!("{} bytes is more than kiln bakes", d.size),
            ));
        }
        let data = match cache_get(self.cache, &d.digest) {
            Some(data) => data,
            None => {
                let path = format!("blobs/{}", d.digest);
                let limit = d.size + 1;
                let body = self.get(endpoint, &r.repository, &path, "*/*", limit)?.body;
                if body.len() as u64 != d.size {
                    return Err(KubeError::Size {
                        what,
                        expected: d.size,
                        actual: body.len() as u64,
                    });
                }
                verify(&what, &d.digest, &body)?;
                cache_put(self.cache, &d.digest, &body);
                body
            }
        };
        Ok(Blob::new(d.media_type.clone(), d.digest.clone(), data))
    }

    /// GETs `<endpoint>/v2/<repo>/<path>`, answering one 401 bearer challenge.
    fn get(
        &mut self,
        endpoint: &str,
        repo: &str,
        path: &str,
        accept: &str,
        limit: u64,
    ) -> Result<Reply, KubeError> {
        let url = format!("{endpoint}/v2/{repo}/{path}");
        let key = format!("{endpoint} {repo}");
        let mut reply = self.send(&url, accept, self.tokens.get(&key), limit)?;
        if reply.status == 401 {
            let challenge = reply
                .header("www-authenticate")
                .unwrap_or_default()
                .to_string();
            let token = auth::anonymous_token(self.http, &url, &challenge, repo)?;
            reply = self.send(&url, accept, Some(&token), limit)?;
            if reply.status == 401 {
                return Err(KubeError::Auth {
                    url,
                    message: "the registry refused its own anonymous token".into(),
                });
            }
            self.tokens.insert(key, token);
        }
        if !reply.ok() {
            return Err(KubeError::Http {
                url,
                status: reply.status,
            });
        }
        Ok(reply)
    }

    fn send(
        &self,
        url: &str,
        accept: &str,
        token: Option<&String>,
        limit: u64,
    ) -> Result<Reply, KubeError> {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Accept", accept)];
        if let Some(b) = &bearer {
            headers.push(("Authorization", b.as_str()));
        }
        self.http.get(url, &headers, limit)
    }
}

fn parse_document(r: &ImageRef, data: &[u8]) -> Result<Document, KubeError> {
    let doc: Document = serde_json::from_slice(data)
        .map_err(|e| invalid(format!("{r} manifest"), format!("not a manifest: {e}")))?;
    if doc.schema_version != 2 {
        return Err(invalid(
            format!("{r} manifest"),
            format!(
                "schemaVersion {} is not supported (2 is)",
                doc.schema_version
            ),
        ));
    }
    Ok(doc)
}

/// The document's own mediaType, else the Content-Type it was served with, else its shape.
fn media_type_of(data: &[u8], content_type: Option<&str>) -> String {
    let doc: Option<Document> = serde_json::from_slice(data).ok();
    let own = doc.as_ref().and_then(|d| d.media_type.clone());
    let served = content_type
        .map(|c| c.split(';').next().unwrap_or_default().trim().to_string())
        .filter(|c| [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].contains(&c.as_str()));
    own.or(served).unwrap_or_else(|| {
        match doc.is_some_and(|d| d.manifests.is_some() && d.config.is_none()) {
            true => OCI_INDEX.into(),
            false => OCI_MANIFEST.into(),
        }
    })
}

/// linux/`arch`; on arm64 the v8 variant (or none).
fn pick_platform<'d>(list: &'d [Descriptor], arch: &str) -> Option<&'d Descriptor> {
    list.iter().find(|d| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == "linux"
                && p.architecture == arch
                && (arch != "arm64" || matches!(p.variant.as_deref(), None | Some("v8")))
        })
    })
}

fn check_platform(r: &ImageRef, config: &[u8], arch: &str) -> Result<(), KubeError> {
    let c: ImageConfig = serde_json::from_slice(config)
        .map_err(|e| invalid(format!("{r} config"), format!("not an image config: {e}")))?;
    let os = c.os.as_deref().unwrap_or("linux");
    let got = c.architecture.as_deref().unwrap_or(arch);
    if os != "linux" || got != arch {
        return Err(invalid(
            r,
            format!("the image is {os}/{got}, not linux/{arch}"),
        ));
    }
    Ok(())
}
