//! The registry token dance (distribution's token authentication): a 401 carries
//! `WWW-Authenticate: Bearer realm=…,service=…,scope=…`; the realm hands out an anonymous
//! token for that scope. Only anonymous pulls: credentials are out of scope.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::http::Http;
use super::KubeError;

/// An anonymous pull token from the challenge's realm.
pub fn anonymous_token(
    http: &Http,
    url: &str,
    challenge: &str,
    repo: &str,
) -> Result<String, KubeError> {
    let auth_err = |message: String| KubeError::Auth {
        url: url.to_string(),
        message,
    };
    let (scheme, params) = parse_challenge(challenge);
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(auth_err(format!(
            "the registry wants credentials ({scheme:?}); only anonymous pulls are supported"
        )));
    }
    let realm = params
        .get("realm")
        .filter(|r| r.starts_with("http://") || r.starts_with("https://"))
        .ok_or_else(|| auth_err(format!("bearer challenge without a realm URL: {challenge}")))?;
    let scope = params
        .get("scope")
        .cloned()
        .unwrap_or_else(|| format!("repository:{repo}:pull"));
    let mut query = vec![("scope", scope.as_str())];
    if let Some(s) = params.get("service") {
        query.insert(0, ("service", s.as_str()));
    }
    let q: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    let sep = if realm.contains('?') { '&' } else { '?' };
    let token_url = format!("{realm}{sep}{}", q.join("&"));
    let body = http.get_ok(&token_url, 1 << 20)?;
    #[derive(Deserialize)]
    struct TokenReply {
        token: Option<String>,
        access_token: Option<String>,
    }
    let t: TokenReply = serde_json::from_slice(&body)
        .map_err(|e| auth_err(format!("token reply from {token_url}: {e}")))?;
    t.token
        .or(t.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| auth_err(format!("no token in the reply from {token_url}")))
}

/// `Bearer realm="…",service="…",scope="…"` → ("Bearer", {realm, service, scope}).
pub fn parse_challenge(h: &str) -> (String, BTreeMap<String, String>) {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    (scheme.to_string(), params)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(
            p.get("realm").map(String::as_str),
            Some("https://auth.example/token")
        );
        assert_eq!(
            p.get("scope").map(String::as_str),
            Some("repository:a/b:pull,push")
        );
        assert_eq!(p.get("service").map(String::as_str), Some("reg"));
        let (s, p) = parse_challenge("Basic realm=x");
        assert_eq!(
            (s.as_str(), p.get("realm").map(String::as_str)),
            ("Basic", Some("x"))
        );
        assert_eq!(
            percent_encode("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
    }
}
