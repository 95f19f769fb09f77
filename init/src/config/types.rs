//! Validated value newtypes shared by every config format: each one is checked once, when
//! it is deserialized (`#[serde(try_from = "String")]`), so parsers report the line and
//! column of a bad value and later code never re-checks.
//!
//! Owns syntax rules only; whether a value makes sense together with others is
//! `validate`'s business.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Why a single value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("invalid hostname {0:?}: labels of 1-63 letters, digits or '-', not starting or ending with '-', 253 characters at most")]
    Hostname(String),
    #[error("invalid user or group name {0:?}")]
    UserName(String),
    #[error("invalid MAC address {0:?}")]
    Mac(String),
    #[error("invalid CIDR {0:?}: expected address/prefix")]
    Cidr(String),
    #[error("invalid path {0:?}: must be absolute, without '..' or NUL")]
    Path(String),
    #[error("invalid file mode {0:?}: expected octal such as \"0644\"")]
    Mode(String),
    #[error("invalid owner {0:?}: expected user or user:group")]
    Owner(String),
    #[error("invalid interface name pattern {0:?}")]
    NameGlob(String),
    #[error("invalid timezone {0:?}")]
    Timezone(String),
    #[error("invalid host {0:?}: expected an IP address or a DNS name")]
    Host(String),
    #[error("invalid {what}: empty or spans several lines")]
    Line { what: &'static str },
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = ValueError;
            fn try_from(s: String) -> Result<Self, ValueError> {
                $check(s).map(Self)
            }
        }
        impl TryFrom<&str> for $name {
            type Error = ValueError;
            fn try_from(s: &str) -> Result<Self, ValueError> {
                Self::try_from(s.to_string())
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn is_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

fn check_dns_name(s: String) -> Result<String, ValueError> {
    let trimmed = s.strip_suffix('.').unwrap_or(&s);
    if trimmed.len() <= 253 && trimmed.split('.').all(is_label) {
        Ok(trimmed.to_ascii_lowercase())
    } else {
        Err(ValueError::Hostname(s))
    }
}

fn check_label(s: String) -> Result<String, ValueError> {
    if is_label(&s) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(ValueError::Hostname(s))
    }
}

/// Like shadow-utils' default rule: lowercase letter or '_' first, then letters, digits,
/// '_', '.', '-', an optional trailing '$'; 32 characters at most.
fn check_user(s: String) -> Result<String, ValueError> {
    let body = s.strip_suffix('$').unwrap_or(&s);
    let mut bytes = body.bytes();
    let first_ok = matches!(bytes.next(), Some(b'a'..=b'z' | b'_'));
    let rest_ok = bytes
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'));
    if first_ok && rest_ok && s.len() <= 32 {
        Ok(s)
    } else {
        Err(ValueError::UserName(s))
    }
}

fn check_path(s: String) -> Result<String, ValueError> {
    let ok =
        s.starts_with('/') && s.len() > 1 && !s.contains('\0') && !s.split('/').any(|c| c == "..");
    if ok {
        Ok(s)
    } else {
        Err(ValueError::Path(s))
    }
}

fn check_owner(s: String) -> Result<String, ValueError> {
    let ok = match s.split_once(':') {
        Some((u, g)) => check_user(u.into()).is_ok() && check_user(g.into()).is_ok(),
        None => check_user(s.clone()).is_ok(),
    };
    if ok {
        Ok(s)
    } else {
        Err(ValueError::Owner(s))
    }
}

/// Interface names are at most 15 bytes (IFNAMSIZ - 1); patterns may use `*` and `?`.
fn check_glob(s: String) -> Result<String, ValueError> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if ok {
        Ok(s)
    } else {
        Err(ValueError::NameGlob(s))
    }
}

fn check_timezone(s: String) -> Result<String, ValueError> {
    let ok = !s.is_empty()
        && !s.starts_with('/')
        && !s.split('/').any(|c| c.is_empty() || c == "." || c == "..")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b));
    if ok {
        Ok(s)
    } else {
        Err(ValueError::Timezone(s))
    }
}

fn check_host(s: String) -> Result<String, ValueError> {
    if s.parse::<IpAddr>().is_ok() || check_dns_name(s.clone()).is_ok() {
        Ok(s)
    } else {
        Err(ValueError::Host(s))
    }
}

fn check_ssh_key(s: String) -> Result<String, ValueError> {
    let t = s.trim();
    if t.is_empty() || t.contains(['\n', '\r', '\0']) {
        Err(ValueError::Line { what: "SSH key" })
    } else {
        Ok(t.to_string())
    }
}

/// A crypt(3) hash goes verbatim into /etc/shadow: no ':' and one line.
fn check_passwd(s: String) -> Result<String, ValueError> {
    if s.is_empty() || s.contains([':', '\n', '\r', '\0']) {
        Err(ValueError::Line {
            what: "password hash",
        })
    } else {
        Ok(s)
    }
}

string_newtype!(
    /// A fully qualified or single-label DNS name (RFC 1123), stored lowercase.
    DnsName,
    check_dns_name
);
string_newtype!(
    /// One RFC 1123 label: what `sethostname` gets.
    Hostname,
    check_label
);
string_newtype!(
    /// A user or group name.
    UserName,
    check_user
);
string_newtype!(
    /// An absolute path without `..` components.
    AbsPath,
    check_path
);
string_newtype!(
    /// `user` or `user:group`.
    Owner,
    check_owner
);
string_newtype!(
    /// An interface name or a pattern with `*` and `?`.
    NameGlob,
    check_glob
);
string_newtype!(
    /// A zoneinfo name such as `Europe/Paris`.
    Timezone,
    check_timezone
);
string_newtype!(
    /// An IP address or a DNS name (NTP servers and pools).
    Host,
    check_host
);
string_newtype!(
    /// One authorized_keys line.
    SshKey,
    check_ssh_key
);
string_newtype!(
    /// A crypt(3) password hash.
    PasswdHash,
    check_passwd
);

impl DnsName {
    /// The first label: the short hostname.
    pub fn first_label(&self) -> Hostname {
        let first = self.0.split('.').next().unwrap_or(&self.0);
        Hostname(first.to_string())
    }
    pub fn is_qualified(&self) -> bool {
        self.0.contains('.')
    }
}

/// Owner used when write_files does not name one, as cloud-init does.
impl Default for Owner {
    fn default() -> Self {
        Owner("root:root".into())
    }
}

/// A MAC address, stored as lowercase `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mac(pub [u8; 6]);

impl TryFrom<String> for Mac {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let mut out = [0u8; 6];
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(ValueError::Mac(s));
        }
        for (slot, part) in out.iter_mut().zip(&parts) {
            if part.len() != 2 {
                return Err(ValueError::Mac(s));
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| ValueError::Mac(s.clone()))?;
        }
        Ok(Mac(out))
    }
}

impl From<Mac> for String {
    fn from(m: Mac) -> String {
        m.to_string()
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// An address with its prefix length, e.g. `10.0.0.5/24` or `2001:db8::1/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, ValueError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(ValueError::Cidr(format!("{addr}/{prefix}")));
        }
        Ok(Cidr { addr, prefix })
    }

    /// Prefix length of a contiguous netmask such as `255.255.255.0`.
    pub fn from_netmask(addr: IpAddr, mask: IpAddr) -> Result<Self, ValueError> {
        let bits: u128 = match mask {
            IpAddr::V4(m) => u128::from(u32::from(m)) << 96,
            IpAddr::V6(m) => u128::from(m),
        };
        let prefix = bits.leading_ones();
        if bits.count_ones() != prefix || addr.is_ipv4() != mask.is_ipv4() {
            return Err(ValueError::Cidr(format!("{addr} netmask {mask}")));
        }
        Cidr::new(addr, u8::try_from(prefix).unwrap_or(u8::MAX))
    }

    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (net, host, width) = match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                (u128::from(u32::from(a)), u128::from(u32::from(b)), 32u32)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
            _ => return false,
        };
        let shift = width - u32::from(self.prefix);
        net.checked_shr(shift).unwrap_or(0) == host.checked_shr(shift).unwrap_or(0)
    }
}

impl TryFrom<String> for Cidr {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| ValueError::Cidr(s.clone()))?;
        let addr: IpAddr = a.parse().map_err(|_| ValueError::Cidr(s.clone()))?;
        let prefix: u8 = p.parse().map_err(|_| ValueError::Cidr(s.clone()))?;
        Cidr::new(addr, prefix).map_err(|_| ValueError::Cidr(s))
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.to_string()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
#[path = "types_tests.rs"]
mod tests;
