//! The client against fake gateways on 127.0.0.1 (rustls, client certificates required):
//! exact request bodies, decoded answers, the snapshot stream in pieces, endpoint order
//! and retry rules, and TLS failures with clear errors.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fake::{
    answer, chunked, fake_db, ok, serve, server_config, snapshot_stream, test_pki, Fake, Handler,
    Request, TestPki,
};
use super::*;
use crate::chain::error_chain;
use crate::pki::CertKey;
use crate::testutil::TempDir;

const TIMEOUT: Duration = Duration::from_secs(5);

const LIST: &str = r#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","raft_term":"2"},"members":[{"ID":"10276657743932975437","name":"cp-1","peerURLs":["https://10.0.0.11:2380"],"clientURLs":["https://10.0.0.11:2379"]}]}"#;

fn client(p: &TestPki, endpoints: Vec<SocketAddr>) -> Client {
    let (ca, c) = (&p.ca, &p.client);
    ok(Client::from_pem(
        ca.cert_pem.as_bytes(),
        c.cert_pem.as_bytes(),
        c.key_pem.as_bytes(),
        endpoints,
        TIMEOUT,
    ))
}

fn gateway(
    p: &TestPki,
    handler: impl Fn(&Request) -> Vec<Vec<u8>> + Send + Sync + 'static,
) -> Fake {
    let handler: Handler = Arc::new(handler);
    serve(server_config(&p.server, &p.ca), handler)
}

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    let listener = ok(TcpListener::bind("127.0.0.1:0"));
    ok(listener.local_addr())
}

#[test]
fn member_calls_send_exact_bodies_and_decode_answers() {
    let p = test_pki();
    let fake = gateway(&p, |r| match r.path.as_str() {
        "/v3/cluster/member/list" => answer("200 OK", LIST),
        "/v3/cluster/member/add" => answer(
            "200 OK",
            r#"{"header":{},"member":{"ID":"5577006791947779410","peerURLs":["https://10.0.0.13:2380"]},"members":[{"ID":"10276657743932975437","name":"cp-1","peerURLs":["https://10.0.0.11:2380"]},{"ID":"5577006791947779410","peerURLs":["https://10.0.0.13:2380"]}]}"#,
        ),
        "/v3/cluster/member/remove" => {
            chunked("200 OK", &[br#"{"header":{},"#, br#""members":[]}"#])
        }
        _ => answer("404 Not Found", "404 page not found\n"),
    });
    let c = client(&p, vec![fake.addr]);
    let members = ok(c.member_list());
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].id, members[0].name.as_str()),
        (10276657743932975437, "cp-1")
    );
    let (added, all) = ok(c.member_add(&["https://10.0.0.13:2380".to_string()]));
    assert_eq!(added.id, 5577006791947779410);
    assert_eq!(all.len(), 2);
    assert_eq!(ok(c.member_remove(5577006791947779410)), vec![]);

    let seen = fake.seen();
    let sent: Vec<(&str, &str, &str)> = seen
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.body.as_str()))
        .collect();
    assert_eq!(
        sent,
        [
            ("POST", "/v3/cluster/member/list", "{}"),
            (
                "POST",
                "/v3/cluster/member/add",
                r#"{"peerURLs":["https://10.0.0.13:2380"]}"#
            ),
            (
                "POST",
                "/v3/cluster/member/remove",
                r#"{"ID":"5577006791947779410"}"#
            ),
        ]
    );
    let headers = &seen[0].headers;
    for want in [
        "Connection: close",
        "Content-Type: application/json",
        "Content-Length: 2",
    ] {
        assert!(
            headers.iter().any(|h| h == want),
            "{want:?} not in {headers:?}"
        );
    }
    assert!(
        headers.contains(&format!("Host: {}", fake.addr)),
        "{headers:?}"
    );
}

#[test]
fn put_and_get_use_base64() {
    let p = test_pki();
    let fake = gateway(&p, |r| match (r.path.as_str(), r.body.as_str()) {
        ("/v3/kv/put", _) => answer("200 OK", r#"{"header":{"revision":"3"}}"#),
        ("/v3/kv/range", r#"{"key":"Zm9v"}"#) => answer(
            "200 OK",
            r#"{"header":{},"kvs":[{"key":"Zm9v","version":"1","value":"YmFy"}],"count":"1"}"#,
        ),
        _ => answer("200 OK", r#"{"header":{"revision":"3"}}"#),
    });
    let c = client(&p, vec![fake.addr]);
    ok(c.put(b"foo", b"bar"));
    assert_eq!(ok(c.get(b"foo")), Some(b"bar".to_vec()));
    assert_eq!(ok(c.get(b"nope")), None);
    let bodies: Vec<String> = fake.seen().into_iter().map(|r| r.body).collect();
    assert_eq!(
        bodies,
        [
            r#"{"key":"Zm9v","value":"YmFy"}"#,
            r#"{"key":"Zm9v"}"#,
            r#"{"key":"bm9wZQ=="}"#
        ]
    );
}

#[test]
fn gateway_errors_name_endpoint_operation_and_message() {
    let p = test_pki();
    let fake = gateway(&p, |_| {
        answer(
            "400 Bad Request",
            r#"{"error":"etcdserver: Peer URLs already exists","code":9,"message":"etcdserver: Peer URLs already exists"}"#,
        )
    });
    let c = client(&p, vec![fake.addr]);
    let Err(e) = c.member_add(&["https://10.0.0.13:2380".to_string()]) else {
        panic!("accepted an error answer")
    };
    assert_eq!(
        error_chain(&e),
        format!(
            "etcd {}: member add: HTTP 400: etcdserver: Peer URLs already exists",
            fake.addr
        )
    );
    let Err(e) = c.put(b"k", b"v").and_then(|()| c.member_list().map(drop)) else {
        panic!("accepted an error answer")
    };
    assert!(error_chain(&e).contains(": put: HTTP 400"), "{e}");
}

#[test]
fn snapshot_streams_chunked_pieces_into_the_exact_file() {
    let p = test_pki();
    let db = fake_db(200_000);
    let stream = snapshot_stream(&db, 32 * 1024);
    // HTTP chunks that cut through messages and base64 alike.
    let fake = gateway(&p, move |r| {
        assert_eq!(
            (r.path.as_str(), r.body.as_str()),
            ("/v3/maintenance/snapshot", "{}")
        );
        let pieces: Vec<&[u8]> = stream.chunks(7_919).collect();
        chunked("200 OK", &pieces)
    });
    let dir = TempDir::new("etcd-client-snap");
    let dest = dir.path().join(snapshot_name(1_735_787_045));
    let info = ok(client(&p, vec![fake.addr]).snapshot(&dest));
    let written = ok(std::fs::read(&dest));
    let mut want = db.clone();
    want.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, &db).as_ref());
    assert!(written == want, "file differs from db + sha256");
    assert_eq!(info.bytes, want.len() as u64);
    let names: Vec<_> = ok(std::fs::read_dir(dir.path()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    assert_eq!(names, ["etcd-20250102T030405Z.db"]);
}

#[test]
fn snapshot_cut_short_fails_and_leaves_nothing() {
    let p = test_pki();
    let stream = snapshot_stream(&fake_db(100_000), 32 * 1024);
    let fake = gateway(&p, move |_| {
        let mut pieces = chunked("200 OK", &[&stream[..stream.len() / 2]]);
        pieces.pop(); // no last chunk: the connection just ends
        pieces
    });
    let dir = TempDir::new("etcd-client-snap-short");
    let dest = dir.path().join("s.db");
    let Err(e) = client(&p, vec![fake.addr]).snapshot(&dest) else {
        panic!("accepted half a snapshot")
    };
    let text = error_chain(&e);
    assert!(
        text.starts_with(&format!("etcd {}: snapshot: ", fake.addr)),
        "{text}"
    );
    assert_eq!(ok(std::fs::read_dir(dir.path())).count(), 0, "{text}");
}

#[test]
fn reads_move_on_to_the_next_endpoint() {
    let p = test_pki();
    let fake = gateway(&p, |_| answer("200 OK", LIST));
    let dead = closed_port();
    let c = client(&p, vec![dead, fake.addr]);
    assert_eq!(ok(c.member_list()).len(), 1);
    // Writes too, when the first endpoint was never reached.
    ok(c.put(b"k", b"v"));
    assert_eq!(fake.seen().len(), 2);

    let Err(e) = client(&p, vec![dead, closed_port()]).member_list() else {
        panic!("no endpoint answers")
    };
    let text = error_chain(&e);
    assert!(
        text.contains(&format!("(tried before: {dead}: connect: ")),
        "{text}"
    );
    assert!(text.contains("Connection refused"), "{text}");
}

#[test]
fn writes_that_may_have_arrived_are_not_repeated() {
    let p = test_pki();
    let first = gateway(&p, |_| {
        answer(
            "503 Service Unavailable",
            r#"{"code":14,"message":"etcdserver: request timed out"}"#,
        )
    });
    let second = gateway(&p, |_| {
        answer("200 OK", r#"{"header":{},"member":{"ID":"1"}}"#)
    });
    let c = client(&p, vec![first.addr, second.addr]);
    let Err(e) = c.member_add(&["https://10.0.0.13:2380".to_string()]) else {
        panic!("member add was repeated elsewhere")
    };
    assert!(
        error_chain(&e).ends_with("HTTP 503: etcdserver: request timed out"),
        "{e}"
    );
    assert!(second.seen().is_empty());
    // A read, though, asks the next one.
    let _ = c.member_list();
    assert_eq!(second.seen().len(), 1);
}

#[test]
fn health_reads_etcds_verdict() {
    let p = test_pki();
    let healthy = gateway(&p, |r| {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/health"));
        answer("200 OK", r#"{"health":"true","reason":""}"#)
    });
    let sick = gateway(&p, |_| {
        answer(
            "503 Service Unavailable",
            r#"{"health":"false","reason":"RAFT NO LEADER"}"#,
        )
    });
    assert!(client(&p, vec![healthy.addr]).health());
    let c = client(&p, vec![sick.addr]);
    assert!(!c.health());
    let Err(e) = c.check_health() else {
        panic!("unhealthy member passed")
    };
    assert_eq!(
        error_chain(&e),
        format!(
            "etcd {}: health: HTTP 503: etcd reports itself unhealthy: RAFT NO LEADER",
            sick.addr
        )
    );
    assert!(client(&p, vec![sick.addr, healthy.addr]).health());
}

fn with_client_pair(client_pair: &CertKey, ca: &CertKey, addr: SocketAddr) -> Client {
    ok(Client::from_pem(
        ca.cert_pem.as_bytes(),
        client_pair.cert_pem.as_bytes(),
        client_pair.key_pem.as_bytes(),
        vec![addr],
        TIMEOUT,
    ))
}

#[test]
fn wrong_ca_or_foreign_client_certificate_fail_clearly() {
    let p = test_pki();
    let fake = gateway(&p, |_| answer("200 OK", LIST));
    let other = test_pki();
    // The client trusts another CA: the server's certificate is refused.
    let c = with_client_pair(&p.client, &other.ca, fake.addr);
    let Err(e) = c.member_list() else {
        panic!("trusted a server of another CA")
    };
    assert_eq!(
        error_chain(&e),
        format!(
            "etcd {}: member list: TLS handshake: invalid peer certificate: BadSignature \
             (the server's certificate is not signed by the etcd CA this client trusts)",
            fake.addr
        )
    );
    // The client presents a certificate of another CA: the server refuses it.
    let c = with_client_pair(&other.client, &p.ca, fake.addr);
    let Err(e) = c.member_list() else {
        panic!("server accepted a foreign client certificate")
    };
    assert_eq!(
        error_chain(&e),
        format!(
            "etcd {}: member list: TLS: received fatal alert: DecryptError (the server refused \
             the connection: is the client certificate signed by its etcd CA?)",
            fake.addr
        )
    );
    assert!(fake.seen().is_empty());
}

#[test]
fn setup_errors_name_the_file() {
    let dir = TempDir::new("etcd-client-setup");
    let Err(e) = Client::new(dir.path(), vec![closed_port()], TIMEOUT) else {
        panic!("built a client without files")
    };
    assert!(error_chain(&e).starts_with(&format!("read {}/etcd/ca.crt: ", dir.path().display())));
    let p = test_pki();
    dir.write("etcd/ca.crt", &p.ca.cert_pem);
    dir.write("etcd/healthcheck-client.crt", &p.client.cert_pem);
    dir.write("etcd/healthcheck-client.key", &p.server.key_pem);
    let Err(e) = Client::new(dir.path(), vec![closed_port()], TIMEOUT) else {
        panic!("accepted a key of another certificate")
    };
    let text = error_chain(&e);
    assert!(
        text.contains("healthcheck-client.key: does not fit the client certificate"),
        "{text}"
    );
    dir.write("etcd/healthcheck-client.key", &p.client.key_pem);
    assert!(Client::new(dir.path(), vec![], TIMEOUT)
        .is_err_and(|e| matches!(e, EtcdError::NoEndpoints)));
    assert!(Client::new(dir.path(), vec![closed_port()], TIMEOUT).is_ok());
}

#[test]
fn a_silent_server_times_out() {
    let p = test_pki();
    let fake = gateway(&p, |_| {
        std::thread::sleep(Duration::from_secs(6));
        answer("200 OK", LIST)
    });
    let c = ok(Client::from_pem(
        p.ca.cert_pem.as_bytes(),
        p.client.cert_pem.as_bytes(),
        p.client.key_pem.as_bytes(),
        vec![fake.addr],
        Duration::from_millis(1500),
    ));
    let start = Instant::now();
    let Err(e) = c.member_list() else {
        panic!("no timeout")
    };
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        error_chain(&e),
        format!("etcd {}: member list: no answer within 1.5s", fake.addr)
    );
}
