//! Interactive shells: decide, record, open the shell upstream with the
//! client's terminal, splice both ways while observing the command lines.
//!
//! Invariant: a shell opens on the target only for a [`ShellDecision`]
//! (permit-pty, a pty role, unrestricted commands) whose `shell.allowed`
//! row is committed first; a refused shell never reaches the target and is
//! recorded and answered with one line and exit status 126.
//!
//! [`ShellDecision`]: crate::scope::ShellDecision

use std::sync::Arc;

use russh::ChannelReadHalf;

use super::observe::Observer;
use super::terminal::ChannelSetup;
use super::{permit, splice, ClientChannel, EarlyInput};
use crate::audit::Event;
use crate::gateway::live::LiveSession;
use crate::scope::TerminalRefusal;

pub async fn run(
    live: &Arc<LiveSession>,
    client: ClientChannel,
    reader: ChannelReadHalf,
    setup: ChannelSetup,
    early: EarlyInput,
) {
    let on_terminal = setup.pty().is_some();
    let decision = match live.authorized.scope().authorize_shell() {
        Ok(decision) => decision,
        Err(refusal) => {
            let reason = format!("interactive shell: {refusal}");
            tracing::info!(session = %live.authorized.id(), %reason, "shell refused");
            let event = Event::ShellRefused {
                reason: reason.clone(),
            };
            if let Err(e) = live.record(Some(client.id), event).await {
                tracing::error!(error = %e, "could not record a refused shell");
            }
            // After a refused pty-req the client already has the line.
            let told = setup.terminal_refused()
                && matches!(
                    refusal,
                    TerminalRefusal::NoPermitPty | TerminalRefusal::NoPtyRole { .. }
                );
            match told {
                true => client.end_refused().await,
                false => client.refuse_on(&reason, on_terminal).await,
            }
            return;
        }
    };
    let Ok(permit) = permit::record_shell(live, client.id, decision, on_terminal).await else {
        let reason = "the audit store cannot record the shell, so it does not open";
        client.refuse_on(reason, on_terminal).await;
        return;
    };
    let Some(upstream) = splice::target_or_fail(live, &client).await else {
        return;
    };
    let target_channel = match upstream.start_shell(&permit, &setup).await {
        Ok(channel) => channel,
        Err(e) => {
            let reason = format!("target {}: {e}", live.authorized.scope().target().name);
            splice::fail_target(live, &client, reason).await;
            return;
        }
    };
    // Observed command lines need a screen: a shell without a terminal has
    // no echo to read, and its stdin is in the transcript as it is.
    let observer = setup.pty().map(|p| Observer::new(p.cols, p.rows));
    let refused = "the target refused the shell or its terminal";
    splice::run(
        live,
        &client,
        reader,
        early,
        target_channel,
        observer,
        refused,
    )
    .await;
}
