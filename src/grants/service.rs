//! The `grant` login: an identity key asks for a task certificate, checks a
//! request's state, or asks who it is. Everything it answers is one clear
//! line on stderr (or the cert on stdout), and every step is recorded.
//!
//! Invariant: a cert is signed here only for the authenticated identity,
//! within a role it holds, for a task key that is not its identity key, and
//! only after the grant is in the grants table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::{ChannelMsg, ChannelReadHalf};

use super::request::{self, GrantCommand, RequestArgs, MAX_WAIT};
use super::{GrantScope, IssuedGrant, NewRequest, RequestRecord, RequestStatus};
use crate::audit::Event;
use crate::cert::sign::{sign_task_cert, TaskCertSpec};
use crate::clock;
use crate::gateway::ServerContext;
use crate::policy::{Approval, Identity};
use crate::proxy::{ClientChannel, EarlyInput};
use russh::keys::PublicKey;

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

pub async fn serve(
    ctx: &Arc<ServerContext>,
    who: &Requester,
    client: ClientChannel,
    stdin: Stdin,
    command: Vec<u8>,
) {
    let text = String::from_utf8_lossy(&command).into_owned();
    let outcome = match request::parse(&text) {
        Err(e) => Err(e.to_string()),
        Ok(GrantCommand::Whoami) => {
            client.print(whoami(ctx, who).into_bytes()).await;
            client.exit(0).await;
            return;
        }
        Ok(GrantCommand::Status { id }) => status(ctx, who, &client, id).await,
        Ok(GrantCommand::Request(args)) => match ctx.request_limiter.take(&who.identity.name) {
            Err(wait) => Err(format!(
                "too many requests from identity {}; try again in {}s",
                who.identity.name,
                wait.as_secs().max(1)
            )),
            Ok(()) => request(ctx, who, &client, stdin, &args).await,
        },
    };
    if let Err(reason) = outcome {
        refuse(ctx, who, &client, &reason).await;
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
) -> Result<(), String> {
    if !who.identity.roles.contains(&args.role) {
        return Err(request::RequestError::RoleNotHeld(args.role.clone()).to_string());
    }
    let role = ctx
        .policy
        .roles
        .get(&args.role)
        .ok_or_else(|| format!("role {:?} is not in the policy", args.role))?;
    let scope = request::narrow(role, args).map_err(|e| e.to_string())?;
    let key = read_task_key(stdin).await?;
    if is_identity_key(&who.identity, &key) {
        return Err(
            "the task key must not be the identity key: generate a fresh key per task".into(),
        );
    }
    let pubkey = key.to_openssh().map_err(|e| e.to_string())?;
    let new = NewRequest {
        identity: who.identity.name.clone(),
        role: role.name.clone(),
        task: args.task.clone(),
        reason: args.reason.clone(),
        scope: scope.clone(),
        pubkey,
    };
    let id = ctx
        .grants
        .run({
            let new = new.clone();
            move |db| db.create_request(&new)
        })
        .await
        .map_err(|e| e.to_string())?;
    let requested = Event::GrantRequested {
        request_id: id,
        identity: new.identity.clone(),
        role: new.role.clone(),
        task: new.task.clone(),
        reason: new.reason.clone(),
        targets: scope.targets.clone(),
        exec: scope.exec.clone(),
        open: scope.open.clone(),
        ttl_secs: scope.ttl_secs,
        client_addr: who.client_addr.clone(),
    };
    ctx.store
        .record(None, None, requested)
        .await
        .map_err(|_| "the audit store cannot record the request".to_string())?;
    if role.approval == Approval::Auto {
        let record = RequestRecord::from_new(id, &new);
        return deliver(ctx, client, &record, "auto").await;
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
) -> Result<(), String> {
    let deadline = Instant::now() + wait;
    loop {
        let record = load_own_request(ctx, who, id).await?;
        if record.status != RequestStatus::Pending {
            return answer(ctx, client, &record).await;
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
) -> Result<(), String> {
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
    answer(ctx, client, &record).await
}

/// The answer to a decided request: its cert, or why there is none.
async fn answer(
    ctx: &Arc<ServerContext>,
    client: &ClientChannel,
    record: &RequestRecord,
) -> Result<(), String> {
    match record.status {
        RequestStatus::Pending => Err(format!("request {} is pending", record.id)),
        RequestStatus::Denied => Err(format!(
            "request {} was denied by {}{}",
            record.id,
            record.decided_by.as_deref().unwrap_or("an operator"),
            record
                .decision_reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )),
        RequestStatus::Approved => {
            let approver = record
                .decided_by
                .clone()
                .unwrap_or_else(|| "operator".into());
            deliver(ctx, client, record, &approver).await
        }
        RequestStatus::Issued => {
            let id = record.id;
            let issued = ctx
                .grants
                .run(move |db| db.cert_for_request(id))
                .await
                .map_err(|e| e.to_string())?;
            match issued {
                Some((cert, valid_before)) if valid_before > clock::now_unix() => {
                    client.print(format!("{cert}\n").into_bytes()).await;
                    client.exit(0).await;
                    Ok(())
                }
                Some(_) => Err(format!(
                    "the cert of request {id} has expired; request a new grant"
                )),
                None => Err(format!("request {id} has no cert on record")),
            }
        }
    }
}

/// Signs the cert of an approved request, records it, and prints it.
async fn deliver(
    ctx: &Arc<ServerContext>,
    client: &ClientChannel,
    record: &RequestRecord,
    approver: &str,
) -> Result<(), String> {
    let key = PublicKey::from_openssh(&record.pubkey).map_err(|e| e.to_string())?;
    let now = clock::now_unix();
    let scope: &GrantScope = &record.scope;
    let spec = TaskCertSpec {
        key_id: record.identity.clone(),
        principals: scope.targets.clone(),
        valid_after: now,
        valid_before: now.saturating_add(scope.ttl_secs),
        exec: scope.exec.clone(),
        open: scope.open.clone(),
        permit_pty: scope.pty,
        permit_port_forwarding: !scope.open.is_empty(),
        task: record.task.clone(),
    };
    let cert = sign_task_cert(&ctx.task_ca, &key, &spec).map_err(|e| e.to_string())?;
    let text = cert.to_openssh().map_err(|e| e.to_string())?;
    let grant = IssuedGrant {
        serial: cert.serial(),
        request_id: Some(record.id),
        identity: record.identity.clone(),
        role: record.role.clone(),
        task: record.task.clone(),
        reason: record.reason.clone(),
        scope: record.scope.clone(),
        valid_after: spec.valid_after,
        valid_before: spec.valid_before,
        approver: approver.to_string(),
        cert: text.clone(),
    };
    let issued = Event::GrantIssued {
        serial: grant.serial,
        request_id: grant.request_id,
        identity: grant.identity.clone(),
        role: grant.role.clone(),
        task: grant.task.clone(),
        valid_before: grant.valid_before,
        approver: grant.approver.clone(),
    };
    ctx.grants
        .run(move |db| db.record_grant(&grant))
        .await
        .map_err(|e| e.to_string())?;
    ctx.store
        .record(None, None, issued)
        .await
        .map_err(|_| "the audit store cannot record the grant".to_string())?;
    client.print(format!("{text}\n").into_bytes()).await;
    client.exit(0).await;
    Ok(())
}

async fn load_own_request(
    ctx: &ServerContext,
    who: &Requester,
    id: i64,
) -> Result<RequestRecord, String> {
    let record = ctx
        .grants
        .run(move |db| db.request(id))
        .await
        .map_err(|e| e.to_string())?;
    // Another identity's request is as unknown as a missing one.
    record
        .filter(|r| r.identity == who.identity.name)
        .ok_or_else(|| format!("no request {id} for identity {}", who.identity.name))
}

async fn read_task_key(stdin: Stdin) -> Result<PublicKey, String> {
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
                    return Err("stdin is too long for a public key".into());
                }
            }
            ChannelMsg::Eof | ChannelMsg::Close => open = false,
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(&input);
    PublicKey::from_openssh(text.trim())
        .map_err(|_| "stdin must be the task public key (one OpenSSH public key line)".into())
}

fn is_identity_key(identity: &Identity, key: &PublicKey) -> bool {
    identity
        .keys
        .iter()
        .filter_map(|line| PublicKey::from_openssh(line.trim()).ok())
        .any(|k| k.key_data() == key.key_data())
}

fn whoami(ctx: &ServerContext, who: &Requester) -> String {
    let mut out = format!("identity {}\n", who.identity.name);
    for name in &who.identity.roles {
        let Some(role) = ctx.policy.roles.get(name) else {
            continue;
        };
        out.push_str(&format!(
            "role {}: targets {:?}; exec {:?}; open {:?}; pty {}; max_ttl {}; approval {}\n",
            role.name,
            role.targets,
            role.exec.to_strings(),
            role.open,
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

impl RequestRecord {
    /// The record of a request just created (auto-approved requests are
    /// signed without reading it back).
    fn from_new(id: i64, new: &NewRequest) -> RequestRecord {
        RequestRecord {
            id,
            created_at_us: clock::now_us(),
            identity: new.identity.clone(),
            role: new.role.clone(),
            task: new.task.clone(),
            reason: new.reason.clone(),
            scope: new.scope.clone(),
            pubkey: new.pubkey.clone(),
            status: RequestStatus::Approved,
            decided_by: Some("auto".into()),
            decided_at_us: None,
            decision_reason: None,
            serial: None,
        }
    }
}
