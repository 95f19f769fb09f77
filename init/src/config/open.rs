//! Helpers for cloud-init's open schema: collecting unknown keys (reported, never
//! dropped) and the "one value or a list" shapes cloud-init accepts. Deserialization
//! stays streaming (no untagged enums), so errors keep their line and column.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Keys a struct did not know, collected with `#[serde(flatten)]`.
pub type Extras = BTreeMap<String, IgnoredAny>;

/// Accumulates unsupported names in first-seen order, without duplicates.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unsupported(pub Vec<String>);

impl Unsupported {
    pub fn push(&mut self, name: impl Into<String>) {
        let name = name.into();
        if !self.0.contains(&name) {
            self.0.push(name);
        }
    }

    /// Records every extra key as `prefix.key` (or just `key` with an empty prefix).
    pub fn extras(&mut self, prefix: &str, extras: &Extras) {
        for key in extras.keys() {
            if prefix.is_empty() {
                self.push(key.clone());
            } else {
                self.push(format!("{prefix}.{key}"));
            }
        }
    }

    pub fn extend(&mut self, other: Unsupported) {
        for n in other.0 {
            self.push(n);
        }
    }
}

/// A string or a list of strings (`groups: admin` or `groups: [admin]`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StrList(pub Vec<String>);

impl StrList {
    /// Splits comma-separated entries too, as cloud-init does for `groups`.
    pub fn split_commas(&self) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|s| s.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

impl<'de> Deserialize<'de> for StrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_any(OneOrList::<String>(PhantomData))?;
        Ok(StrList(v))
    }
}

/// A single `T` or a list of them.
pub struct OneOrList<T>(pub PhantomData<T>);

impl<'de, T: DeserializeOwned> Visitor<'de> for OneOrList<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value or a list")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<T>, E> {
        let de = serde::de::value::StrDeserializer::<E>::new(v);
        T::deserialize(de).map(|t| vec![t])
    }

    fn visit_unit<E>(self) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }

    fn visit_none<E>(self) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::new();
        while let Some(t) = seq.next_element()? {
            out.push(t);
        }
        Ok(out)
    }
}

/// A list, or a bare word instead (v1 `config: disabled`).
#[derive(Debug)]
pub enum ListOrWord<T> {
    List(Vec<T>),
    Word(String),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ListOrWord<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = ListOrWord<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list or a word")
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ListOrWord::Word(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(t) = seq.next_element()? {
                    out.push(t);
                }
                Ok(ListOrWord::List(out))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}
