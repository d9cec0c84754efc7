//! The state of a request, answered: waiting for an operator's decision,
//! `status ID`, and the delivery of an approved request's cert.

use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::keys::Certificate;

use super::refusal::Refusal;
use super::reply::{self, Delivered};
use super::{Requester, ServerContext};
use crate::cert::cert_fingerprint;
use crate::clock;
use crate::grants::request::Output;
use crate::grants::{self, GrantError, IssueOrder, RequestRecord, RequestStatus};
use crate::proxy::ClientChannel;

const POLL_EVERY: Duration = Duration::from_millis(250);

/// How to ask again for request `id`, in the output the client uses.
fn ask_again(output: Output, id: i64) -> String {
    match output {
        Output::Text => format!("status {id}"),
        Output::Json => format!("status {id} --json"),
    }
}

pub(super) async fn wait_for_decision(
    ctx: &Arc<ServerContext>,
    who: &Requester,
    client: &ClientChannel,
    output: Output,
    id: i64,
    wait: Duration,
) -> Result<(), Refusal> {
    let deadline = Instant::now() + wait;
    loop {
        let record = load_own_request(ctx, who, id).await?;
        if record.status != RequestStatus::Pending {
            return answer(ctx, who, client, output, &record).await;
        }
        if Instant::now() >= deadline {
            let line = format!(
                "portcullis: pending: request {id} still awaits approval; ask again with: ssh grant@bastion {}",
                ask_again(output, id)
            );
            reply::pending(client, output, id, &record.role, &line).await;
            return Ok(());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

pub(super) async fn status(
    ctx: &Arc<ServerContext>,
    who: &Requester,
    client: &ClientChannel,
    output: Output,
    id: i64,
) -> Result<(), Refusal> {
    let record = load_own_request(ctx, who, id).await?;
    if record.status == RequestStatus::Pending {
        let line = format!("portcullis: pending: request {id} still awaits approval");
        reply::pending(client, output, id, &record.role, &line).await;
        return Ok(());
    }
    answer(ctx, who, client, output, &record).await
}

/// The answer to a decided request: its cert, or why there is none.
async fn answer(
    ctx: &Arc<ServerContext>,
    who: &Requester,
    client: &ClientChannel,
    output: Output,
    record: &RequestRecord,
) -> Result<(), Refusal> {
    let id = record.id;
    match record.status {
        RequestStatus::Pending => Ok(()),
        RequestStatus::Expired => Err(Refusal::RequestExpired(id)),
        RequestStatus::Denied => Err(Refusal::Denied {
            id,
            by: record
                .decided_by
                .clone()
                .unwrap_or_else(|| "an operator".into()),
            reason: record.decision_reason.clone(),
        }),
        RequestStatus::Approved => {
            let approver = record.decided_by.as_deref().unwrap_or("operator");
            let order = grants::order_for_request(&ctx.policy(), record, approver)?;
            deliver(ctx, client, output, id, order).await
        }
        RequestStatus::Issued => {
            let issued = ctx.book.cert_for_request(id).await?;
            match issued {
                Some((cert, valid_before)) if valid_before > clock::now_unix() => {
                    // Still nothing for a suspended identity.
                    if ctx.book.is_suspended(&who.identity.name).await? {
                        return Err(GrantError::Suspended(who.identity.name.clone()).into());
                    }
                    let parsed = Certificate::from_openssh(&cert)
                        .map_err(|_| GrantError::Corrupt("grant certificate"))?;
                    let delivered = Delivered {
                        request: id,
                        serial: parsed.serial(),
                        fingerprint: cert_fingerprint(&parsed),
                        role: &record.role,
                        scope: &record.scope,
                        valid_before,
                        cert: &cert,
                    };
                    reply::cert(client, output, delivered).await;
                    Ok(())
                }
                Some(_) => Err(Refusal::Expired(id)),
                None => Err(Refusal::NoCert(id)),
            }
        }
    }
}

/// Issues the cert of an approved request (the one issuing path) and
/// hands it out.
pub(super) async fn deliver(
    ctx: &Arc<ServerContext>,
    client: &ClientChannel,
    output: Output,
    request: i64,
    order: IssueOrder,
) -> Result<(), Refusal> {
    let ca = ctx.task_ca.clone().ok_or(Refusal::NotSigningHere)?;
    let role = order.role().to_owned();
    let scope = order.scope().clone();
    let issued = ctx.book.issue(ca, order).await?;
    let delivered = Delivered {
        request,
        serial: issued.serial,
        fingerprint: issued.fingerprint,
        role: &role,
        scope: &scope,
        valid_before: issued.valid_before,
        cert: &issued.cert,
    };
    reply::cert(client, output, delivered).await;
    Ok(())
}

async fn load_own_request(
    ctx: &ServerContext,
    who: &Requester,
    id: i64,
) -> Result<RequestRecord, Refusal> {
    let record = ctx.book.request(id).await?;
    // Another identity's request is as unknown as a missing one.
    record
        .filter(|r| r.identity == who.identity.name)
        .ok_or_else(|| Refusal::NotYours {
            id,
            identity: who.identity.name.clone(),
        })
}
