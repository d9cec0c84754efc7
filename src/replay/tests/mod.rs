//! The reviewer output: readable text and the fixed `--json` shapes.

mod playback;
mod verify;

use serde_json::{json, Value};

use super::{
    write_refused, write_refused_json, write_sessions, write_sessions_json, write_show,
    write_show_json, write_verify,
};
use crate::audit::{
    Entry, Event, EventRecord, NewSession, SessionFilter, SessionId, SessionRecord, Store, Stream,
    Transcript, VerifyReport,
};

const START: i64 = 1_795_851_600_123_456; // 2026-11-28T07:40:00.123456Z

fn session(ended: bool) -> SessionRecord {
    SessionRecord {
        id: SessionId(12),
        started_at_us: START,
        ended_at_us: ended.then_some(START + 65_000_000),
        end_reason: ended.then(|| "client closed".to_owned()),
        identity: "agent-7".into(),
        key_id: "agent-7".into(),
        task: Some("T".into()),
        cert_serial: 123,
        ca_fingerprint: "SHA256:abc".into(),
        cert_fingerprint: None,
        role: None,
        client_addr: "127.0.0.1:5555".into(),
        target: "web1".into(),
        login: "web1".into(),
    }
}

fn row(seq: i64, offset_us: i64, channel: Option<u32>, entry: Entry) -> EventRecord {
    EventRecord {
        seq,
        session: Some(SessionId(12)),
        channel,
        at_us: START + offset_us,
        entry,
    }
}

fn new_session() -> NewSession {
    NewSession {
        identity: "agent-7".into(),
        key_id: "agent-7".into(),
        task: Some("T".into()),
        cert_serial: 123,
        ca_fingerprint: "SHA256:abc".into(),
        cert_fingerprint: None,
        role: None,
        client_addr: "127.0.0.1:5555".into(),
        target: "web1".into(),
        login: "web1".into(),
    }
}

fn transcript() -> Transcript {
    let start = new_session();
    let exec = Event::ExecAllowed {
        command: "uptime".into(),
        forced_command: None,
        instead_of: None,
        approved_request: None,
        approved_by: None,
    };
    Transcript {
        session: session(true),
        events: vec![
            row(4, 0, None, Entry::Event(Event::SessionStart(start))),
            row(5, 12_345, Some(0), Entry::Event(exec)),
            row(
                6,
                20_000,
                Some(0),
                Entry::Data {
                    stream: Stream::Stdout,
                    data: b"up 3 days\n\x1b[2Jgone\n".to_vec(),
                },
            ),
            row(
                7,
                21_000,
                Some(0),
                Entry::Data {
                    stream: Stream::Stderr,
                    data: b"warning".to_vec(),
                },
            ),
            row(
                8,
                30_000,
                Some(0),
                Entry::Event(Event::ExitStatus { status: 0 }),
            ),
            row(
                9,
                65_000_000,
                None,
                Entry::Event(Event::SessionEnd {
                    reason: "client closed".into(),
                }),
            ),
        ],
    }
}

fn render(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    f(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn show_prints_the_header_then_one_line_per_event() {
    let text = render(|o| write_show(&transcript(), o));
    assert!(text.starts_with("session 12\n"), "{text}");
    assert!(
        text.contains("  identity:    agent-7 (key id agent-7)\n"),
        "{text}"
    );
    assert!(
        text.contains("  started:     2026-11-28T07:40:00.123456Z\n"),
        "{text}"
    );
    assert!(text.contains("after 1m05s (client closed)"), "{text}");
    assert!(
        text.contains("\n+0.012345s [ch 0] exec.allowed command=\"uptime\"\n"),
        "{text}"
    );
    assert!(
        text.contains("\n+0.020000s [ch 0] stdout| up 3 days\n"),
        "{text}"
    );
    assert!(
        text.contains("\n+0.021000s [ch 0] stderr| warning\n"),
        "{text}"
    );
    assert!(
        text.contains("\n+0.030000s [ch 0] exit.status status=0\n"),
        "{text}"
    );
    assert!(
        text.contains("\n+65.000000s session.end reason=\"client closed\"\n"),
        "{text}"
    );
    assert!(!text.contains("session.start"), "the start is the header");
}

#[test]
fn recorded_control_characters_never_reach_the_terminal() {
    let text = render(|o| write_show(&transcript(), o));
    assert!(!text.contains('\x1b'), "{text}");
    assert!(text.contains("stdout| \\x1b[2Jgone"), "{text}");
    let mut s = session(false);
    s.task = Some("evil\u{202e}txt.exe\x07".into());
    let table = render(|o| write_sessions(&[s], o));
    assert!(table.contains("evil\\u{202e}txt.exe\\x07"), "{table}");
}

#[test]
fn sessions_table_shows_open_and_ended_sessions() {
    let mut open = session(false);
    open.id = SessionId(13);
    open.task = None;
    let text = render(|o| write_sessions(&[session(true), open], o));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    for col in [
        "ID", "STARTED", "DURATION", "IDENTITY", "TASK", "TARGET", "END",
    ] {
        assert!(lines[0].contains(col), "{text}");
    }
    assert!(
        lines[1].starts_with("12  2026-11-28 07:40:00Z  1m05s"),
        "{text}"
    );
    assert!(lines[1].ends_with("client closed"), "{text}");
    assert!(
        lines[2].contains("open") && lines[2].contains(" - "),
        "{text}"
    );
}

#[test]
fn sessions_json_has_the_fixed_shape() {
    let text = render(|o| write_sessions_json(&[session(true), session(false)], o));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v[0],
        json!({
            "id": 12, "identity": "agent-7", "key_id": "agent-7", "task": "T", "target": "web1",
            "login": "web1", "cert_serial": 123, "ca_fingerprint": "SHA256:abc",
            "cert_fingerprint": null, "role": null, "client_addr": "127.0.0.1:5555", "started_at": "2026-11-28T07:40:00.123456Z",
            "ended_at": "2026-11-28T07:41:05.123456Z", "end_reason": "client closed"
        })
    );
    assert_eq!(v[1]["ended_at"], Value::Null);
    assert_eq!(v[1]["end_reason"], Value::Null);
}

#[test]
fn show_json_has_the_fixed_shape() {
    let v: Value = serde_json::from_str(&render(|o| write_show_json(&transcript(), o))).unwrap();
    assert_eq!(v["session"]["id"], 12);
    let events = v["events"].as_array().unwrap();
    assert_eq!(events.len(), 5, "session.start is the session object");
    assert_eq!(
        events[0],
        json!({"seq": 5, "at": "2026-11-28T07:40:00.135801Z", "offset_us": 12345, "channel": 0,
               "kind": "exec.allowed", "command": "uptime", "forced_command": null})
    );
    assert_eq!(
        events[2],
        json!({"seq": 7, "at": "2026-11-28T07:40:00.144456Z", "offset_us": 21000, "channel": 0,
               "kind": "data", "stream": "stderr", "len": 7, "text": "warning"})
    );
    assert_eq!(events[1]["text"], "up 3 days\n\u{1b}[2Jgone\n");
    assert_eq!(events[4]["kind"], "session.end");
    assert_eq!(events[4]["channel"], Value::Null);
    assert_eq!(events[4]["reason"], "client closed");
}

fn refused_row() -> EventRecord {
    EventRecord {
        seq: 3,
        session: None,
        channel: None,
        at_us: START,
        entry: Entry::Event(Event::AuthRefused {
            login: "web1".into(),
            key_id: None,
            serial: Some(9),
            ca_fingerprint: None,
            cert_fingerprint: None,
            client_addr: "10.0.0.1:4".into(),
            reason: "certificate expired".into(),
        }),
    }
}

#[test]
fn refused_auths_render_as_table_and_json() {
    let text = render(|o| write_refused(&[refused_row()], o));
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .ends_with("certificate expired"),
        "{text}"
    );
    let v: Value =
        serde_json::from_str(&render(|o| write_refused_json(&[refused_row()], o))).unwrap();
    assert_eq!(
        v[0],
        json!({"seq": 3, "session": null, "at": "2026-11-28T07:40:00.123456Z", "offset_us": null,
               "channel": null, "kind": "auth.refused", "login": "web1", "key_id": null, "serial": 9,
               "ca_fingerprint": null, "cert_fingerprint": null, "client_addr": "10.0.0.1:4",
               "reason": "certificate expired"})
    );
}

#[tokio::test]
async fn a_stored_session_renders_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.db");
    let store = Store::open(&path).unwrap();
    let t = transcript();
    let sid = store.begin_session(new_session()).await.unwrap();
    if let Entry::Event(e) = &t.events[1].entry {
        store.record(Some(sid), Some(0), e.clone()).await.unwrap();
    }
    store
        .chunk(
            sid,
            0,
            Stream::Stdout,
            bytes::Bytes::from_static(b"hello\n"),
        )
        .await
        .unwrap();
    store
        .end_session(sid, "client closed".into())
        .await
        .unwrap();
    let reader = crate::audit::Reader::open(&path).unwrap();
    let sessions = reader.list_sessions(&SessionFilter::default()).unwrap();
    assert!(render(|o| write_sessions(&sessions, o)).contains("client closed"));
    let shown = render(|o| write_show(&reader.transcript(sid).unwrap().unwrap(), o));
    assert!(shown.contains("[ch 0] stdout| hello"), "{shown}");
    let v: Value = serde_json::from_str(&render(|o| {
        write_show_json(&reader.transcript(sid).unwrap().unwrap(), o)
    }))
    .unwrap();
    assert_eq!(v["events"].as_array().unwrap().len(), 3);
    let report: VerifyReport = reader.verify(None).unwrap();
    assert!(render(|o| write_verify(&report, o)).starts_with("verify: OK"));
}
