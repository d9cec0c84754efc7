//! How the grant login answers, in the output the client asked for: the
//! cert alone on stdout (text), or one JSON object on stdout (JSON); in
//! both, the same stderr lines and the same exit statuses.

use super::refusal::Refusal;
use crate::grants::request::json::{rfc3339_unix, JsonAnswer};
use crate::grants::request::Output;
use crate::grants::GrantScope;
use crate::proxy::ClientChannel;

/// Exit status while a request still awaits approval.
pub(super) const PENDING_EXIT_STATUS: u32 = 2;

/// A cert as it is handed out, with what the requester may want to know.
pub(super) struct Delivered<'a> {
    pub request: i64,
    pub serial: u64,
    pub fingerprint: String,
    pub role: &'a str,
    pub scope: &'a GrantScope,
    pub valid_before: u64,
    pub cert: &'a str,
}

pub(super) async fn cert(client: &ClientChannel, output: Output, cert: Delivered<'_>) {
    let stdout = match output {
        Output::Text => format!("{}\n", cert.cert).into_bytes(),
        Output::Json => JsonAnswer::Issued {
            request: cert.request,
            serial: cert.serial,
            fingerprint: cert.fingerprint,
            role: cert.role.to_owned(),
            targets: cert.scope.targets.clone(),
            exec: cert.scope.exec.clone(),
            open: cert.scope.open.clone(),
            valid_before: rfc3339_unix(cert.valid_before),
            cert: cert.cert.to_owned(),
        }
        .to_line(),
    };
    client.print(stdout).await;
    client.exit(0).await;
}

/// `line` on stderr (and the pending object on stdout), exit status 2.
pub(super) async fn pending(
    client: &ClientChannel,
    output: Output,
    request: i64,
    role: &str,
    line: &str,
) {
    if output == Output::Json {
        let answer = JsonAnswer::Pending {
            request,
            role: role.to_owned(),
        };
        client.print(answer.to_line()).await;
    }
    client.finish_with_line(line, PENDING_EXIT_STATUS).await;
}

/// The refusal line on stderr (and its object on stdout), exit status 126.
/// `reason` is the refusal as one line, as it is recorded.
pub(super) async fn refused(
    client: &ClientChannel,
    output: Output,
    refusal: &Refusal,
    reason: &str,
) {
    if output == Output::Json {
        let answer = match refusal {
            Refusal::Denied { id, by, reason } => JsonAnswer::Denied {
                request: *id,
                by: by.clone(),
                reason: reason.clone(),
            },
            _ => JsonAnswer::Refused {
                reason: reason.to_owned(),
            },
        };
        client.print(answer.to_line()).await;
    }
    client.refuse(reason).await;
}
