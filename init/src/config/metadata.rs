//! NoCloud `meta-data` (YAML; JSON is valid YAML too): `instance-id`, `local-hostname`
//! (or `hostname`), and `public-keys` (root's keys, see `NodeConfig`). Other keys are
//! reported as `meta-data.<key>`.

use std::fmt;

use serde::{Deserialize, Deserializer};

use super::doc::{self, DocError};
use super::draft::Draft;
use super::open::{Extras, OneOrList, Unsupported};
use super::types::{DnsName, SshKey};

#[derive(Debug, Deserialize)]
struct MetaData {
    #[serde(rename = "instance-id", alias = "instance_id", default)]
    instance_id: Option<Scalar>,
    #[serde(
        rename = "local-hostname",
        alias = "hostname",
        alias = "local_hostname"
    )]
    local_hostname: Option<DnsName>,
    #[serde(
        rename = "public-keys",
        alias = "public_keys",
        default,
        deserialize_with = "keys"
    )]
    public_keys: Vec<SshKey>,
    #[serde(flatten)]
    extra: Extras,
}

/// `instance-id: 1234` is a number to YAML; cloud-init uses its text.
#[derive(Debug)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

fn keys<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SshKey>, D::Error> {
    d.deserialize_any(OneOrList::<SshKey>(std::marker::PhantomData))
}

pub fn parse(text: &str) -> Result<Draft, DocError> {
    let Some(md) = doc::yaml::<MetaData>(text)? else {
        return Ok(Draft::default());
    };
    let mut unsupported = Unsupported::default();
    unsupported.extras("meta-data", &md.extra);
    Ok(Draft {
        instance_id: md.instance_id.map(|s| s.0).filter(|s| !s.trim().is_empty()),
        meta_hostname: md.local_hostname,
        ssh_authorized_keys: md.public_keys,
        unsupported,
        ..Draft::default()
    })
}
