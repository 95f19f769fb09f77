//! cloud-init user-data: gzip (capped), MIME multipart, `#cloud-config`, `#!` scripts.
//! Formats Kiln does not run (`#include`, `#cloud-boothook`, jinja templates, part
//! handlers, unknown MIME types) are reported as `part:<media type>`, never fatal.
//! Type detection follows cloud-init: the start of the payload, case-insensitive, after
//! leading whitespace, for untyped and `text/plain` parts.

use super::cloudconfig::{self, CloudConfigError};
use super::codec::{self, CodecError, MAX_DECOMPRESSED};
use super::draft::Draft;
use super::mime::{self, MimeError};
use super::model::{Frequency, Script};

#[derive(Debug, thiserror::Error)]
pub enum UserDataError {
    #[error("decompressed size exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Gzip(CodecError),
    #[error("MIME")]
    Mime(#[from] MimeError),
    #[error("part {part}: not UTF-8")]
    NotUtf8 { part: String },
    #[error("part {part}")]
    CloudConfig {
        part: String,
        #[source]
        source: CloudConfigError,
    },
}

/// Prefix → media type, longest first (cloud-init's `INCLUSION_TYPES_MAP`).
const STARTS_WITH: &[(&str, &str)] = &[
    ("#cloud-config-archive", "text/cloud-config-archive"),
    ("#cloud-config-jsonp", "text/cloud-config-jsonp"),
    ("## template: jinja", "text/jinja2"),
    ("#cloud-boothook", "text/cloud-boothook"),
    ("#include-once", "text/x-include-once-url"),
    ("#part-handler", "text/part-handler"),
    ("#cloud-config", "text/cloud-config"),
    ("#include", "text/x-include-url"),
    ("#!", "text/x-shellscript"),
];

/// Parses user-data into a contribution: cloud-config parts absorbed in order, scripts,
/// unsupported parts.
pub fn parse(bytes: &[u8]) -> Result<Draft, UserDataError> {
    let mut draft = Draft::default();
    let mut ctx = Ctx {
        draft: &mut draft,
        index: 0,
    };
    let bytes = gunzip_if(bytes)?;
    if mime::is_mime(trim_start(&bytes)) {
        for part in mime::parse(trim_start(&bytes))? {
            ctx.part(part.content_type.as_deref(), part.filename, &part.body)?;
        }
    } else {
        ctx.part(None, None, &bytes)?;
    }
    Ok(draft)
}

fn gunzip_if(bytes: &[u8]) -> Result<Vec<u8>, UserDataError> {
    if !codec::is_gzip(bytes) {
        return Ok(bytes.to_vec());
    }
    codec::gunzip(bytes, MAX_DECOMPRESSED).map_err(|e| match e {
        CodecError::TooLarge { limit } => UserDataError::TooLarge { limit },
        other => UserDataError::Gzip(other),
    })
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii_start()
}

fn sniff(body: &[u8]) -> Option<&'static str> {
    let head: Vec<u8> = trim_start(body)
        .iter()
        .take(32)
        .map(u8::to_ascii_lowercase)
        .collect();
    STARTS_WITH
        .iter()
        .find(|(prefix, _)| head.starts_with(prefix.as_bytes()))
        .map(|(_, media)| *media)
}

struct Ctx<'a> {
    draft: &'a mut Draft,
    index: usize,
}

impl Ctx<'_> {
    fn part(
        &mut self,
        media: Option<&str>,
        filename: Option<String>,
        body: &[u8],
    ) -> Result<(), UserDataError> {
        self.index += 1;
        let needs_sniff = matches!(media, None | Some("text/plain" | "text/x-not-multipart"));
        let gz = matches!(media, Some("application/x-gzip" | "application/gzip"))
            || (needs_sniff && codec::is_gzip(body));
        if gz {
            let inner = gunzip_if(body)?;
            if codec::is_gzip(&inner) {
                // gzip inside gzip: not something cloud-init produces; stop here.
                self.draft.unsupported.push("part:application/x-gzip");
                return Ok(());
            }
            self.index -= 1;
            return self.part(None, filename, &inner);
        }
        if needs_sniff && body.trim_ascii().is_empty() {
            return Ok(());
        }
        let media = match media {
            _ if needs_sniff => match sniff(body) {
                Some(m) => m,
                None => media.unwrap_or("text/plain"),
            },
            Some(m) => m,
            None => "text/plain",
        };
        let frequency = match media {
            "text/x-shellscript" | "text/x-shellscript-per-instance" => Frequency::PerInstance,
            "text/x-shellscript-per-boot" => Frequency::PerBoot,
            "text/x-shellscript-per-once" => Frequency::Once,
            "text/cloud-config" => return self.cloud_config(filename, body),
            other => {
                self.draft.unsupported.push(format!("part:{other}"));
                return Ok(());
            }
        };
        let name = script_name(filename.as_deref(), self.index);
        self.draft.scripts.push(Script {
            name,
            frequency,
            content: body.to_vec(),
        });
        Ok(())
    }

    fn cloud_config(&mut self, filename: Option<String>, body: &[u8]) -> Result<(), UserDataError> {
        let part = match filename {
            Some(f) => format!("{} ({f})", self.index),
            None => self.index.to_string(),
        };
        let text =
            std::str::from_utf8(body).map_err(|_| UserDataError::NotUtf8 { part: part.clone() })?;
        let contribution = cloudconfig::parse(text)
            .map_err(|source| UserDataError::CloudConfig { part, source })?;
        self.draft.absorb(contribution);
        Ok(())
    }
}

/// The part's file name without directories, or `part-NNN` as cloud-init names them.
fn script_name(filename: Option<&str>, index: usize) -> String {
    let base = filename
        .and_then(|f| f.rsplit('/').next())
        .map(str::trim)
        .filter(|b| !b.is_empty() && *b != "." && *b != ".." && !b.contains('\0'));
    match base {
        Some(b) => b.to_string(),
        None => format!("part-{index:03}"),
    }
}
