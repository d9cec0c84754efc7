use std::time::Duration;

use serde_json::{json, Value};

use super::post::failure_of;
use super::*;
use crate::audit::{Entry, SessionId};
use crate::config::NotifySecret;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

#[test]
fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
    let secret = NotifySecret::for_tests(KEY);
    let body = br#"{"kind":"grant.requested","request":4}"#;
    // printf '%s' '1795851600.BODY' | openssl dgst -sha256 -hmac KEY
    assert_eq!(
        signature(&secret, 1_795_851_600, body).as_deref(),
        Some("sha256=3508ee82225c868f9e6cee0204a9eb2a149da3788c2c632c30b707a9ea876914")
    );
    // Another time or another body is another signature.
    assert_ne!(
        signature(&secret, 1_795_851_601, body),
        signature(&secret, 1_795_851_600, body)
    );
    assert_ne!(
        signature(&secret, 1_795_851_600, b"{}"),
        signature(&secret, 1_795_851_600, body)
    );
}

fn record(seq: i64, session: Option<i64>, entry: Entry) -> EventRecord {
    EventRecord {
        seq,
        session: session.map(SessionId),
        channel: None,
        // 2026-11-28T07:40:00.000250Z
        at_us: 1_795_851_600_000_250,
        entry,
    }
}

fn grant_requested() -> EventRecord {
    record(
        17,
        None,
        Entry::Event(Event::GrantRequested {
            request_id: 4,
            identity: "agent-7".into(),
            role: "deploy".into(),
            task: Some("T-1".into()),
            reason: Some("restart nginx".into()),
            targets: vec!["web1".into()],
            exec: vec!["sudo systemctl restart nginx".into()],
            open: vec![],
            ttl_secs: 600,
            client_addr: "127.0.0.1:4242".into(),
        }),
    )
}

fn body_of(record: &EventRecord) -> (Notice, Value) {
    let notice = match notice_of(record) {
        Some(Ok(notice)) => notice,
        other => panic!("no notice: {other:?}"),
    };
    let body = serde_json::from_slice(&notice.body).unwrap_or_else(|e| panic!("{e}"));
    (notice, body)
}

#[test]
fn a_grant_request_notice_has_the_documented_shape() {
    let (notice, body) = body_of(&grant_requested());
    assert_eq!(
        (
            notice.kind,
            notice.seq,
            notice.request_id,
            notice.role.as_deref()
        ),
        (NoticeKind::GrantRequested, 17, 4, Some("deploy"))
    );
    assert_eq!(
        body,
        json!({
            "kind": "grant.requested",
            "seq": 17,
            "at": "2026-11-28T07:40:00.000250Z",
            "request": 4,
            "identity": "agent-7",
            "role": "deploy",
            "task": "T-1",
            "reason": "restart nginx",
            "approve": "portcullis approve 4",
            "deny": "portcullis deny 4",
            "event": {
                "seq": 17,
                "session": null,
                "at": "2026-11-28T07:40:00.000250Z",
                "offset_us": null,
                "channel": null,
                "kind": "grant.requested",
                "request_id": 4,
                "identity": "agent-7",
                "role": "deploy",
                "task": "T-1",
                "reason": "restart nginx",
                "targets": ["web1"],
                "exec": ["sudo systemctl restart nginx"],
                "open": [],
                "ttl_secs": 600,
                "client_addr": "127.0.0.1:4242"
            }
        })
    );
}

#[test]
fn a_held_command_notice_names_the_command_and_how_to_decide_it() {
    let held = record(
        30,
        Some(9),
        Entry::Event(Event::CommandHeld {
            request_id: 12,
            command: "sudo reboot".into(),
            identity: "agent-7".into(),
            target: "web1".into(),
            role: Some("ops".into()),
            task: None,
            expires_at_us: 1_795_855_200_000_000,
        }),
    );
    let (notice, body) = body_of(&held);
    assert_eq!(
        (notice.kind, notice.request_id),
        (NoticeKind::CommandHeld, 12)
    );
    assert_eq!(body["kind"], "command.held");
    assert_eq!(body["request"], 12);
    assert_eq!(body["session"], 9);
    assert_eq!(body["identity"], "agent-7");
    assert_eq!(body["target"], "web1");
    assert_eq!(body["command"], "sudo reboot");
    assert_eq!(body["role"], "ops");
    assert_eq!(body["approve"], "portcullis approve 12");
    assert_eq!(body["deny"], "portcullis deny 12");
    assert_eq!(body["event"]["kind"], "command.held");
    assert_eq!(body["event"]["seq"], 30);
}

#[test]
fn other_kinds_are_not_notices_and_a_held_command_without_a_request_is_skipped() {
    let allowed = record(
        1,
        Some(1),
        Entry::Event(Event::ExecAllowed {
            command: "uptime".into(),
            forced_command: None,
            instead_of: None,
            approved_request: None,
            approved_by: None,
        }),
    );
    assert!(notice_of(&allowed).is_none());
    let data = record(
        2,
        Some(1),
        Entry::Data {
            stream: crate::audit::Stream::Stdout,
            data: b"x".to_vec(),
        },
    );
    assert!(notice_of(&data).is_none());
    for detail in [r#"{"command":"x"}"#, "not json", r#"["request_id"]"#] {
        let held = record(
            3,
            None,
            Entry::Unparsed {
                kind: "command.held".into(),
                detail: detail.into(),
            },
        );
        assert!(matches!(notice_of(&held), Some(Err(_))), "{detail}");
    }
}

#[test]
fn retries_double_from_one_second_to_a_minute_then_stop() {
    let waits: Vec<Option<u64>> = (1..=MAX_ATTEMPTS + 1)
        .map(|attempt| retry_after(attempt).map(|d| d.as_secs()))
        .collect();
    assert_eq!(
        waits,
        [
            Some(1),
            Some(2),
            Some(4),
            Some(8),
            Some(16),
            Some(32),
            Some(60),
            None,
            None
        ]
    );
    assert_eq!(retry_after(u32::MAX), None);
    assert!(retry_after(0).is_some_and(|d| d <= Duration::from_secs(1)));
}

#[test]
fn failure_reasons_are_short_and_name_no_url() {
    assert_eq!(Failure::Status(500).to_string(), "HTTP 500");
    let refused = ureq::Error::Io(std::io::ErrorKind::ConnectionRefused.into());
    assert_eq!(failure_of(&refused).to_string(), "connection refused");
    let bad = ureq::Error::BadUri("https://hooks.example/SECRET-TOKEN".into());
    assert_eq!(failure_of(&bad).to_string(), "request failed");
    assert_eq!(
        failure_of(&ureq::Error::StatusCode(503)),
        Failure::Status(503)
    );
}
