//! Plain HTTP GETs for release binaries and registries: one `ureq` agent, bounded bodies,
//! retries for transient failures. Every status comes back to the caller (a registry's 401
//! is a step of its protocol, not a failure).

use std::time::Duration;

use super::KubeError;

/// One response: status, the headers the callers need, and the whole body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Reply {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

pub struct Http {
    agent: ureq::Agent,
    /// Sleep before each retry; its length + 1 is the number of tries.
    retry_delays: Vec<Duration>,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    /// Timeouts as for Debian packages: connect 10 s, any read 60 s, a transfer 30 min.
    /// Bodies are asked for uncompressed: their digests are of the bytes as stored.
    pub fn new() -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .timeout_global(Some(Duration::from_secs(30 * 60)))
            .accept_encoding("identity")
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .build();
        Http {
            agent: config.into(),
            retry_delays: vec![Duration::from_millis(500), Duration::from_secs(1)],
        }
    }

    /// GETs `url` with `headers`; a body over `limit` bytes fails. Network errors, 5xx, 408
    /// and 429 are retried; every other status is returned as it is.
    pub fn get(&self, url: &str, headers: &[(&str, &str)], limit: u64) -> Result<Reply, KubeError> {
        let mut delays = self.retry_delays.iter();
        loop {
            let r = self.get_once(url, headers, limit);
            let again = match &r {
                Ok(reply) => reply.status >= 500 || matches!(reply.status, 408 | 429),
                Err(KubeError::Request { .. }) => true,
                Err(_) => false,
            };
            match (again, delays.next()) {
                (true, Some(d)) => std::thread::sleep(*d),
                _ => return r,
            }
        }
    }

    fn get_once(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        limit: u64,
    ) -> Result<Reply, KubeError> {
        let mut req = self.agent.get(url);
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let request_err = |source| KubeError::Request {
            url: url.to_string(),
            source,
        };
        let mut resp = req.call().map_err(request_err)?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let body = match resp.body_mut().with_config().limit(limit).read_to_vec() {
            Ok(b) => b,
            Err(ureq::Error::BodyExceedsLimit(_)) => {
                return Err(KubeError::TooLarge {
                    url: url.to_string(),
                    limit,
                })
            }
            Err(e) => return Err(request_err(e)),
        };
        Ok(Reply {
            status,
            body,
            headers,
        })
    }

    /// GETs `url` and fails on any status but 2xx.
    pub fn get_ok(&self, url: &str, limit: u64) -> Result<Vec<u8>, KubeError> {
        let r = self.get(url, &[], limit)?;
        if !r.ok() {
            return Err(KubeError::Http {
                url: url.to_string(),
                status: r.status,
            });
        }
        Ok(r.body)
    }
}
