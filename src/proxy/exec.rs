//! Exec channels: decide and record, run upstream (with the terminal the
//! client was granted, if any), splice both ways.
//!
//! Invariant: the command runs on the target only for a
//! `Recorded<ExecDecision>` (committed first); a command outside the scope
//! never reaches it: the refusal is recorded and answered with one line
//! and exit status 126. A command an `ask` pattern holds waits for an
//! operator: one line says so; approved, it runs under its own recorded
//! permit; denied, one line and 126; undecided when the wait ends, one
//! line and 75 (EX_TEMPFAIL) so the agent retries the same command.

use russh::ChannelReadHalf;

use super::{splice, ClientChannel, EarlyInput, SessionLink};
use crate::policy::format_duration;
use crate::session::hold::{ExecAnswer, HoldOutcome};
use crate::session::scope::ExecDecision;
use crate::session::setup::ChannelSetup;
use crate::session::{Denied, Recorded};

/// Exit status while a held command still awaits its decision
/// (sysexits.h EX_TEMPFAIL: try again later).
pub const STILL_PENDING_EXIT_STATUS: u32 = 75;

/// Runs the exec request `command`.
pub async fn run(
    link: &SessionLink,
    client: ClientChannel,
    reader: ChannelReadHalf,
    command: Vec<u8>,
    setup: ChannelSetup,
    early: EarlyInput,
) {
    let terminal = setup.has_terminal();
    let permit = match link.live.authorize_exec_or_hold(client.id, &command).await {
        ExecAnswer::Run(permit) => Ok(permit),
        ExecAnswer::Refused(denied) => Err(denied),
        ExecAnswer::Held(hold) => {
            let id = hold.request();
            let wait = format_duration(link.live.hold_wait());
            let line = match hold.is_fresh() {
                true => format!(
                    "portcullis: pending: command held for approval as request {id} (portcullis approve {id}); waiting up to {wait}"
                ),
                false => format!(
                    "portcullis: pending: command still held for approval as request {id}; waiting up to {wait}"
                ),
            };
            client.say_on(&line, terminal).await;
            match link.live.await_hold(client.id, hold).await {
                HoldOutcome::Run(permit) => Ok(permit),
                HoldOutcome::Refused(denied) => Err(denied),
                HoldOutcome::Denied(denied) => {
                    let line = format!("portcullis: denied: {denied}");
                    let status = super::REFUSED_EXIT_STATUS;
                    client.finish_on(&line, status, terminal).await;
                    return;
                }
                HoldOutcome::StillPending { request } => {
                    let line = format!(
                        "portcullis: pending: request {request} still awaits approval; run the same command again once it is approved"
                    );
                    client
                        .finish_on(&line, STILL_PENDING_EXIT_STATUS, terminal)
                        .await;
                    return;
                }
            }
        }
    };
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
