//! MAC addresses as they appear in seed URLs and in macs.toml, reduced to one spelling.
//!
//! iPXE renders `${mac}` as `52:54:00:12:34:56`, `${mac:hexhyp}` as `52-54-00-12-34-56`
//! and `${mac:hexraw}` as `525400123456`; firmware and people add upper case. All of them
//! name the same seed folder.

/// Not a MAC address in any of the accepted spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex pairs such as 52:54:00:12:34:56")]
pub struct MacError(pub String);

/// `aa:bb:cc:dd:ee:ff` in lower case, from six hex pairs separated by `:` or by `-` (one
/// separator throughout) or written without separators.
pub fn normalize_mac(s: &str) -> Result<String, MacError> {
    let bad = || MacError(s.to_string());
    let pairs: Vec<&str> = if s.len() == 12 {
        (0..6).filter_map(|i| s.get(2 * i..2 * i + 2)).collect()
    } else if s.contains(':') {
        s.split(':').collect()
    } else {
        s.split('-').collect()
    };
    let ok = pairs.len() == 6
        && pairs
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok {
        return Err(bad());
    }
    Ok(pairs.join(":").to_ascii_lowercase())
}

/// The dash spelling of a normalised MAC, for folders named `52-54-00-12-34-56`.
pub fn dashed(mac: &str) -> String {
    mac.replace(':', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_mac() {
        let want = "52:54:00:ab:cd:ef";
        for good in [
            "52:54:00:ab:cd:ef",
            "52:54:00:AB:CD:EF",
            "52-54-00-ab-cd-ef",
            "52-54-00-Ab-Cd-eF",
            "525400abcdef",
            "525400ABCDEF",
        ] {
            assert_eq!(normalize_mac(good), Ok(want.to_string()), "{good}");
        }
    }

    #[test]
    fn not_macs() {
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:ef:01",
            "52:54:00-ab:cd:ef",
            "52:54:00:ab:cd:eg",
            "52:54:0:ab:cd:eff",
            "5:54:00:ab:cd:ef0",
            "52.54.00.ab.cd.ef",
            "525400abcdeg",
            "+52400abcdef",
            "52:54:00:ab:cd:ef ",
            "..",
            "52:54:00:ab:cd:é",
        ] {
            assert_eq!(normalize_mac(bad), Err(MacError(bad.to_string())), "{bad}");
        }
    }

    #[test]
    fn dashes() {
        assert_eq!(dashed("52:54:00:ab:cd:ef"), "52-54-00-ab-cd-ef");
    }
}
