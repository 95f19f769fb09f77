//! `#cloud-config` YAML: the keys Kiln acts on, typed; every other key (at the top, in a
//! user, a write_files entry, `ntp`) is reported as unsupported by its dotted name. The
//! `kiln:` key is Kiln's closed schema: an unknown key under it is an error.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Tagged;

use super::doc::{self, DocError};
use super::draft::Draft;
use super::files::{FileError, FileSpec};
use super::mode::FileMode;
use super::model::{Command, KilnSettings, ManageEtcHosts, Ntp, User};
use super::open::{Extras, OneOrList, StrList, Unsupported};
use super::types::{
    AbsPath, DnsName, Host, Owner, PasswdHash, SshKey, Timezone, UserName, ValueError,
};

const BINARY_TAG: &str = "tag:yaml.org,2002:binary";

#[derive(Debug, thiserror::Error)]
pub enum CloudConfigError {
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error("user {user}: group")]
    Group {
        user: UserName,
        #[source]
        source: ValueError,
    },
}

#[derive(Debug, Deserialize)]
struct CloudConfig {
    hostname: Option<DnsName>,
    fqdn: Option<DnsName>,
    manage_etc_hosts: Option<ManageEtcHosts>,
    #[serde(default, deserialize_with = "one_or_list")]
    users: Vec<UserEntry>,
    #[serde(default, deserialize_with = "one_or_list")]
    ssh_authorized_keys: Vec<SshKey>,
    #[serde(default)]
    write_files: Vec<FileIn>,
    #[serde(default)]
    bootcmd: Vec<Command>,
    #[serde(default)]
    runcmd: Vec<Command>,
    timezone: Option<Timezone>,
    ntp: Option<NtpIn>,
    kiln: Option<KilnSettings>,
    #[serde(flatten)]
    extra: Extras,
}

fn one_or_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    d.deserialize_any(OneOrList::<T>(std::marker::PhantomData))
}

/// A `users:` entry: a bare name (`default` is cloud-init's distro user) or a mapping.
#[derive(Debug)]
enum UserEntry {
    Name(String),
    Full(Box<UserIn>),
}

impl<'de> Deserialize<'de> for UserEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UserEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a user name or a user mapping")
            }
            fn visit_str<E>(self, v: &str) -> Result<UserEntry, E> {
                Ok(UserEntry::Name(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<UserEntry, A::Error> {
                let de = serde::de::value::MapAccessDeserializer::new(map);
                UserIn::deserialize(de).map(|u| UserEntry::Full(Box::new(u)))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
struct UserIn {
    name: UserName,
    groups: Option<StrList>,
    #[serde(default, deserialize_with = "one_or_list")]
    ssh_authorized_keys: Vec<SshKey>,
    passwd: Option<PasswdHash>,
    hashed_passwd: Option<PasswdHash>,
    lock_passwd: Option<bool>,
    shell: Option<AbsPath>,
    #[serde(flatten)]
    extra: Extras,
}

#[derive(Debug, Deserialize)]
struct FileIn {
    path: AbsPath,
    content: Option<Tagged<String>>,
    encoding: Option<String>,
    permissions: Option<FileMode>,
    owner: Option<Owner>,
    #[serde(default)]
    append: bool,
    #[serde(default)]
    defer: bool,
    #[serde(flatten)]
    extra: Extras,
}

#[derive(Debug, Deserialize)]
struct NtpIn {
    enabled: Option<bool>,
    #[serde(default)]
    servers: Vec<Host>,
    #[serde(default)]
    pools: Vec<Host>,
    #[serde(flatten)]
    extra: Extras,
}

/// Parses one cloud-config document into a contribution.
pub fn parse(text: &str) -> Result<Draft, CloudConfigError> {
    let Some(cc) = doc::yaml::<CloudConfig>(text)? else {
        return Ok(Draft::default());
    };
    let mut un = Unsupported::default();
    un.extras("", &cc.extra);
    let mut users = Vec::new();
    for entry in cc.users {
        match entry {
            UserEntry::Name(n) if n == "default" => un.push("users.default"),
            UserEntry::Name(n) => users.push(user(UserIn::named(n)?, &mut un)?),
            UserEntry::Full(u) => users.push(user(*u, &mut un)?),
        }
    }
    let mut write_files = Vec::new();
    for f in cc.write_files {
        un.extras("write_files", &f.extra);
        let (content, binary) = match f.content {
            Some(Tagged(text, tag)) => (text, tag.as_deref() == Some(BINARY_TAG)),
            None => (String::new(), false),
        };
        let spec = FileSpec {
            path: f.path,
            content,
            binary,
            encoding: f.encoding,
            permissions: f.permissions,
            owner: f.owner,
            append: f.append,
            defer: f.defer,
        };
        write_files.push(spec.decode()?);
    }
    let ntp = cc.ntp.map(|n| {
        un.extras("ntp", &n.extra);
        n.enabled.unwrap_or(true).then_some(Ntp {
            servers: n.servers,
            pools: n.pools,
        })
    });
    Ok(Draft {
        hostname: cc.hostname,
        fqdn: cc.fqdn,
        manage_etc_hosts: cc.manage_etc_hosts,
        users,
        ssh_authorized_keys: cc.ssh_authorized_keys,
        write_files,
        bootcmd: cc.bootcmd,
        runcmd: cc.runcmd,
        timezone: cc.timezone,
        ntp,
        kiln: cc.kiln,
        unsupported: un,
        ..Draft::default()
    })
}

impl UserIn {
    fn named(name: String) -> Result<UserIn, CloudConfigError> {
        let name = UserName::try_from(name).map_err(|e| DocError::Schema {
            line: 0,
            column: 0,
            message: e.to_string(),
        })?;
        Ok(UserIn {
            name,
            groups: None,
            ssh_authorized_keys: Vec::new(),
            passwd: None,
            hashed_passwd: None,
            lock_passwd: None,
            shell: None,
            extra: Extras::new(),
        })
    }
}

fn user(u: UserIn, un: &mut Unsupported) -> Result<User, CloudConfigError> {
    un.extras("users", &u.extra);
    let mut groups = Vec::new();
    for g in u.groups.unwrap_or_default().split_commas() {
        let g = UserName::try_from(g).map_err(|source| CloudConfigError::Group {
            user: u.name.clone(),
            source,
        })?;
        groups.push(g);
    }
    Ok(User {
        name: u.name,
        groups,
        ssh_authorized_keys: u.ssh_authorized_keys,
        passwd: u.hashed_passwd.or(u.passwd),
        lock_passwd: u.lock_passwd.unwrap_or(true),
        shell: u.shell,
    })
}
