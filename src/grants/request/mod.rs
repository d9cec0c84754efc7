//! The command language of the `grant` login (its words in [`words`], a
//! request as JSON in [`json`]), and the narrowing rule.
//!
//! Invariant: [`narrow`] returns a scope only when every part of it lies
//! within the role: a subset of its targets, commands its patterns already
//! allow, forwards it already lists, a lifetime within its max_ttl.

pub mod json;
mod words;

use std::time::Duration;

use super::GrantScope;
use crate::policy::{self, CommandLine, CommandPattern, Role};

pub use words::{output_of, parse};

/// Longest wait for a manual approval a requester may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(600);
/// The wait for a manual approval when the request names none.
pub const DEFAULT_WAIT_SECS: u64 = 60;
/// The longest piece of a requester's text that a refusal echoes.
pub const MAX_ECHO: usize = 200;

/// What the client sent as its command, parsed.
#[derive(Debug)]
pub enum GrantCommand {
    /// Ask for a task certificate; the task public key comes on stdin
    Request(RequestArgs),
    /// `request --json`: the whole request, key included, as JSON on stdin
    RequestJson,
    /// The state of a request; its cert once issued
    Status { id: i64, output: Output },
    /// Who you are, and the roles you may request
    Whoami,
}

/// How the grant login answers: as a person reads it (the cert alone on
/// stdout, everything else one line on stderr), or as one JSON object on
/// stdout (stderr lines as before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct RequestArgs {
    #[arg(long)]
    pub role: String,
    #[arg(long)]
    pub ttl: String,
    #[arg(long)]
    pub task: Option<String>,
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub narrowing: Narrowing,
    /// Seconds to wait for a manual approval
    #[arg(long, default_value_t = DEFAULT_WAIT_SECS)]
    pub wait: u64,
}

/// How a grant narrows its role (the requester's and the operator's
/// flags alike); left out, each part is the role's.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct Narrowing {
    /// Narrow to these targets of the role (repeatable)
    #[arg(long = "target")]
    pub targets: Vec<String>,
    /// Narrow to these command patterns (repeatable)
    #[arg(long = "exec")]
    pub exec: Vec<String>,
    /// Narrow to these host:port forwards of the role (repeatable)
    #[arg(long = "open")]
    pub open: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Syntax(String),
    #[error("request --json: {0}")]
    Json(String),
    #[error("role {0:?} is not one this identity holds")]
    RoleNotHeld(String),
    #[error("--ttl: {0}")]
    Ttl(String),
    #[error("--ttl {requested} exceeds max_ttl {max} of role {role}")]
    TtlTooLong {
        requested: String,
        max: String,
        role: String,
    },
    #[error("target {target:?} is not in role {role}")]
    Target { target: String, role: String },
    #[error("command pattern {pattern:?} is not within role {role}")]
    Exec { pattern: String, role: String },
    #[error("--exec {pattern:?}: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("forward {open:?} is not within role {role}")]
    Open { open: String, role: String },
    #[error("{what} {value:?} is not within role {role} as the policy stands now")]
    Outside {
        what: String,
        value: String,
        role: String,
    },
}

/// `text` as one line of at most `max_chars` characters (and `...`):
/// control characters (a newline inside a quoted word or a JSON string)
/// escaped, so a refusal stays one line for the client and the audit row.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut chars = 0;
    for c in text.chars() {
        let piece: String = if c.is_control() {
            c.escape_default().collect()
        } else {
            c.into()
        };
        chars += piece.chars().count();
        if chars > max_chars {
            out.push_str("...");
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// The scope of a grant within `role` for `ttl`: the role's whole scope,
/// with targets, commands and forwards narrowed where `args` names them.
pub fn narrow(role: &Role, ttl: &str, args: &Narrowing) -> Result<GrantScope, RequestError> {
    let requested = ttl;
    let ttl = policy::parse_duration(ttl).map_err(|e| RequestError::Ttl(e.to_string()))?;
    if ttl > role.max_ttl {
        return Err(RequestError::TtlTooLong {
            requested: requested.to_owned(),
            max: policy::format_duration(role.max_ttl),
            role: role.name.clone(),
        });
    }
    let mut scope = GrantScope::of_role(role, ttl.as_secs());
    if !args.targets.is_empty() {
        for target in &args.targets {
            if !role.targets.contains(target) {
                return Err(RequestError::Target {
                    target: target.clone(),
                    role: role.name.clone(),
                });
            }
        }
        scope.targets = args.targets.clone();
    }
    if !args.exec.is_empty() {
        for pattern in &args.exec {
            check_exec_within(role, pattern)?;
        }
        scope.exec = args.exec.clone();
    }
    if !args.open.is_empty() {
        for open in &args.open {
            if !role.open.contains(open) {
                return Err(RequestError::Open {
                    open: open.clone(),
                    role: role.name.clone(),
                });
            }
        }
        scope.open = args.open.clone();
    }
    Ok(scope)
}

/// Whether `scope` lies within `role` as the policy stands now: a stored
/// request is checked again when it is delivered, since the policy may
/// have narrowed since it was made.
pub fn check_within(role: &Role, scope: &GrantScope) -> Result<(), RequestError> {
    let outside = |what: &str, value: &str| RequestError::Outside {
        what: what.to_owned(),
        value: value.to_owned(),
        role: role.name.clone(),
    };
    if std::time::Duration::from_secs(scope.ttl_secs) > role.max_ttl {
        return Err(outside("ttl", &format!("{}s", scope.ttl_secs)));
    }
    if let Some(t) = scope.targets.iter().find(|t| !role.targets.contains(t)) {
        return Err(outside("target", t));
    }
    for pattern in &scope.exec {
        check_exec_within(role, pattern)?;
    }
    if let Some(o) = scope.open.iter().find(|o| !role.open.contains(o)) {
        return Err(outside("forward", o));
    }
    let listen: Vec<String> = role.channels.listen.iter().map(|l| l.to_string()).collect();
    if let Some(l) = scope.listen.iter().find(|l| !listen.contains(l)) {
        return Err(outside("listener", l));
    }
    let sftp = role
        .channels
        .sftp
        .as_ref()
        .map(|paths| paths.to_strings())
        .unwrap_or_default();
    if let Some(p) = scope.sftp.iter().find(|p| !sftp.contains(p)) {
        return Err(outside("sftp path", p));
    }
    if scope.pty && !role.pty {
        return Err(outside("terminal", "pty"));
    }
    if role.channels.capture && !scope.capture {
        return Err(outside("capture", "off"));
    }
    Ok(())
}

/// Sound without pattern algebra: a pattern is within the role when it is
/// one of the role's patterns verbatim, or a literal command (no `*`, no
/// `...`) one of them allows.
fn check_exec_within(role: &Role, pattern: &str) -> Result<(), RequestError> {
    // A pattern no cert can carry would only yield a cert that every login
    // refuses.
    let parsed = CommandPattern::parse(pattern).map_err(|error| RequestError::BadPattern {
        pattern: pattern.to_owned(),
        reason: error.to_string(),
    })?;
    let verbatim = role.exec.iter().any(|p| p.as_str() == pattern);
    let literal_allowed = parsed.is_literal()
        && CommandLine::parse(pattern).is_ok_and(|line| role.exec.matches_any(&line));
    if verbatim || literal_allowed {
        Ok(())
    } else {
        Err(RequestError::Exec {
            pattern: pattern.to_owned(),
            role: role.name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_arguments_survive_the_ssh_command_line() {
        let parsed =
            parse("request --role r --ttl 5m --reason 'fix nginx' --exec 'systemctl status *'");
        let Ok(GrantCommand::Request(args)) = parsed else {
            panic!("not a request: {parsed:?}");
        };
        assert_eq!(args.reason.as_deref(), Some("fix nginx"));
        assert_eq!(args.narrowing.exec, vec!["systemctl status *".to_string()]);
    }

    #[test]
    fn an_empty_exec_pattern_is_refused_even_under_an_unrestricted_role() {
        // Found with fuzz/grant_request: "*" matches the empty command, so
        // `--exec ''` passed as a literal the role allows, and the grant
        // carried a pattern every certificate check then refuses.
        let role = Role {
            name: "ops".to_owned(),
            targets: vec!["web1".to_owned()],
            exec: match policy::PatternSet::parse(["*"]) {
                Ok(exec) => exec,
                Err(error) => panic!("{error}"),
            },
            ask: Default::default(),
            open: Default::default(),
            pty: false,
            max_ttl: Duration::from_secs(600),
            approval: policy::Approval::Manual,
            single_session: false,
            channels: Default::default(),
        };
        let parsed = parse("request --role ops --ttl 5m --exec ''");
        let Ok(GrantCommand::Request(args)) = parsed else {
            panic!("not a request: {parsed:?}");
        };
        match narrow(&role, &args.ttl, &args.narrowing) {
            Err(RequestError::BadPattern { pattern, .. }) => assert_eq!(pattern, ""),
            other => panic!("expected a refused pattern, got {other:?}"),
        }
        let parsed = parse("request --role ops --ttl 5m --exec uptime");
        let Ok(GrantCommand::Request(args)) = parsed else {
            panic!("not a request: {parsed:?}");
        };
        assert!(
            narrow(&role, &args.ttl, &args.narrowing).is_ok_and(|scope| scope.exec == ["uptime"])
        );
    }

    #[test]
    fn unknown_words_are_one_line_errors() {
        let Err(e) = parse("request --role r --ttl 5m --sudo") else {
            panic!("accepted");
        };
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}
