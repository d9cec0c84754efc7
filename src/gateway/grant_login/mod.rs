//! The `grant` login: an identity key asks for a task certificate, checks a
//! request's state, or asks who it is. Everything it answers is one clear
//! line on stderr (or the cert on stdout; with `--json`, one JSON object on
//! stdout), and every step is recorded.
//!
//! Invariant: a cert is issued here only through `grants::issue` (the one
//! issuing path), for the authenticated identity, within a role it holds
//! as the policy stands at delivery, for a task key that is no identity's,
//! never to a suspended identity, and only once its grant is on record. A
//! JSON request takes the plain request's path from its arguments on.

mod answer;
mod refusal;
mod reply;
mod stdin;
mod whoami;

use std::sync::Arc;
use std::time::Duration;

use russh::keys::PublicKey;

use super::ServerContext;
use crate::audit::Event;
use crate::book::Throttled;
use crate::grants::issue::Asked;
use crate::grants::request::{self, json, GrantCommand, Output, RequestArgs, MAX_WAIT};
use crate::grants::{self, GrantError, NewRequest};
use crate::policy::{Approval, Identity};
use crate::proxy::ClientChannel;
use answer::{deliver, status, wait_for_decision};
use refusal::Refusal;
pub use stdin::Stdin;

/// The longest refusal line: every part a requester chose is bounded
/// already; this bounds the whole.
const MAX_REASON: usize = 1000;

/// Who is asking, as authenticated by an identity key.
pub struct Requester {
    pub identity: Identity,
    pub client_addr: String,
}

/// Where a request's task key comes from: stdin (a plain request), or the
/// `pubkey` field of a JSON request.
enum TaskKey {
    Stdin(Stdin),
    Given(String),
}

pub async fn serve(
    ctx: &Arc<ServerContext>,
    who: &Requester,
    client: ClientChannel,
    stdin: Stdin,
    command: Vec<u8>,
) {
    let text = String::from_utf8_lossy(&command).into_owned();
    let (output, outcome) = match request::parse(&text) {
        Err(e) => (request::output_of(&text), Err(Refusal::from(e))),
        Ok(GrantCommand::Whoami) => {
            client.print(whoami::whoami(ctx, who).into_bytes()).await;
            client.exit(0).await;
            return;
        }
        Ok(GrantCommand::Status { id, output }) => {
            (output, status(ctx, who, &client, output, id).await)
        }
        Ok(GrantCommand::Request(args)) => {
            let key = TaskKey::Stdin(stdin);
            let outcome = match take_request_token(ctx, who).await {
                Ok(()) => request(ctx, who, &client, Output::Text, &args, key).await,
                Err(refusal) => Err(refusal),
            };
            (Output::Text, outcome)
        }
        Ok(GrantCommand::RequestJson) => {
            let outcome = match take_request_token(ctx, who).await {
                Ok(()) => request_json(ctx, who, &client, stdin).await,
                Err(refusal) => Err(refusal),
            };
            (Output::Json, outcome)
        }
    };
    if let Err(refusal) = outcome {
        refuse(ctx, who, &client, output, &refusal).await;
    }
}

/// The rate limit, before anything of a request is read: a JSON request
/// spends a token as the plain one does.
async fn take_request_token(ctx: &ServerContext, who: &Requester) -> Result<(), Refusal> {
    match ctx.book.requests.take(&who.identity.name).await {
        Ok(()) => Ok(()),
        Err(Throttled::Wait(wait)) => Err(Refusal::RateLimited {
            identity: who.identity.name.clone(),
            wait_secs: wait.as_secs().max(1),
        }),
        Err(Throttled::Unavailable) => Err(Refusal::ClusterUnavailable),
    }
}

async fn refuse(
    ctx: &ServerContext,
    who: &Requester,
    client: &ClientChannel,
    output: Output,
    refusal: &Refusal,
) {
    let reason = request::one_line(&refusal.to_string(), MAX_REASON);
    let event = Event::GrantRefused {
        identity: who.identity.name.clone(),
        client_addr: who.client_addr.clone(),
        reason: reason.clone(),
    };
    if let Err(e) = ctx.store.record(None, None, event).await {
        tracing::error!(error = %e, "could not record a refused grant request");
    }
    reply::refused(client, output, refusal, &reason).await;
}

/// `request --json`: the object on stdin becomes the plain request's
/// arguments and key.
async fn request_json(
    ctx: &Arc<ServerContext>,
    who: &Requester,
    client: &ClientChannel,
    stdin: Stdin,
) -> Result<(), Refusal> {
    let input = stdin::read_all(stdin)
        .await
        .ok_or(Refusal::RequestTooLong {
            max: stdin::MAX_STDIN,
        })?;
    let asked = json::parse_request(&input)?;
    let key = TaskKey::Given(asked.pubkey);
    request(ctx, who, client, Output::Json, &asked.args, key).await
}

async fn request(
    ctx: &Arc<ServerContext>,
    who: &Requester,
    client: &ClientChannel,
    output: Output,
    args: &RequestArgs,
    key: TaskKey,
) -> Result<(), Refusal> {
    if !who.identity.roles.contains(&args.role) {
        return Err(request::RequestError::RoleNotHeld(args.role.clone()).into());
    }
    // Before anything is recorded: a request here could never be issued.
    if ctx.task_ca.is_none() {
        return Err(Refusal::NotSigningHere);
    }
    let policy = ctx.policy();
    let role = policy
        .roles
        .get(&args.role)
        .ok_or_else(|| GrantError::UnknownRole(args.role.clone()))?;
    let scope = request::narrow(role, &args.ttl, &args.narrowing)?;
    let key = match key {
        TaskKey::Stdin(stdin) => stdin::read_task_key(stdin).await?,
        TaskKey::Given(line) => {
            PublicKey::from_openssh(line.trim()).map_err(|_| Refusal::NotAKeyField)?
        }
    };
    let order = grants::order_for(
        &policy,
        Asked {
            identity: &who.identity.name,
            role: &role.name,
            task: args.task.clone(),
            reason: args.reason.clone(),
            scope,
            pubkey: key,
            approver: "auto".to_owned(),
        },
    )?;
    let new = NewRequest {
        identity: order.identity().to_owned(),
        role: order.role().to_owned(),
        task: order.task().map(str::to_owned),
        reason: order.reason().map(str::to_owned),
        scope: order.scope().clone(),
        pubkey: order.pubkey().to_openssh().map_err(|_| Refusal::NotAKey)?,
    };
    let id = ctx
        .book
        .create_request(new, who.client_addr.clone())
        .await?;
    if role.approval == Approval::Auto {
        return deliver(ctx, client, output, id, order.for_request(id, "auto")).await;
    }
    let wait = Duration::from_secs(args.wait).min(MAX_WAIT);
    client
        .say(&format!(
            "portcullis: request {id} awaits approval by an operator (portcullis approve {id}); waiting up to {}s",
            wait.as_secs()
        ))
        .await;
    wait_for_decision(ctx, who, client, output, id, wait).await
}
