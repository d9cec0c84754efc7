use super::message::{format_message, Origin};
use crate::audit::{Entry, Event, EventRecord, SessionId};

fn origin() -> Origin {
    Origin {
        hostname: "bastion-1".into(),
        procid: "4242".into(),
    }
}

fn record(event: Event) -> EventRecord {
    EventRecord {
        seq: 17,
        session: Some(SessionId(3)),
        channel: Some(0),
        // 2026-11-28T07:40:00.000250Z
        at_us: 1_795_851_600_000_250,
        entry: Entry::Event(event),
    }
}

#[test]
fn a_message_has_the_rfc5424_header_and_the_event_json() {
    let event = Event::ExecAllowed {
        command: "uptime".into(),
        forced_command: None,
        instead_of: None,
        approved_request: None,
        approved_by: None,
    };
    let message = format_message(&record(event), 4, &origin());
    let text = String::from_utf8_lossy(&message);
    let (header, json) = text
        .split_once('\u{feff}')
        .unwrap_or_else(|| panic!("the message has a BOM: {text}"));
    // auth (4) * 8 + informational (6)
    assert_eq!(
        header,
        "<38>1 2026-11-28T07:40:00.000250Z bastion-1 portcullis 4242 exec.allowed - "
    );
    let value: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(value["seq"], 17);
    assert_eq!(value["session"], 3);
    assert_eq!(value["kind"], "exec.allowed");
    assert_eq!(value["command"], "uptime");
    assert!(!text.contains('\n'));
}

#[test]
fn refusals_are_warnings() {
    let event = Event::ExecRefused {
        command: "rm -rf /\nsecond line".into(),
        reason: "not in scope".into(),
    };
    let message = format_message(&record(event), 10, &origin());
    let text = String::from_utf8_lossy(&message);
    // authpriv (10) * 8 + warning (4)
    assert!(text.starts_with("<84>1 "), "{text}");
    assert!(!text.contains('\n'), "one line per event: {text}");
}
