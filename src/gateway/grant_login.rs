//! The `grant` login: an identity key asks for a task certificate, checks a
//! request's state, or asks who it is. Everything it answers is one clear
//! line on stderr (or the cert on stdout), and every step is recorded.
//!
//! Invariant: a cert is issued here only through `grants::issue` (the one
//! issuing path), for the authenticated identity, within a role it holds
//! as the policy stands at delivery, for a task key that is no identity's,
//! never to a suspended identity, and only once its grant is on record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::keys::PublicKey;
use russh::{ChannelMsg, ChannelReadHalf};

use super::ServerContext;
use crate::audit::{Abort, Event};
use crate::clock;
use crate::grants::issue::Asked;
use crate::grants::request::{self, GrantCommand, RequestArgs, MAX_WAIT};
use crate::grants::{self, db, GrantError, IssueOrder, NewRequest, RequestRecord, RequestStatus};
use crate::policy::{Approval, Identity};
use crate::proxy::{ClientChannel, EarlyInput};

/// A task public key is one line; anything longer is not one.
const MAX_STDIN: usize = 16 * 1024;
const POLL_EVERY: Duration = Duration::from_millis(250);
/// Exit status while a request still awaits approval.
const PENDING_EXIT_STATUS: u32 = 2;

/// The request's stdin: the channel, and what came before the request.
pub struct Stdin {
    pub reader: ChannelReadHalf,
    pub early: EarlyInput,
}

/// Who is asking, as authenticated by an identity key.
pub struct Requester {
    pub identity: Identity,
    pub client_addr: String,
}

/// Why a grant command gives no cert; one line for the requester.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(transparent)]
    Grant(#[from] GrantError),
    #[error(transparent)]
    Request(#[from] request::RequestError),
    #[error("too many requests from identity {identity}; try again in {wait_secs}s")]
    RateLimited { identity: String, wait_secs: u64 },
    #[error("stdin is too long for a public key")]
    StdinTooLong,
    #[error("stdin must be the task public key (one OpenSSH public key line)")]
    NotAKey,
    #[error("no request {id} for identity {identity}")]
    NotYours { id: i64, identity: String },
    #[error("request {id} was denied by {by}{reason}")]
    Denied { id: i64, by: String, reason: String },
    #[error("request {0} expired before an operator decided it; request again")]
    RequestExpired(i64),
    #[error("the cert of request {0} has expired; request a new grant")]
    Expired(i64),
    #[error("request {0} has no cert on record")]
    NoCert(i64),
    #[error("the audit store cannot record the request")]
    Unrecorded,
}

impl From<Abort<GrantError>> for Refusal {
    fn from(e: Abort<GrantError>) -> Refusal {
        match e {
            Abort::Refused(e) => Refusal::Grant(e),
            Abort::Failed(e) => {
                tracing::error!(error = %e, "grant login: the store failed");
                Refusal::Unrecorded
            }
        }
    }
}

pub async fn serve(
    ctx: &Arc<ServerContext>,
    who: &Requester,
    client: ClientChannel,
    stdin: Stdin,
    command: Vec<u8>,
) {
    let text = String::from_utf8_lossy(&command).into_owned();
    let outcome = match request::parse(&text) {
        Err(e) => Err(Refusal::from(e)),
        Ok(GrantCommand::Whoami) => {
            client.print(whoami(ctx, who).into_bytes()).await;
            client.exit(0).await;
            return;
        }
        Ok(GrantCommand::Status { id }) => status(ctx, who, &client, id).await,
        Ok(GrantCommand::Request(args)) => match ctx.request_limiter.take(&who.identity.name) {
            Err(wait) => Err(Refusal::RateLimited {
                identity: who.identity.name.clone(),
                wait_secs: wait.as_secs().max(1),
            }),
            Ok(()) => request(ctx, who, &client, stdin, &args).await,
        },
    };
    if let Err(refusal) = outcome {
        refuse(ctx, who, &client, &refusal.to_string()).await;
    }
}

async fn refuse(ctx: &ServerContext, who: &Requester, client: &ClientChannel, reason: &str) {
    let event = Event::GrantRefused {
        identity: who.identity.name.clone(),
        client_addr: who.client_addr.clone(),
        reason: reason.to_string(),
    };
    if let Err(e) = ctx.store.record(None, None, event).await {
        tracing::error!(error = %e, "could not record a refused grant request");
    }
    client.refuse(reason).await;
}

async fn request(
    ctx: &Arc<ServerContext>,
    who: &Requester,
    client: &ClientChannel,
    stdin: Stdin,
    args: &RequestArgs,
) -> Result<(), Refusal> {
    if !who.identity.roles.contains(&args.role) {
        return Err(request::RequestError::RoleNotHeld(args.role.clone()).into());
    }
    let policy = ctx.policy();
    let role = policy
        .roles
        .get(&args.role)
        .ok_or_else(|| GrantError::UnknownRole(args.role.clone()))?;
    let scope = request::narrow(role, &args.ttl, &args.narrowing)?;
    let key = read_task_key(stdin).await?;
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
    let client_addr = who.client_addr.clone();
    let id = ctx
        .store
        .transact(move |txn| db::create_request(txn, &new, &client_addr))
        .await?;
    if role.approval == Approval::Auto {
        return deliver(ctx, client, order.for_request(id, "auto")).await;
    }
    let wait = Duration::from_secs(args.wait).min(MAX_WAIT);
    client
        .say(&format!(
            "portcullis: request {id} awaits approval by an operator (portcullis approve {id}); waiting up to {}s",
            wait.as_secs()
        ))
        .await;
    wait_for_decision(ctx, who, client, id, wait).await
}

async fn wait_for_decision(
    ctx: &Arc<ServerContext>,
    who: &Requester,
    client: &ClientChannel,
    id: i64,
    wait: Duration,
) -> Result<(), Refusal> {
    let deadline = Instant::now() + wait;
    loop {
        let record = load_own_request(ctx, who, id).await?;
        if record.status != RequestStatus::Pending {
            return answer(ctx, who, client, &record).await;
        }
        if Instant::now() >= deadline {
            client
                .finish_with_line(
                    &format!(
                        "portcullis: pending: request {id} still awaits approval; ask again with: ssh grant@bastion status {id}"
                    ),
                    PENDING_EXIT_STATUS,
                )
                .await;
            return Ok(());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

async fn status(
    ctx: &Arc<ServerContext>,
    who: &Requester,
    client: &ClientChannel,
    id: i64,
) -> Result<(), Refusal> {
    let record = load_own_request(ctx, who, id).await?;
    if record.status == RequestStatus::Pending {
        client
            .finish_with_line(
                &format!("portcullis: pending: request {id} still awaits approval"),
                PENDING_EXIT_STATUS,
            )
            .await;
        return Ok(());
    }
    answer(ctx, who, client, &record).await
}

/// The answer to a decided request: its cert, or why there is none.
async fn answer(
    ctx: &Arc<ServerContext>,
    who: &Requester,
    client: &ClientChannel,
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
            reason: record
                .decision_reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default(),
        }),
        RequestStatus::Approved => {
            let approver = record.decided_by.as_deref().unwrap_or("operator");
            let order = grants::order_for_request(&ctx.policy(), record, approver)?;
            deliver(ctx, client, order).await
        }
        RequestStatus::Issued => {
            let issued = ctx
                .grants
                .run(move |conn| db::cert_for_request(conn, id))
                .await?;
            match issued {
                Some((cert, valid_before)) if valid_before > clock::now_unix() => {
                    // Still nothing for a suspended identity.
                    let name = who.identity.name.clone();
                    let suspended = ctx
                        .grants
                        .run(move |conn| Ok(db::is_suspended(conn, &name)?))
                        .await?;
                    if suspended {
                        return Err(GrantError::Suspended(who.identity.name.clone()).into());
                    }
                    client.print(format!("{cert}\n").into_bytes()).await;
                    client.exit(0).await;
                    Ok(())
                }
                Some(_) => Err(Refusal::Expired(id)),
                None => Err(Refusal::NoCert(id)),
            }
        }
    }
}

/// Issues the cert of an approved request (the one issuing path) and
/// prints it.
async fn deliver(
    ctx: &Arc<ServerContext>,
    client: &ClientChannel,
    order: IssueOrder,
) -> Result<(), Refusal> {
    let ca = ctx.task_ca.clone();
    let issued = ctx
        .store
        .transact(move |txn| grants::issue(txn, &ca, &order))
        .await?;
    client
        .print(format!("{}\n", issued.cert).into_bytes())
        .await;
    client.exit(0).await;
    Ok(())
}

async fn load_own_request(
    ctx: &ServerContext,
    who: &Requester,
    id: i64,
) -> Result<RequestRecord, Refusal> {
    let record = ctx.grants.run(move |conn| db::request(conn, id)).await?;
    // Another identity's request is as unknown as a missing one.
    record
        .filter(|r| r.identity == who.identity.name)
        .ok_or_else(|| Refusal::NotYours {
            id,
            identity: who.identity.name.clone(),
        })
}

async fn read_task_key(stdin: Stdin) -> Result<PublicKey, Refusal> {
    let Stdin { mut reader, early } = stdin;
    let mut input: Vec<u8> = early.data.concat();
    let mut open = !early.closed;
    while open {
        let Some(msg) = reader.wait().await else {
            break;
        };
        match msg {
            ChannelMsg::Data { data } => {
                input.extend_from_slice(&data);
                if input.len() > MAX_STDIN {
                    return Err(Refusal::StdinTooLong);
                }
            }
            ChannelMsg::Eof | ChannelMsg::Close => open = false,
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(&input);
    PublicKey::from_openssh(text.trim()).map_err(|_| Refusal::NotAKey)
}

fn whoami(ctx: &ServerContext, who: &Requester) -> String {
    let mut out = format!("identity {}\n", who.identity.name);
    let policy = ctx.policy();
    for name in &who.identity.roles {
        let Some(role) = policy.roles.get(name) else {
            continue;
        };
        out.push_str(&format!(
            "role {}: targets {:?}; exec {:?}; open {:?}; pty {}; max_ttl {}; approval {}\n",
            role.name,
            role.targets,
            role.exec.to_strings(),
            role.open.to_strings(),
            role.pty,
            crate::policy::format_duration(role.max_ttl),
            if role.approval == Approval::Auto {
                "auto"
            } else {
                "manual"
            },
        ));
    }
    out
}
