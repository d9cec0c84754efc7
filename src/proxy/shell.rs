//! Interactive shells: decide and record, open the shell upstream with the
//! client's terminal, splice both ways while observing the command lines.
//!
//! Invariant: a shell opens on the target only for a
//! `Recorded<ShellDecision>` (permit-pty, a pty role, unrestricted
//! commands; `shell.allowed` committed first); a refused shell never
//! reaches the target and is recorded and answered with one line and exit
//! status 126.

use russh::ChannelReadHalf;

use super::observe::Observer;
use super::{splice, ClientChannel, EarlyInput, SessionLink};
use crate::session::setup::ChannelSetup;

pub async fn run(
    link: &SessionLink,
    client: ClientChannel,
    reader: ChannelReadHalf,
    setup: ChannelSetup,
    early: EarlyInput,
) {
    let on_terminal = setup.has_terminal();
    let permit = match link.live.authorize_shell(client.id, on_terminal).await {
        Ok(permit) => permit,
        Err(denied) => {
            // After a refused pty-req the client already has the line
            // (the shell is refused for the same reason).
            if setup.terminal_refused() && !link.live.scope().allows_pty() {
                client.end_refused().await;
            } else {
                client.refuse_on(denied.reason(), on_terminal).await;
            }
            return;
        }
    };
    let Some(upstream) = splice::target_or_fail(link, &client).await else {
        return;
    };
    let target_channel = match upstream.start_shell(&permit, &setup).await {
        Ok(channel) => channel,
        Err(e) => {
            let reason = format!("target {}: {e}", link.live.scope().target().name);
            splice::fail_target(&link.live, &client, reason).await;
            return;
        }
    };
    // Observed command lines need a screen: a shell without a terminal has
    // no echo to read, and its stdin is in the transcript as it is.
    let observer = setup.pty().map(|p| Observer::new(p.cols, p.rows));
    let refused = "the target refused the shell or its terminal";
    splice::run(
        link,
        &client,
        reader,
        early,
        target_channel,
        observer,
        refused,
    )
    .await;
}
