//! Every event kind survives JSON and the store unchanged.

use super::{new_session, reader, temp_store};
use crate::audit::{Entry, Event, SessionFilter, Stream};

pub(crate) fn every_kind() -> Vec<Event> {
    vec![
        Event::AuthAccepted {
            key_id: "agent-7".into(),
            serial: u64::MAX,
            ca_fingerprint: "SHA256:x".into(),
            cert_fingerprint: Some("SHA256:c".into()),
            role: Some("ops".into()),
            principals: vec!["web1".into(), "db1".into()],
            login: "web1".into(),
            valid_after: Some(1),
            valid_before: Some(u64::MAX),
            critical_options: Some([("exec@portcullis".into(), "echo *".into())].into()),
            extensions: Some([("permit-pty".into(), String::new())].into()),
        },
        Event::AuthRefused {
            login: "web1".into(),
            key_id: None,
            serial: Some(3),
            ca_fingerprint: None,
            cert_fingerprint: None,
            client_addr: "127.0.0.1:1".into(),
            reason: "certificate expired".into(),
        },
        Event::ExecAllowed {
            command: "uptime".into(),
            forced_command: Some("uptime".into()),
            instead_of: None,
            approved_request: None,
            approved_by: None,
        },
        Event::ExecAllowed {
            command: String::new(),
            forced_command: Some("uptime".into()),
            instead_of: Some("subsystem sftp".into()),
            approved_request: None,
            approved_by: None,
        },
        Event::CommandHeld {
            request_id: 42,
            command: "systemctl restart nginx".into(),
            identity: "agent-7".into(),
            target: "web1".into(),
            role: Some("ops".into()),
            task: Some("T-1".into()),
            expires_at_us: 1_795_851_600_000_000,
        },
        Event::CommandApproved {
            request_id: 42,
            held_session: 1,
            by: "alice".into(),
            reason: None,
        },
        Event::CommandDenied {
            request_id: 43,
            held_session: 1,
            by: "bob".into(),
            reason: Some("not now".into()),
        },
        Event::CommandExpired {
            request_id: 44,
            held_session: 2,
        },
        Event::GrantExpired { request_id: 45 },
        Event::ExecRefused {
            command: "rm -rf /".into(),
            reason: "not allowed".into(),
        },
        Event::RequestRefused {
            request: "pty-req".into(),
            reason: "no pty".into(),
        },
        Event::UpstreamFailed {
            reason: "host key changed".into(),
        },
        Event::GrantRequested {
            request_id: 4,
            identity: "agent-7".into(),
            role: "ops".into(),
            task: Some("T-1".into()),
            reason: None,
            targets: vec!["web1".into()],
            exec: vec!["uptime".into()],
            open: vec![],
            ttl_secs: 600,
            client_addr: "127.0.0.1:1".into(),
        },
        Event::GrantIssued {
            serial: u64::MAX,
            cert_fingerprint: Some("SHA256:c".into()),
            request_id: None,
            identity: "agent-7".into(),
            role: "ops".into(),
            task: None,
            valid_before: 1,
            approver: "auto".into(),
        },
        Event::GrantRefused {
            identity: "agent-7".into(),
            client_addr: "127.0.0.1:1".into(),
            reason: "too many requests".into(),
        },
        Event::LimitHit {
            limit: "max_channels_per_session".into(),
            client_addr: "127.0.0.1:1".into(),
            identity: Some("agent-7".into()),
            reason: "too many channels".into(),
        },
        Event::GrantRevoked {
            revocation_id: 1,
            selector: "serial 5".into(),
            by: "root".into(),
            reason: None,
        },
        Event::RevocationApplied {
            revocation_id: 1,
            sessions_ended: vec![3],
        },
        Event::PolicyReloaded {
            sessions_ended: vec![4],
            restart_needed: vec!["listen".into()],
        },
        Event::PolicyReloadRefused {
            error: "roles.toml:3: unknown key".into(),
        },
        Event::GrantDecided {
            request_id: 4,
            approved: false,
            by: "root".into(),
            reason: Some("freeze".into()),
        },
        Event::IdentitySuspended {
            identity: "agent-7".into(),
            by: "root".into(),
            reason: None,
        },
        Event::IdentityReinstated {
            identity: "agent-7".into(),
            by: "root".into(),
        },
        Event::NotifyFailed {
            event_kind: "grant.requested".into(),
            event_seq: 12,
            request_id: 4,
            attempt: 8,
            reason: "HTTP 500".into(),
            retry_in_secs: None,
        },
        Event::ReviewLinkIssued {
            identity: "alice".into(),
            client_addr: "127.0.0.1:1".into(),
        },
        Event::ReviewSignedIn {
            identity: "alice".into(),
        },
        Event::ReviewRefused {
            identity: Some("agent-7".into()),
            reason: "identity may not review".into(),
        },
        Event::ReviewViewed {
            identity: "alice".into(),
            session_viewed: 3,
            replica: None,
            form: Some(crate::audit::ViewForm::Asciicast),
        },
        Event::ReviewViewed {
            identity: "alice".into(),
            session_viewed: 3,
            replica: Some("bastion-2".into()),
            form: Some(crate::audit::ViewForm::Page),
        },
        Event::ExitStatus { status: 126 },
        Event::ExitSignal {
            signal: "KILL".into(),
            core_dumped: true,
        },
        Event::PtyAllowed {
            term: "xterm-256color".into(),
            cols: 80,
            rows: 24,
        },
        Event::PtyResize {
            cols: 120,
            rows: 40,
        },
        Event::EnvAllowed {
            name: "LANG".into(),
            value: "C.UTF-8".into(),
        },
        Event::ShellAllowed { pty: true },
        Event::ShellRefused {
            reason: "no permit-pty".into(),
        },
        Event::Signal {
            signal: "INT".into(),
        },
        Event::CommandObserved {
            line: "ls -l".into(),
        },
        Event::SessionStart(new_session("agent-7", "web1")),
        Event::SessionEnd {
            reason: "grant revoked".into(),
        },
    ]
}

#[test]
fn every_event_kind_round_trips_through_json() {
    for event in every_kind() {
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["kind"], event.kind(), "serde tag equals kind()");
        let back: Event = serde_json::from_value(value).unwrap();
        assert_eq!(back, event);
        let (kind, detail) = event.encode().unwrap();
        assert!(
            !detail.contains("\"kind\""),
            "detail holds only the kind's fields"
        );
        assert_eq!(Event::decode(kind, &detail).unwrap(), event);
    }
}

#[test]
fn auth_refused_fields_are_null_not_missing() {
    let value = serde_json::to_value(&every_kind()[1]).unwrap();
    assert!(value["key_id"].is_null() && value.get("key_id").is_some());
}

#[test]
fn streams_parse_their_names() {
    for s in [Stream::Stdin, Stream::Stdout, Stream::Stderr] {
        assert_eq!(Stream::parse(s.as_str()), Some(s));
        assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
    }
    assert_eq!(Stream::parse("stdio"), None);
}

#[tokio::test]
async fn every_event_kind_round_trips_through_the_store() {
    let (_dir, path, store) = temp_store();
    let sid = store
        .begin_session(new_session("agent-7", "web1"))
        .await
        .unwrap();
    let recordable: Vec<Event> = every_kind()
        .into_iter()
        .filter(|e| !matches!(e, Event::SessionStart(_) | Event::SessionEnd { .. }))
        .collect();
    for e in &recordable {
        store.record(Some(sid), Some(1), e.clone()).await.unwrap();
    }
    store
        .end_session(sid, "grant revoked".into())
        .await
        .unwrap();
    let t = reader(&path).transcript(sid).unwrap().unwrap();
    let got: Vec<Event> = t
        .events
        .iter()
        .map(|r| match &r.entry {
            Entry::Event(e) => e.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let mut expected = vec![Event::SessionStart(new_session("agent-7", "web1"))];
    expected.extend(recordable);
    expected.push(Event::SessionEnd {
        reason: "grant revoked".into(),
    });
    assert_eq!(got, expected);
    assert!(t.events.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[tokio::test]
async fn refused_auths_without_a_session_are_listed() {
    let (_dir, path, store) = temp_store();
    let refused = every_kind()[1].clone();
    store.record(None, None, refused.clone()).await.unwrap();
    let r = reader(&path);
    let list = r.list_refusals(None).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].session, None);
    assert_eq!(list[0].entry, Entry::Event(refused));
    assert!(r.list_refusals(Some(list[0].at_us + 1)).unwrap().is_empty());
    assert!(r
        .list_sessions(&SessionFilter::default())
        .unwrap()
        .is_empty());
}
