//! Exec channels: decide, record, run upstream (with the terminal the
//! client was granted, if any), splice both ways.
//!
//! Invariant: the command is committed to the store before it reaches the
//! target, and a command outside the scope never reaches it: a refusal is
//! recorded and answered with one line and exit status 126.

use std::sync::Arc;

use russh::ChannelReadHalf;

use super::terminal::ChannelSetup;
use super::{permit, splice, ClientChannel, EarlyInput};
use crate::audit::Event;
use crate::gateway::live::LiveSession;

pub async fn run(
    live: &Arc<LiveSession>,
    client: ClientChannel,
    reader: ChannelReadHalf,
    command: Vec<u8>,
    setup: ChannelSetup,
    early: EarlyInput,
) {
    let decision = match live.authorized.scope().authorize_exec(&command) {
        Ok(decision) => decision,
        Err(refusal) => {
            let reason = refusal.to_string();
            let event = Event::ExecRefused {
                command: String::from_utf8_lossy(&command).into_owned(),
                reason: reason.clone(),
            };
            if let Err(e) = live.record(Some(client.id), event).await {
                tracing::error!(error = %e, "could not record a refused command");
            }
            client.refuse_on(&reason, setup.pty().is_some()).await;
            return;
        }
    };
    let Ok(permit) = permit::record_exec(live, client.id, decision).await else {
        client
            .refuse("the audit store cannot record the command, so it does not run")
            .await;
        return;
    };
    let Some(upstream) = splice::target_or_fail(live, &client).await else {
        return;
    };
    let target_channel = match upstream.start_exec(&permit, &setup).await {
        Ok(channel) => channel,
        Err(e) => {
            let reason = format!("target {}: {e}", live.authorized.scope().target().name);
            splice::fail_target(live, &client, reason).await;
            return;
        }
    };
    let refused = "the target refused to run the command";
    splice::run(live, &client, reader, early, target_channel, None, refused).await;
}
