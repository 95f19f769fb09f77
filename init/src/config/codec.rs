//! Byte-level decoders used by the config parsers: gzip with a size cap, lenient base64
//! (MIME line breaks, optional padding), quoted-printable, and magic-number sniffing.
//!
//! Pure functions over byte slices; owns no policy about which source uses which.

use std::io::Read;

use base64::engine::general_purpose::{GeneralPurpose, PAD_INDIFFERENT};
use base64::Engine;

/// Largest decompressed document accepted anywhere (user-data, write_files content).
pub const MAX_DECOMPRESSED: usize = 16 << 20;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, PAD_INDIFFERENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, PAD_INDIFFERENT);

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("decompressed size exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("gunzip")]
    Gzip(#[source] std::io::Error),
    #[error("zstd decompress")]
    Zstd(#[source] std::io::Error),
    #[error("base64 decode")]
    Base64(#[source] base64::DecodeError),
    #[error("quoted-printable decode: bad escape at byte {at}")]
    QuotedPrintable { at: usize },
}

pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

pub fn is_zstd(bytes: &[u8]) -> bool {
    bytes.starts_with(&ZSTD_MAGIC)
}

/// Decompresses a gzip stream (concatenated members included), refusing output larger
/// than `limit` so a small bomb cannot exhaust PID 1's memory.
pub fn gunzip(bytes: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let decoder = flate2::read::MultiGzDecoder::new(bytes);
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    decoder
        .take(cap)
        .read_to_end(&mut out)
        .map_err(CodecError::Gzip)?;
    if out.len() > limit {
        return Err(CodecError::TooLarge { limit });
    }
    Ok(out)
}

/// Decompresses a zstd frame (pure-Rust decoder), refusing more than `limit` bytes out.
pub fn unzstd(bytes: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let mut input = bytes;
    let decoder = ruzstd::decoding::StreamingDecoder::new(&mut input)
        .map_err(|e| CodecError::Zstd(std::io::Error::other(e.to_string())))?;
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    decoder
        .take(cap)
        .read_to_end(&mut out)
        .map_err(CodecError::Zstd)?;
    if out.len() > limit {
        return Err(CodecError::TooLarge { limit });
    }
    Ok(out)
}

/// Decodes base64 ignoring ASCII whitespace (MIME and YAML block scalars wrap lines),
/// with or without padding; the URL-safe alphabet is accepted too (kernel command line).
pub fn base64_decode(text: &[u8]) -> Result<Vec<u8>, CodecError> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.iter().any(|b| matches!(b, b'-' | b'_')) {
        return URL_SAFE.decode(&compact).map_err(CodecError::Base64);
    }
    STANDARD.decode(&compact).map_err(CodecError::Base64)
}

/// Decodes a quoted-printable body (RFC 2045 §6.7), soft line breaks included.
pub fn quoted_printable(body: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'=' => {
                let rest = &body[i + 1..];
                if rest.starts_with(b"\r\n") {
                    i += 3;
                } else if rest.starts_with(b"\n") {
                    i += 2;
                } else {
                    let hex = rest.get(..2).ok_or(CodecError::QuotedPrintable { at: i })?;
                    let text = std::str::from_utf8(hex)
                        .map_err(|_| CodecError::QuotedPrintable { at: i })?;
                    let byte = u8::from_str_radix(text, 16)
                        .map_err(|_| CodecError::QuotedPrintable { at: i })?;
                    out.push(byte);
                    i += 3;
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gunzip_round_trip_and_cap() {
        let data = vec![b'a'; 4096];
        assert_eq!(gunzip(&gz(&data), 4096).unwrap(), data);
        assert!(matches!(
            gunzip(&gz(&data), 4095),
            Err(CodecError::TooLarge { limit: 4095 })
        ));
        assert!(matches!(
            gunzip(b"\x1f\x8bnope", 10),
            Err(CodecError::Gzip(_))
        ));
    }

    #[test]
    fn base64_is_lenient_about_layout() {
        assert_eq!(base64_decode(b"aGVs\nbG8=\n").unwrap(), b"hello");
        assert_eq!(base64_decode(b"aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode(b"-_8").unwrap(), [0xfb, 0xff]);
        assert!(matches!(base64_decode(b"a*b"), Err(CodecError::Base64(_))));
    }

    #[test]
    fn quoted_printable_decodes_escapes_and_soft_breaks() {
        assert_eq!(quoted_printable(b"a=3Db=\r\nc").unwrap(), b"a=bc");
        assert!(matches!(
            quoted_printable(b"x=G1"),
            Err(CodecError::QuotedPrintable { at: 1 })
        ));
    }
}
