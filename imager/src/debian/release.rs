//! The signed top of a Debian suite: `InRelease` signature checking and `Release` parsing.
//!
//! Owns the OpenPGP trust decision (is this index signed by a key in the given keyring?) and
//! the Release fields the imager needs. It must not fetch anything or parse Packages files.
//!
//! Trust policy: any cryptographically valid signature, made by a primary key or by a subkey
//! with a valid binding signature, of any certificate in the keyring, is accepted. rpgp 0.21
//! offers no policy layer for key expiry or revocation, so neither is evaluated: the keyring
//! given is the trust root (as with apt's `Signed-By`), and freshness is the caller's job via
//! [`Release::date`]. Signatures over MD5, SHA-1 or RIPEMD-160 digests never count as valid
//! (rpgp 0.21 would accept them), matching apt's refusal of weak digests.

use std::collections::BTreeMap;

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::Signature;
use pgp::types::KeyDetails;

/// Errors from verifying an `InRelease` or parsing a `Release`.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("InRelease is not an OpenPGP clearsigned message")]
    NotClearsigned,
    #[error("malformed clearsigned InRelease: {0}")]
    BadCleartext(&'static str),
    #[error("parsing InRelease signature block")]
    Armor(#[source] pgp::errors::Error),
    #[error("reading OpenPGP keyring")]
    Keyring(#[source] pgp::errors::Error),
    #[error("OpenPGP keyring holds no public keys")]
    EmptyKeyring,
    #[error("InRelease signature does not verify against its issuer key")]
    BadSignature,
    #[error("InRelease is not signed by any key in the keyring")]
    NoKnownKey,
    #[error("Release is missing field {0}")]
    MissingField(&'static str),
    #[error("Release line {line}: {reason}")]
    Malformed { line: usize, reason: &'static str },
}

/// Size and SHA-256 of one file listed in a Release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHash {
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

/// The fields of a Release file the imager uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub suite: String,
    pub codename: String,
    pub date: String,
    /// `Acquire-By-Hash: yes`; false when absent.
    pub acquire_by_hash: bool,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    /// Path relative to the suite directory (e.g. `main/binary-amd64/Packages.xz`).
    pub sha256: BTreeMap<String, FileHash>,
}

const CLEARSIGN_HEADER: &str = "-----BEGIN PGP SIGNED MESSAGE-----";

/// Verifies an InRelease (clearsigned) against a binary or armored OpenPGP keyring holding
/// several public keys; returns the signed text with `\n` line endings.
///
/// Succeeds as soon as one signature verifies with one key (primary or bound subkey).
/// `NoKnownKey` when no signature names (by issuer key id or fingerprint) a key in the ring;
/// `BadSignature` when some signature names a ring key but none verifies.
pub fn verify_inrelease(inrelease: &[u8], keyring: &[u8]) -> Result<String, ReleaseError> {
    let text = std::str::from_utf8(inrelease).map_err(|_| ReleaseError::NotClearsigned)?;
    let (signed, armor) = split_cleartext(text)?;
    let (sigs, _) =
        DetachedSignature::from_armor_many(armor.as_bytes()).map_err(ReleaseError::Armor)?;
    let sigs = sigs
        .collect::<Result<Vec<_>, _>>()
        .map_err(ReleaseError::Armor)?;
    if sigs.is_empty() {
        return Err(ReleaseError::BadCleartext("no signatures"));
    }
    let certs = load_keyring(keyring)?;
    let mut named = false;
    for sig in &sigs {
        for cert in &certs {
            match verify_with_cert(&sig.signature, cert, signed.as_bytes()) {
                Verdict::Valid => return Ok(signed.replace("\r\n", "\n")),
                Verdict::Invalid => named = true,
                Verdict::NotIssuer => {}
            }
        }
    }
    Err(if named {
        ReleaseError::BadSignature
    } else {
        ReleaseError::NoKnownKey
    })
}

/// Splits a clearsigned message (RFC 9580 section 7) into the exact text that was signed
/// (dash-unescaped, trailing blanks trimmed, CRLF line breaks, no final line break) and the
/// armored signature block. Done here rather than by rpgp 0.21, whose cleartext reader
/// rescans its whole buffer on every line (about 40 ms for a 140 KB InRelease).
fn split_cleartext(text: &str) -> Result<(String, &str), ReleaseError> {
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().unwrap_or("").trim_end();
    if first != CLEARSIGN_HEADER {
        return Err(ReleaseError::NotClearsigned);
    }
    let mut consumed = 0;
    for line in lines.by_ref() {
        consumed += line.len();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if !line.starts_with("Hash:") {
            return Err(ReleaseError::BadCleartext("armor header other than Hash"));
        }
    }
    let mut body = Vec::new();
    let mut armor_at = None;
    let mut offset = text.find('\n').map_or(text.len(), |i| i + 1) + consumed;
    for line in lines {
        if line.starts_with("-----") {
            armor_at = Some(offset);
            break;
        }
        offset += line.len();
        let content = line.trim_end_matches(['\r', '\n']);
        if content.contains('\r') {
            return Err(ReleaseError::BadCleartext("bare CR in signed text"));
        }
        let content = content.strip_prefix("- ").unwrap_or(content);
        body.push(content.trim_end_matches([' ', '\t']));
    }
    let armor = armor_at
        .map(|at| &text[at..])
        .filter(|a| a.starts_with("-----BEGIN PGP SIGNATURE-----"))
        .ok_or(ReleaseError::BadCleartext("no signature block"))?;
    Ok((body.join("\r\n"), armor))
}

/// Outcome of checking one signature against one certificate.
enum Verdict {
    Valid,
    /// The signature names a key of this certificate but does not verify with it.
    Invalid,
    NotIssuer,
}

/// Tries the primary key and then each subkey the signature names. A subkey counts only if
/// its binding signature (and, for signing subkeys, the embedded back-signature) verifies.
fn verify_with_cert(sig: &Signature, cert: &SignedPublicKey, data: &[u8]) -> Verdict {
    use HashAlgorithm::{Md5, Ripemd160, Sha1};
    let strong = !matches!(
        sig.hash_alg(),
        None | Some(HashAlgorithm::None | Md5 | Sha1 | Ripemd160)
    );
    let mut verdict = Verdict::NotIssuer;
    if issued(sig, &cert.primary_key) {
        if strong && sig.verify(&cert.primary_key, data).is_ok() {
            return Verdict::Valid;
        }
        verdict = Verdict::Invalid;
    }
    for sub in &cert.public_subkeys {
        if !issued(sig, &sub.key) {
            continue;
        }
        verdict = Verdict::Invalid;
        let bound = sub.verify_bindings(&cert.primary_key).is_ok();
        if strong && bound && sig.verify(&sub.key, data).is_ok() {
            return Verdict::Valid;
        }
    }
    verdict
}

/// Whether the signature's issuer subpackets name `key` (a signature naming no issuer is
/// treated as naming every key, as rpgp does).
fn issued(sig: &Signature, key: &impl KeyDetails) -> bool {
    let ids = sig.issuer_key_id();
    let fps = sig.issuer_fingerprint();
    (ids.is_empty() && fps.is_empty())
        || ids.iter().any(|i| **i == key.legacy_key_id())
        || fps.iter().any(|f| **f == key.fingerprint())
}

/// Parses every certificate in a binary or armored keyring.
fn load_keyring(keyring: &[u8]) -> Result<Vec<SignedPublicKey>, ReleaseError> {
    if keyring.is_empty() {
        return Err(ReleaseError::EmptyKeyring);
    }
    let (certs, _) = SignedPublicKey::from_reader_many(keyring).map_err(ReleaseError::Keyring)?;
    let certs = certs
        .collect::<Result<Vec<_>, _>>()
        .map_err(ReleaseError::Keyring)?;
    if certs.is_empty() {
        return Err(ReleaseError::EmptyKeyring);
    }
    Ok(certs)
}

/// Parses the (already verified) text of a Release file.
pub fn parse_release(text: &str) -> Result<Release, ReleaseError> {
    let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
    let mut sha256 = BTreeMap::new();
    let mut current = "";
    for (idx, line) in text.lines().enumerate() {
        let line_no = idx + 1;
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match current {
                "" => return Err(malformed(line_no, "continuation line before any field")),
                "SHA256" => {
                    let (path, hash) = parse_hash_line(line, line_no)?;
                    sha256.insert(path, hash);
                }
                _ => {}
            }
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed(line_no, "field line without ':'"))?;
        current = name;
        fields.insert(name, value.trim());
    }
    let need = |f: &'static str| fields.get(f).copied().ok_or(ReleaseError::MissingField(f));
    let words = |v: &str| v.split_whitespace().map(str::to_owned).collect();
    if !fields.contains_key("SHA256") {
        return Err(ReleaseError::MissingField("SHA256"));
    }
    Ok(Release {
        suite: need("Suite")?.to_owned(),
        codename: need("Codename")?.to_owned(),
        date: need("Date")?.to_owned(),
        acquire_by_hash: fields.get("Acquire-By-Hash") == Some(&"yes"),
        architectures: words(need("Architectures")?),
        components: words(need("Components")?),
        sha256,
    })
}

/// Parses ` <sha256> <size> <path>`.
fn parse_hash_line(line: &str, line_no: usize) -> Result<(String, FileHash), ReleaseError> {
    let mut parts = line.split_whitespace();
    let (Some(hash), Some(size), Some(path), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(line_no, "SHA256 entry is not 'hash size path'"));
    };
    if hash.len() != 64 || !hash.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(malformed(line_no, "SHA256 entry hash is not 64 hex digits"));
    }
    let size = size
        .parse()
        .map_err(|_| malformed(line_no, "SHA256 entry size is not a number"))?;
    let sha256 = hash.to_ascii_lowercase();
    Ok((path.to_owned(), FileHash { size, sha256 }))
}

fn malformed(line: usize, reason: &'static str) -> ReleaseError {
    ReleaseError::Malformed { line, reason }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const INRELEASE: &[u8] = include_bytes!("../../testdata/debian/trixie.InRelease");

    fn keyring(name: &str) -> Option<Vec<u8>> {
        let ring = std::fs::read(format!("/usr/share/keyrings/{name}")).ok();
        if ring.is_none() {
            println!("skipped: no keyring {name}");
        }
        ring
    }

    #[test]
    fn verifies_real_trixie_inrelease() {
        let Some(ring) = keyring("debian-archive-keyring.gpg") else {
            return;
        };
        let t = std::time::Instant::now();
        let text = verify_inrelease(INRELEASE, &ring).unwrap();
        println!("verified trixie InRelease in {:?}", t.elapsed());
        assert!(text.starts_with("Origin: Debian\n"));
        assert!(!text.contains('\r'));
        let rel = parse_release(&text).unwrap();
        assert_eq!(
            (rel.suite.as_str(), rel.codename.as_str()),
            ("stable", "trixie")
        );
        assert!(rel.acquire_by_hash && !rel.date.is_empty());
        assert!(rel.architectures.iter().any(|a| a == "amd64"));
        assert!(rel.components.iter().any(|c| c == "main"));
        let packages = &rel.sha256["main/binary-amd64/Packages.xz"];
        assert_eq!(packages.sha256.len(), 64);
        assert!(packages
            .sha256
            .bytes()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
        assert!(packages.size > 1_000_000);
    }

    #[test]
    fn verify_failures() {
        let (Some(ring), Some(other)) = (
            keyring("debian-archive-keyring.gpg"),
            keyring("debian-archive-bullseye-stable.gpg"),
        ) else {
            return;
        };
        let text = std::str::from_utf8(INRELEASE).unwrap();
        let tampered = text.replacen("Codename: trixie", "Codename: trixiE", 1);
        let sig_at = text.find("-----BEGIN PGP SIGNATURE-----").unwrap();
        let garbage_sig = format!(
            "{}-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n",
            &text[..sig_at]
        );
        let cases: Vec<(&[u8], &[u8], &str)> = vec![
            (tampered.as_bytes(), &ring, "BadSignature"),
            (INRELEASE, &other, "NoKnownKey"),
            (b"Origin: Debian\n", &ring, "NotClearsigned"),
            (b"\xff\xfe", &ring, "NotClearsigned"),
            (
                b"-----BEGIN PGP SIGNED MESSAGE-----\n\nx\n",
                &ring,
                "BadCleartext(\"no signature block\")",
            ),
            (
                b"-----BEGIN PGP SIGNED MESSAGE-----\nFoo: x\n\n",
                &ring,
                "BadCleartext(\"armor header other than Hash\")",
            ),
            (
                b"-----BEGIN PGP SIGNED MESSAGE-----\n\na\rb\n",
                &ring,
                "BadCleartext(\"bare CR in signed text\")",
            ),
            (garbage_sig.as_bytes(), &ring, "Armor("),
            (INRELEASE, b"\x99\x01garbage", "Keyring"),
            (INRELEASE, b"", "EmptyKeyring"),
        ];
        for (msg, ring, want) in cases {
            let err = verify_inrelease(msg, ring).unwrap_err();
            let got = format!("{err:?}");
            assert!(got.starts_with(want), "want {want}, got {got}");
        }
    }

    #[test]
    fn parse_release_errors() {
        let hash = "0".repeat(64);
        let full = format!(
            "Suite: stable\nCodename: trixie\nDate: d\nArchitectures: amd64\n\
             Components: main\nSHA256:\n {hash} 12 main/x\n"
        );
        let drop = |f: &str| {
            full.lines()
                .filter(|l| !l.starts_with(f))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        };
        let cases = [
            (drop("Suite"), "MissingField(\"Suite\")"),
            (drop("Codename"), "MissingField(\"Codename\")"),
            (drop("Date"), "MissingField(\"Date\")"),
            (drop("Architectures"), "MissingField(\"Architectures\")"),
            (drop("Components"), "MissingField(\"Components\")"),
            (drop("SHA256"), "MissingField(\"SHA256\")"),
            (
                format!("{full}junk\n"),
                "Malformed { line: 8, reason: \"field line without ':'\" }",
            ),
            (
                format!(" x\n{full}"),
                "Malformed { line: 1, reason: \"continuation line before any field\" }",
            ),
            (
                format!("{full} {hash} 12\n"),
                "Malformed { line: 8, reason: \"SHA256 entry is not 'hash size path'\" }",
            ),
            (
                format!("{full} abc 12 p\n"),
                "Malformed { line: 8, reason: \"SHA256 entry hash is not 64 hex digits\" }",
            ),
            (
                format!("{full} {hash} -1 p\n"),
                "Malformed { line: 8, reason: \"SHA256 entry size is not a number\" }",
            ),
        ];
        for (text, want) in cases {
            let got = format!("{:?}", parse_release(&text).unwrap_err());
            assert_eq!(got, want, "input:\n{text}");
        }
        let rel = parse_release(&full).unwrap();
        assert_eq!(
            rel.sha256["main/x"],
            FileHash {
                size: 12,
                sha256: hash
            }
        );
        assert!(!rel.acquire_by_hash);
    }
}
