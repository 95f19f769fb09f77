//! write_files content decoding, shared by cloud-config and kiln.toml: the encodings
//! cloud-init documents (b64/base64, gz/gzip, gz+b64/gzip+base64 and spellings, text),
//! plus YAML `!!binary` content, which is decoded first as PyYAML does.

use super::codec::{self, CodecError, MAX_DECOMPRESSED};
use super::mode::FileMode;
use super::model::WriteFile;
use super::types::{AbsPath, Owner};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("write_files {path}: unknown encoding {encoding:?}")]
    Encoding { path: AbsPath, encoding: String },
    #[error("write_files {path}: decode content")]
    Decode {
        path: AbsPath,
        #[source]
        source: CodecError,
    },
}

/// One write_files entry before its content is decoded.
pub struct FileSpec {
    pub path: AbsPath,
    pub content: String,
    /// The YAML node was tagged `!!binary` (content is base64 text).
    pub binary: bool,
    pub encoding: Option<String>,
    pub permissions: Option<FileMode>,
    pub owner: Option<Owner>,
    pub append: bool,
    pub defer: bool,
}

enum Step {
    Base64,
    Gunzip,
}

fn steps(encoding: &str) -> Option<&'static [Step]> {
    Some(match encoding.trim().to_ascii_lowercase().as_str() {
        "" | "text" | "text/plain" => &[],
        "b64" | "base64" => &[Step::Base64],
        "gz" | "gzip" => &[Step::Gunzip],
        "gz+base64" | "gzip+base64" | "gz+b64" | "gzip+b64" => &[Step::Base64, Step::Gunzip],
        _ => return None,
    })
}

impl FileSpec {
    pub fn decode(self) -> Result<WriteFile, FileError> {
        let encoding = self.encoding.unwrap_or_default();
        let Some(steps) = steps(&encoding) else {
            return Err(FileError::Encoding {
                path: self.path,
                encoding,
            });
        };
        let path = self.path;
        let fail = |source| FileError::Decode {
            path: path.clone(),
            source,
        };
        let mut bytes = if self.binary {
            codec::base64_decode(self.content.as_bytes()).map_err(fail)?
        } else {
            self.content.into_bytes()
        };
        for step in steps {
            bytes = match step {
                Step::Base64 => codec::base64_decode(&bytes),
                Step::Gunzip => codec::gunzip(&bytes, MAX_DECOMPRESSED),
            }
            .map_err(fail)?;
        }
        Ok(WriteFile {
            path,
            content: bytes,
            permissions: self.permissions.unwrap_or_default(),
            owner: self.owner.unwrap_or_default(),
            append: self.append,
            defer: self.defer,
        })
    }
}
