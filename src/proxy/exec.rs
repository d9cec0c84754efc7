//! Exec channels: decide and record, run upstream (with the terminal the
//! client was granted, if any), splice both ways.
//!
//! Invariant: the command runs on the target only for a
//! `Recorded<ExecDecision>` (committed first); a command outside the scope
//! never reaches it: the refusal is recorded and answered with one line
//! and exit status 126.

use russh::ChannelReadHalf;

use super::{splice, ClientChannel, EarlyInput, SessionLink};
use crate::session::scope::ExecDecision;
use crate::session::setup::ChannelSetup;
use crate::session::{Denied, Recorded};

/// Runs the exec request `command`.
pub async fn run(
    link: &SessionLink,
    client: ClientChannel,
    reader: ChannelReadHalf,
    command: Vec<u8>,
    setup: ChannelSetup,
    early: EarlyInput,
) {
    let permit = link.live.authorize_exec(client.id, &command).await;
    run_permitted(link, client, reader, permit, setup, early).await;
}

/// Runs a decided command (a forced command in place of a shell or a
/// subsystem comes here too).
pub async fn run_permitted(
    link: &SessionLink,
    client: ClientChannel,
    reader: ChannelReadHalf,
    permit: Result<Recorded<ExecDecision>, Denied>,
    setup: ChannelSetup,
    early: EarlyInput,
) {
    let permit = match permit {
        Ok(permit) => permit,
        Err(denied) => {
            client
                .refuse_on(denied.reason(), setup.has_terminal())
                .await;
            return;
        }
    };
    let Some(upstream) = splice::target_or_fail(link, &client).await else {
        return;
    };
    let target_channel = match upstream.start_exec(&permit, &setup).await {
        Ok(channel) => channel,
        Err(e) => {
            let reason = format!("target {}: {e}", link.live.scope().target().name);
            splice::fail_target(&link.live, &client, reason).await;
            return;
        }
    };
    let refused = "the target refused to run the command";
    splice::run(link, &client, reader, early, target_channel, None, refused).await;
}
