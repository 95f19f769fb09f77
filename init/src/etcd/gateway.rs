//! The JSON of etcd's HTTP/JSON gateway (grpc-gateway over the v3 gRPC API): request
//! bodies and the decoding of answers.
//!
//! The gateway uses the protobuf field names (`ID`, `peerURLs`, `remaining_bytes`),
//! renders 64-bit integers as JSON strings, bytes as base64, and leaves out fields with
//! their zero value (an unstarted member has no name and no client URLs, an empty value
//! has no `value`). Unknown fields are ignored: newer etcd versions add some.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

/// One etcd member as `member list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Member {
    #[serde(rename = "ID", default, deserialize_with = "uint64")]
    pub id: u64,
    /// Empty until the member has started.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    /// Empty until the member has started.
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

/// A uint64 as the gateway writes it (a decimal string), or as a plain number.
fn uint64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Number(u64),
        Text(String),
    }
    match Wire::deserialize(d)? {
        Wire::Number(n) => Ok(n),
        Wire::Text(s) => s
            .parse()
            .map_err(|_| D::Error::custom(format!("invalid uint64 {s:?}"))),
    }
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain structs of strings cannot fail to serialize.
    serde_json::to_vec(value).unwrap_or_default()
}

/// `{}`: member list, snapshot.
pub(super) const EMPTY: &[u8] = b"{}";

pub(super) fn member_add_body(peer_urls: &[String]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(rename = "peerURLs")]
        peer_urls: &'a [String],
    }
    json(&Body { peer_urls })
}

pub(super) fn member_remove_body(id: u64) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body {
        #[serde(rename = "ID")]
        id: String,
    }
    json(&Body { id: id.to_string() })
}

pub(super) fn put_body(key: &[u8], value: &[u8]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body {
        key: String,
        value: String,
    }
    json(&Body {
        key: STANDARD.encode(key),
        value: STANDARD.encode(value),
    })
}

pub(super) fn range_body(key: &[u8]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body {
        key: String,
    }
    json(&Body {
        key: STANDARD.encode(key),
    })
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// `member list` and `member remove` answers: all members.
pub(super) fn parse_members(body: &[u8]) -> Result<Vec<Member>, String> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        members: Vec<Member>,
    }
    parse::<Answer>(body).map(|a| a.members)
}

/// `member add`: the new member and all members.
pub(super) fn parse_member_add(body: &[u8]) -> Result<(Member, Vec<Member>), String> {
    #[derive(Deserialize)]
    struct Answer {
        member: Option<Member>,
        #[serde(default)]
        members: Vec<Member>,
    }
    let answer = parse::<Answer>(body)?;
    let member = answer
        .member
        .ok_or_else(|| "member add answer without the new member".to_string())?;
    Ok((member, answer.members))
}

/// `kv/range` for one key: its value, `None` when the key does not exist.
pub(super) fn parse_range(body: &[u8]) -> Result<Option<Vec<u8>>, String> {
    #[derive(Deserialize)]
    struct Kv {
        #[serde(default)]
        value: String,
    }
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        kvs: Vec<Kv>,
    }
    let answer = parse::<Answer>(body)?;
    let Some(kv) = answer.kvs.first() else {
        return Ok(None);
    };
    STANDARD
        .decode(&kv.value)
        .map(Some)
        .map_err(|e| format!("value is not base64: {e}"))
}

/// Any answer that must be a JSON object (put: only a header).
pub(super) fn parse_object(body: &[u8]) -> Result<(), String> {
    parse::<serde_json::Map<String, serde_json::Value>>(body).map(drop)
}

/// `/health`: `Ok` when etcd says `"health":"true"`, else its reason.
pub(super) fn parse_health(body: &[u8]) -> Result<Result<(), String>, String> {
    #[derive(Deserialize)]
    struct Answer {
        health: String,
        #[serde(default)]
        reason: String,
    }
    let answer = parse::<Answer>(body)?;
    Ok(match (answer.health.as_str(), answer.reason.as_str()) {
        ("true", _) => Ok(()),
        (_, "") => Err("etcd reports itself unhealthy".to_string()),
        (_, reason) => Err(format!("etcd reports itself unhealthy: {reason}")),
    })
}

/// One message of the snapshot stream: `{"result":{...}}` or `{"error":{...}}`.
#[derive(Debug, Deserialize)]
pub(super) struct StreamMessage {
    pub result: Option<SnapshotChunk>,
    pub error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub(super) struct SnapshotChunk {
    /// base64.
    #[serde(default)]
    pub blob: String,
    #[serde(default, deserialize_with = "uint64")]
    pub remaining_bytes: u64,
}

/// The message of an error answer, whichever grpc-gateway shape it has:
/// `{"error":"…","code":N,"message":"…"}` (etcd 3.5), `{"code":N,"message":"…"}`
/// (3.6), or `{"error":{"message":"…",…}}` inside a stream. Not JSON: the text itself.
pub(super) fn error_message(body: &[u8]) -> String {
    let text = || {
        let t = String::from_utf8_lossy(body);
        let t = t.trim();
        match t.char_indices().nth(200) {
            Some((i, _)) => format!("{}…", &t[..i]),
            None if t.is_empty() => "(empty answer)".to_string(),
            None => t.to_string(),
        }
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return text();
    };
    error_value_message(&value).unwrap_or_else(text)
}

/// The message inside an error JSON value, if it has one.
pub(super) fn error_value_message(value: &serde_json::Value) -> Option<String> {
    let as_text = |v: &serde_json::Value| v.as_str().filter(|s| !s.is_empty()).map(String::from);
    as_text(&value["message"])
        .or_else(|| as_text(&value["error"]))
        .or_else(|| as_text(&value["error"]["message"]))
}
