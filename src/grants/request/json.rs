//! `request --json` and `status ID --json`: the request as one JSON object
//! on stdin, every answer as one JSON object on stdout.
//!
//! Invariant: a JSON request becomes exactly the [`RequestArgs`] the same
//! plain request would, plus its task key, and then takes the plain path;
//! anything else in it (an unknown or repeated field, a wrong type, bytes
//! after the object) refuses the whole request.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{one_line, Narrowing, RequestArgs, RequestError, DEFAULT_WAIT_SECS, MAX_ECHO};
use crate::clock;

/// The object on stdin, field by field as the contract names them. The
/// values are typed one by one after, so a wrong one is refused by name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    role: Value,
    ttl: Value,
    pubkey: Value,
    #[serde(default)]
    task: Option<Value>,
    #[serde(default)]
    reason: Option<Value>,
    #[serde(default)]
    targets: Option<Value>,
    #[serde(default)]
    exec: Option<Value>,
    #[serde(default)]
    open: Option<Value>,
    #[serde(default)]
    wait: Option<Value>,
}

/// A request read from JSON: the plain request's arguments, and the task
/// public key (an OpenSSH line, parsed where the plain path parses stdin).
#[derive(Debug)]
pub struct JsonRequest {
    pub args: RequestArgs,
    pub pubkey: String,
}

/// Reads the one object of a `request --json` (the caller bounds its size).
/// A field given as `null` is a field left out.
pub fn parse_request(bytes: &[u8]) -> Result<JsonRequest, RequestError> {
    let wire: Wire = serde_json::from_slice(bytes).map_err(|e| refused(&e))?;
    Ok(JsonRequest {
        args: RequestArgs {
            role: field("role", wire.role)?,
            ttl: field("ttl", wire.ttl)?,
            task: optional("task", wire.task)?,
            reason: optional("reason", wire.reason)?,
            narrowing: Narrowing {
                targets: optional("targets", wire.targets)?.unwrap_or_default(),
                exec: optional("exec", wire.exec)?.unwrap_or_default(),
                open: optional("open", wire.open)?.unwrap_or_default(),
            },
            wait: optional("wait", wire.wait)?.unwrap_or(DEFAULT_WAIT_SECS),
        },
        pubkey: field("pubkey", wire.pubkey)?,
    })
}

fn field<T: DeserializeOwned>(name: &str, value: Value) -> Result<T, RequestError> {
    serde_json::from_value(value).map_err(|e| refused(&format!("{name}: {e}")))
}

fn optional<T: DeserializeOwned>(
    name: &str,
    value: Option<Value>,
) -> Result<Option<T>, RequestError> {
    value.map(|v| field(name, v)).transpose()
}

fn refused(error: &dyn std::fmt::Display) -> RequestError {
    RequestError::Json(one_line(&error.to_string(), MAX_ECHO))
}

/// What a JSON answer says, by `status`: the same outcomes, and exit
/// statuses, as the plain answers.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum JsonAnswer {
    Issued {
        request: i64,
        serial: u64,
        fingerprint: String,
        role: String,
        targets: Vec<String>,
        exec: Vec<String>,
        open: Vec<String>,
        /// RFC 3339, UTC.
        valid_before: String,
        /// The OpenSSH text of the cert, for `KEY-cert.pub`.
        cert: String,
    },
    Pending {
        request: i64,
        role: String,
    },
    Denied {
        request: i64,
        by: String,
        reason: Option<String>,
    },
    Refused {
        reason: String,
    },
}

impl JsonAnswer {
    /// The object and a newline: the whole of stdout.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|e| {
            // Strings and numbers always encode; should that ever change,
            // say so rather than print half an object.
            tracing::error!(error = %e, "grant login: cannot encode a JSON answer");
            br#"{"status":"refused","reason":"the answer could not be encoded"}"#.to_vec()
        });
        line.push(b'\n');
        line
    }
}

/// A cert's `valid_before` (unix seconds) in RFC 3339.
pub fn rfc3339_unix(secs: u64) -> String {
    let us = i64::try_from(secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000);
    clock::rfc3339_us(us)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE6hIjyDmNJwJIoTLL5c1bc5Iu2cLC3Ms8T0AAoW8rHR task";

    fn refusal(input: &str) -> String {
        match parse_request(input.as_bytes()) {
            Err(e @ RequestError::Json(_)) => e.to_string(),
            other => panic!("{input}: expected a JSON refusal, got {other:?}"),
        }
    }

    #[test]
    fn every_field_reaches_the_plain_arguments_intact() {
        let input = format!(
            r#"{{"role":"ops","ttl":"10m","task":"T-1","reason":"nginx returns 502",
               "targets":["web1"],"exec":["systemctl status *"],"open":["db:5432"],
               "pubkey":"{KEY}","wait":5}}"#
        );
        let Ok(request) = parse_request(input.as_bytes()) else {
            panic!("refused");
        };
        let args = &request.args;
        assert_eq!((args.role.as_str(), args.ttl.as_str()), ("ops", "10m"));
        assert_eq!(args.task.as_deref(), Some("T-1"));
        assert_eq!(args.reason.as_deref(), Some("nginx returns 502"));
        assert_eq!(args.narrowing.targets, ["web1"]);
        assert_eq!(args.narrowing.exec, ["systemctl status *"]);
        assert_eq!(args.narrowing.open, ["db:5432"]);
        assert_eq!(args.wait, 5);
        assert_eq!(request.pubkey, KEY);
    }

    #[test]
    fn left_out_is_what_the_plain_request_leaves_out() {
        let input = format!(r#"{{"role":"ops","ttl":"5m","pubkey":"{KEY}"}}"#);
        let Ok(request) = parse_request(input.as_bytes()) else {
            panic!("refused");
        };
        let args = &request.args;
        assert_eq!((args.task.as_ref(), args.reason.as_ref()), (None, None));
        assert!(args.narrowing.targets.is_empty() && args.narrowing.exec.is_empty());
        assert!(args.narrowing.open.is_empty());
        assert_eq!(args.wait, DEFAULT_WAIT_SECS);
        let input = format!(
            r#"{{"role":"ops","ttl":"5m","pubkey":"{KEY}","task":null,"exec":null,"wait":null}}"#
        );
        let Ok(request) = parse_request(input.as_bytes()) else {
            panic!("null refused");
        };
        assert!(request.args.task.is_none() && request.args.narrowing.exec.is_empty());
        assert_eq!(request.args.wait, DEFAULT_WAIT_SECS);
    }

    #[test]
    fn anything_else_refuses_the_whole_request_in_one_line() {
        let line = refusal(&format!(
            r#"{{"role":"ops","ttl":"5m","pubkey":"{KEY}","sudo":true}}"#
        ));
        assert!(
            line.starts_with("request --json: unknown field `sudo`"),
            "{line}"
        );
        let cases = [
            (
                r#"{"role":"ops","ttl":"5m"}"#.to_owned(),
                "missing field `pubkey`",
            ),
            (
                format!(r#"{{"role":"a","role":"b","ttl":"5m","pubkey":"{KEY}"}}"#),
                "duplicate field `role`",
            ),
            (
                format!(r#"{{"role":"ops","ttl":"5m","pubkey":"{KEY}"}} {{}}"#),
                "trailing characters",
            ),
            (
                format!(r#"{{"role":"ops","ttl":"5m","pubkey":"{KEY}","wait":-1}}"#),
                "wait",
            ),
            (
                format!(r#"{{"role":"ops","ttl":"5m","pubkey":"{KEY}","exec":"echo *"}}"#),
                "sequence",
            ),
            (r#"["role","ops"]"#.to_owned(), "expected struct"),
            ("{\"role\":".to_owned(), "EOF"),
            (String::new(), "EOF"),
            ("\u{1b}[2J".to_owned(), "expected value"),
        ];
        for (input, word) in cases {
            let line = refusal(&input);
            assert!(line.contains(word), "{input}: {line}");
            assert!(!line.contains('\n'), "{input}: {line}");
        }
    }

    #[test]
    fn a_field_name_cannot_break_the_line_or_flood_it() {
        let long = "x".repeat(10_000);
        let line = refusal(&format!(r#"{{"a\nb":1,"{long}":2}}"#));
        assert!(!line.contains('\n') && line.contains(r"a\nb"), "{line}");
        let line = refusal(&format!(r#"{{"{long}":2}}"#));
        assert!(line.len() < 2 * MAX_ECHO, "{} bytes", line.len());
    }

    fn shape(answer: &JsonAnswer) -> serde_json::Value {
        let line = answer.to_line();
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn answers_have_the_contract_s_shapes() {
        let issued = shape(&JsonAnswer::Issued {
            request: 3,
            serial: 42,
            fingerprint: "SHA256:x".into(),
            role: "ops".into(),
            targets: vec!["web1".into()],
            exec: vec!["systemctl status *".into()],
            open: vec![],
            valid_before: rfc3339_unix(1_800_000_000),
            cert: "ssh-ed25519-cert-v01@openssh.com AAAA".into(),
        });
        assert_eq!(
            issued,
            serde_json::json!({"status": "issued", "request": 3, "serial": 42,
                "fingerprint": "SHA256:x", "role": "ops", "targets": ["web1"],
                "exec": ["systemctl status *"], "open": [],
                "valid_before": "2027-01-15T08:00:00.000000Z",
                "cert": "ssh-ed25519-cert-v01@openssh.com AAAA"})
        );
        let pending = shape(&JsonAnswer::Pending {
            request: 4,
            role: "ops".into(),
        });
        assert_eq!(
            pending,
            serde_json::json!({"status": "pending", "request": 4, "role": "ops"})
        );
        let denied = shape(&JsonAnswer::Denied {
            request: 5,
            by: "alice".into(),
            reason: None,
        });
        assert_eq!(
            denied,
            serde_json::json!({"status": "denied", "request": 5, "by": "alice", "reason": null})
        );
        let refused = shape(&JsonAnswer::Refused {
            reason: "role \"x\" is not one this identity holds".into(),
        });
        assert_eq!(
            refused,
            serde_json::json!({"status": "refused", "reason": "role \"x\" is not one this identity holds"})
        );
    }
}
