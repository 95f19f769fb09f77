//! Just enough of MIME (RFC 2045/2046) for cloud-init user-data as `cloud-init devel
//! make-mime` and Python's email package write it: folded headers, `Content-Type` with a
//! `boundary`, `Content-Disposition` filename, base64 and quoted-printable bodies, nested
//! multiparts. Leaf parts come out flat, in document order.

use super::codec::{self, CodecError};

/// Nesting limit for multipart inside multipart.
const MAX_DEPTH: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum MimeError {
    #[error("multipart without a boundary")]
    NoBoundary,
    #[error("multipart nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("header line {0:?} has no ':'")]
    Header(String),
    #[error("decode part {index}")]
    Decode {
        index: usize,
        #[source]
        source: CodecError,
    },
}

/// One leaf part, body already transfer-decoded.
#[derive(Debug, PartialEq, Eq)]
pub struct Part {
    /// Lowercased media type without parameters; `None` when the part has none.
    pub content_type: Option<String>,
    pub filename: Option<String>,
    pub body: Vec<u8>,
}

/// Whether user-data looks like a MIME message (cloud-init checks the same prefixes).
pub fn is_mime(bytes: &[u8]) -> bool {
    let head: Vec<u8> = bytes.iter().take(20).map(u8::to_ascii_lowercase).collect();
    head.starts_with(b"content-type:") || head.starts_with(b"mime-version:")
}

pub fn parse(message: &[u8]) -> Result<Vec<Part>, MimeError> {
    let mut out = Vec::new();
    entity(message, 0, &mut out)?;
    Ok(out)
}

fn entity(bytes: &[u8], depth: usize, out: &mut Vec<Part>) -> Result<(), MimeError> {
    if depth > MAX_DEPTH {
        return Err(MimeError::TooDeep);
    }
    let (head, body) = split_head(bytes);
    let headers = headers(head)?;
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let (media, params) = get("content-type").map(value_params).unwrap_or_default();
    if media.starts_with("multipart/") {
        let boundary = params
            .iter()
            .find(|(k, _)| k == "boundary")
            .map(|(_, v)| v.clone())
            .ok_or(MimeError::NoBoundary)?;
        for child in split_parts(body, boundary.as_bytes()) {
            entity(child, depth + 1, out)?;
        }
        return Ok(());
    }
    let index = out.len() + 1;
    let decode_err = |source| MimeError::Decode { index, source };
    let cte = get("content-transfer-encoding").map(|v| v.trim().to_ascii_lowercase());
    let body = match cte.as_deref() {
        Some("base64") => codec::base64_decode(body).map_err(decode_err)?,
        Some("quoted-printable") => codec::quoted_printable(body).map_err(decode_err)?,
        _ => body.to_vec(),
    };
    let filename = get("content-disposition")
        .map(value_params)
        .and_then(|(_, p)| p.into_iter().find(|(k, _)| k == "filename").map(|(_, v)| v));
    out.push(Part {
        content_type: (!media.is_empty()).then_some(media),
        filename,
        body,
    });
    Ok(())
}

/// Splits at the first empty line; a message without one is all headers.
fn split_head(bytes: &[u8]) -> (&[u8], &[u8]) {
    let mut start = 0;
    while start < bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |p| start + p + 1);
        let line = &bytes[start..end];
        if line == b"\n" || line == b"\r\n" {
            return (&bytes[..start], &bytes[end..]);
        }
        start = end;
    }
    (bytes, &[])
}

fn headers(head: &[u8]) -> Result<Vec<(String, String)>, MimeError> {
    let text = String::from_utf8_lossy(head);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| MimeError::Header(line.to_string()))?;
        out.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(out)
}

/// `text/plain; charset="us-ascii"` → (`text/plain`, [(`charset`, `us-ascii`)]).
fn value_params(value: &str) -> (String, Vec<(String, String)>) {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    fields.push(cur);
    let mut iter = fields.into_iter();
    let media = iter.next().unwrap_or_default().trim().to_ascii_lowercase();
    let params = iter
        .filter_map(|f| {
            let (k, v) = f.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    (media, params)
}

/// Bodies between `--boundary` lines, up to `--boundary--` or the end of input.
fn split_parts<'a>(body: &'a [u8], boundary: &[u8]) -> Vec<&'a [u8]> {
    let mut delim = b"--".to_vec();
    delim.extend_from_slice(boundary);
    let mut parts = Vec::new();
    let mut current: Option<usize> = None;
    let mut start = 0;
    while start < body.len() {
        let end = body[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |p| start + p + 1);
        let line = body[start..end].trim_ascii_end();
        if let Some(rest) = line.strip_prefix(delim.as_slice()) {
            if rest.is_empty() || rest == b"--" {
                if let Some(from) = current {
                    parts.push(strip_newline(&body[from..start]));
                }
                if rest == b"--" {
                    return parts;
                }
                current = Some(end);
            }
        }
        start = end;
    }
    if let Some(from) = current {
        parts.push(&body[from..]);
    }
    parts
}

/// The line break before a delimiter belongs to the delimiter.
fn strip_newline(part: &[u8]) -> &[u8] {
    let part = part.strip_suffix(b"\n").unwrap_or(part);
    part.strip_suffix(b"\r").unwrap_or(part)
}
