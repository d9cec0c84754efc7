//! One event as an RFC 5424 message:
//! `<PRI>1 TIMESTAMP HOSTNAME portcullis PROCID KIND - BOM JSON`, where
//! JSON is the event's `events --json` line (with its `seq`).

use crate::audit::EventRecord;
use crate::clock::rfc3339_us;
use crate::replay::json::event_line_json;

const APP_NAME: &str = "portcullis";
/// RFC 5424 6.4: a UTF-8 message starts with the byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";
const SEVERITY_WARNING: u8 = 4;
const SEVERITY_INFORMATIONAL: u8 = 6;

/// The HOSTNAME and PROCID fields of every message this process sends.
pub struct Origin {
    pub hostname: String,
    pub procid: String,
}

impl Origin {
    pub fn this_process() -> Origin {
        let uname = rustix::system::uname();
        Origin {
            hostname: header_field(&uname.nodename().to_string_lossy(), 255),
            procid: std::process::id().to_string(),
        }
    }
}

/// The message for `event`, at `facility`.
pub fn format_message(event: &EventRecord, facility: u8, origin: &Origin) -> Vec<u8> {
    let kind = event.entry.kind();
    let pri = u16::from(facility) * 8 + u16::from(severity(kind));
    let mut message = format!(
        "<{pri}>1 {} {} {APP_NAME} {} {} - ",
        rfc3339_us(event.at_us),
        origin.hostname,
        origin.procid,
        header_field(kind, 32),
    )
    .into_bytes();
    message.extend_from_slice(BOM);
    // Writing to a Vec fails only if serialization does; the header alone
    // still says what happened.
    let _ = event_line_json(event, &mut message);
    if message.last() == Some(&b'\n') {
        message.pop();
    }
    message
}

/// Refusals, failures and revocations are warnings; the rest is routine.
fn severity(kind: &str) -> u8 {
    let alarming = ["refused", "failed", "revoked", "suspended", "limit.hit"];
    match alarming.iter().any(|word| kind.contains(word)) {
        true => SEVERITY_WARNING,
        false => SEVERITY_INFORMATIONAL,
    }
}

/// A header field: printable US-ASCII without spaces, at most `max`
/// characters; `-` (the nil value) when nothing is left.
fn header_field(text: &str, max: usize) -> String {
    let field: String = text
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    match field.is_empty() {
        true => "-".into(),
        false => field,
    }
}
