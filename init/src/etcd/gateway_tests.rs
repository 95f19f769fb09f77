//! Decoding gateway answers as etcd 3.5/3.6 write them: ids as strings, zero-valued
//! fields left out, unknown fields present.

use super::gateway::*;

const LIST: &str = r#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","raft_term":"2"},"members":[{"ID":"10276657743932975437","name":"cp-1","peerURLs":["https://10.0.0.11:2380"],"clientURLs":["https://10.0.0.11:2379"]},{"ID":"18446744073709551615","peerURLs":["https://10.0.0.13:2380"],"isLearner":true}]}"#;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn member_list_with_string_ids_and_missing_fields() {
    let members = ok(parse_members(LIST.as_bytes()));
    assert_eq!(
        members,
        vec![
            Member {
                id: 10276657743932975437,
                name: "cp-1".into(),
                peer_urls: vec!["https://10.0.0.11:2380".into()],
                client_urls: vec!["https://10.0.0.11:2379".into()],
                is_learner: false,
            },
            Member {
                id: u64::MAX,
                name: String::new(),
                peer_urls: vec!["https://10.0.0.13:2380".into()],
                client_urls: vec![],
                is_learner: true,
            },
        ]
    );
    // A cluster answering with no members field at all, and a numeric id.
    assert_eq!(ok(parse_members(br#"{"header":{}}"#)), vec![]);
    let numeric = ok(parse_members(
        br#"{"members":[{"ID":7,"name":"x","extra":1}]}"#,
    ));
    assert_eq!(numeric[0].id, 7);
}

#[test]
fn bad_member_lists_are_refused() {
    for (body, want) in [
        (r#"{"members":[{"ID":"12x"}]}"#, "invalid uint64 \"12x\""),
        (r#"{"members":[{"ID":"-1"}]}"#, "invalid uint64"),
        (r#"{"members":{}}"#, "invalid type"),
        ("not json", "expected"),
    ] {
        let Err(e) = parse_members(body.as_bytes()) else {
            panic!("accepted {body}")
        };
        assert!(e.contains(want), "{want:?} not in {e:?}");
    }
}

#[test]
fn member_add_answer() {
    let body = r#"{"header":{"cluster_id":"1","member_id":"2","raft_term":"3"},"member":{"ID":"5577006791947779410","peerURLs":["https://10.0.0.13:2380"]},"members":[{"ID":"2","name":"cp-1","peerURLs":["https://10.0.0.11:2380"],"clientURLs":["https://10.0.0.11:2379"]},{"ID":"5577006791947779410","peerURLs":["https://10.0.0.13:2380"]}]}"#;
    let (added, all) = ok(parse_member_add(body.as_bytes()));
    assert_eq!(added.id, 5577006791947779410);
    assert_eq!(added.name, "");
    assert_eq!(all.len(), 2);
    assert_eq!(all[1], added);
    let Err(e) = parse_member_add(br#"{"header":{}}"#) else {
        panic!("accepted an answer without the member")
    };
    assert_eq!(e, "member add answer without the new member");
}

#[test]
fn range_answers() {
    let found = r#"{"header":{"revision":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}"#;
    assert_eq!(ok(parse_range(found.as_bytes())), Some(b"bar".to_vec()));
    let empty_value = r#"{"kvs":[{"key":"Zm9v","version":"1"}],"count":"1"}"#;
    assert_eq!(ok(parse_range(empty_value.as_bytes())), Some(vec![]));
    assert_eq!(ok(parse_range(br#"{"header":{"revision":"2"}}"#)), None);
}

#[test]
fn bad_base64_value_is_refused() {
    let Err(e) = parse_range(br#"{"kvs":[{"value":"!!"}]}"#) else {
        panic!("accepted bad base64")
    };
    assert!(e.starts_with("value is not base64"), "{e}");
}

#[test]
fn request_bodies_are_exact() {
    assert_eq!(
        member_add_body(&["https://10.0.0.13:2380".into()]),
        br#"{"peerURLs":["https://10.0.0.13:2380"]}"#
    );
    assert_eq!(
        member_remove_body(18446744073709551615),
        br#"{"ID":"18446744073709551615"}"#
    );
    assert_eq!(
        put_body(b"foo", b"bar"),
        br#"{"key":"Zm9v","value":"YmFy"}"#
    );
    assert_eq!(range_body(b"foo"), br#"{"key":"Zm9v"}"#);
    assert_eq!(EMPTY, b"{}");
}

#[test]
fn error_messages_of_every_gateway_shape() {
    let cases: [(&str, &str); 6] = [
        (
            r#"{"error":"etcdserver: Peer URLs already exists","code":9,"message":"etcdserver: Peer URLs already exists"}"#,
            "etcdserver: Peer URLs already exists",
        ),
        (
            r#"{"code":5,"message":"etcdserver: member not found","details":[]}"#,
            "etcdserver: member not found",
        ),
        (
            r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#,
            "etcdserver: no leader",
        ),
        (r#"{"error":"only error"}"#, "only error"),
        ("404 page not found\n", "404 page not found"),
        ("", "(empty answer)"),
    ];
    for (body, want) in cases {
        assert_eq!(error_message(body.as_bytes()), want, "{body}");
    }
    let long = "x".repeat(500);
    assert_eq!(error_message(long.as_bytes()).chars().count(), 201);
}

#[test]
fn health_answers() {
    assert_eq!(
        ok(parse_health(br#"{"health":"true","reason":""}"#)),
        Ok(())
    );
    assert_eq!(
        ok(parse_health(
            br#"{"health":"false","reason":"RAFT NO LEADER"}"#
        )),
        Err("etcd reports itself unhealthy: RAFT NO LEADER".to_string())
    );
    assert_eq!(
        ok(parse_health(br#"{"health":"false"}"#)),
        Err("etcd reports itself unhealthy".to_string())
    );
    assert!(parse_health(b"{}").is_err());
}
