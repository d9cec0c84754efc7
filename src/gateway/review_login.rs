//! The `review` login: an identity key of a reviewer (`review = true`)
//! gets one line on stdout, a one-time sign-in link for `portcullis web`.
//!
//! Invariant: the link's token is on record (hashed, with its expiry) and
//! `review.link_issued` chained in the same transaction before the line is
//! sent; an identity the policy in force does not let review gets one
//! refusal line (exit 126) and a chained `review.refused`. The token is
//! never logged.

use std::sync::Arc;

use russh::server::{Handle, Msg};
use russh::Channel;

use super::channel::first_request;
use super::grant_login::Requester;
use super::ServerContext;
use crate::audit::{Abort, Event, StoreError};
use crate::grants::review;
use crate::policy::Review;
use crate::proxy::{ClientChannel, EarlyInput};

/// A session channel of the `review` login: any request (a shell, a
/// command, a subsystem) gets the same answer.
pub async fn serve_review_channel(
    ctx: Arc<ServerContext>,
    requester: Arc<Requester>,
    channel: Channel<Msg>,
    handle: Handle,
) {
    let id = channel.id();
    let (mut reader, writer) = channel.split();
    let client = ClientChannel::new(id, writer, handle);
    let mut early = EarlyInput::default();
    if first_request(&mut reader, &mut early, &client)
        .await
        .is_some()
    {
        answer(&ctx, &requester, &client).await;
    }
}

async fn answer(ctx: &ServerContext, who: &Requester, client: &ClientChannel) {
    let name = who.identity.name.clone();
    // The policy as it stands now: a reload may have taken review away.
    let allowed = ctx
        .policy()
        .identities
        .get(&name)
        .map_or(Review::Denied, |identity| identity.review);
    let suspended = {
        let name = name.clone();
        ctx.grants
            .run(move |conn| Ok(crate::grants::db::is_suspended(conn, &name)?))
            .await
    };
    let reason = match (allowed, suspended) {
        (Review::Allowed, Ok(false)) => None,
        (Review::Allowed, Ok(true)) => Some(format!(
            "identity {name:?} is suspended; an operator lifts it with `portcullis reinstate {name}`"
        )),
        (Review::Allowed, Err(_)) => {
            client.fail("the audit store is unavailable").await;
            return;
        }
        (_, _) => Some(format!(
            "identity {name:?} may not review (review = true in identities.toml)"
        )),
    };
    if let Some(reason) = reason {
        let event = Event::ReviewRefused {
            identity: Some(name),
            reason: reason.clone(),
        };
        if ctx.store.record(None, None, event).await.is_err() {
            client.fail("the audit store is unavailable").await;
            return;
        }
        client.refuse(&reason).await;
        return;
    }
    let client_addr = who.client_addr.clone();
    let issued = ctx
        .store
        .transact(move |txn| {
            let secret = review::issue_link(txn.conn(), &name, txn.at_us())
                .map_err(|e| Abort::Failed(StoreError::Sqlite(e)))?;
            let event = Event::ReviewLinkIssued {
                identity: name,
                client_addr,
            };
            txn.record(None, None, &event)?;
            Ok::<_, Abort<()>>(secret)
        })
        .await;
    match issued {
        Ok(secret) => {
            let scheme = match ctx.config.web_tls {
                Some(_) => "https",
                None => "http",
            };
            let line = format!(
                "{scheme}://{}/signin?token={}\n",
                ctx.config.web_listen,
                secret.reveal()
            );
            client.print(line.into_bytes()).await;
            client.exit(0).await;
        }
        Err(_) => client.fail("the audit store is unavailable").await,
    }
}
