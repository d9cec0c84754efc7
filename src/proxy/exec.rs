//! Exec channels: decide, record, run upstream, splice both ways.
//!
//! Invariant: stdin, stdout and stderr bytes are handed to the store before
//! they are forwarded; the exit status is committed before the client sees
//! it. Each direction awaits the other side's window, and the store's queue
//! is bounded, so no stream is buffered without bound.

use std::sync::Arc;

use russh::client;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};

use super::{permit, ClientChannel};
use crate::audit::{Event, Stream};
use crate::gateway::live::{channel_number, LiveSession};

pub async fn run(
    live: &Arc<LiveSession>,
    client: ClientChannel,
    reader: ChannelReadHalf,
    command: Vec<u8>,
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
            client.refuse(&reason).await;
            return;
        }
    };
    let Ok(permit) = permit::record_exec(live, client.id, decision).await else {
        client
            .refuse("the audit store cannot record the command, so it does not run")
            .await;
        return;
    };
    let upstream = match live.upstream().await {
        Ok(upstream) => upstream,
        Err(e) => {
            let reason = e.to_string();
            let _ = live
                .record(
                    Some(client.id),
                    Event::UpstreamFailed {
                        reason: reason.clone(),
                    },
                )
                .await;
            client.fail(&reason).await;
            return;
        }
    };
    let target_channel = match upstream.start_exec(&permit).await {
        Ok(channel) => channel,
        Err(e) => {
            let reason = format!("target {}: {e}", live.authorized.scope().target().name);
            let _ = live
                .record(
                    Some(client.id),
                    Event::UpstreamFailed {
                        reason: reason.clone(),
                    },
                )
                .await;
            client.fail(&reason).await;
            return;
        }
    };
    let (target_reader, target_writer) = target_channel.split();
    let inbound = tokio::spawn(client_to_target(
        live.clone(),
        client.id,
        reader,
        target_writer,
    ));
    target_to_client(live, &client, target_reader).await;
    inbound.abort();
    client.close().await;
}

/// stdin: client -> store -> target.
async fn client_to_target(
    live: Arc<LiveSession>,
    id: russh::ChannelId,
    mut reader: ChannelReadHalf,
    target: ChannelWriteHalf<client::Msg>,
) {
    let session = live.authorized.id();
    let channel = channel_number(id);
    while let Some(msg) = reader.wait().await {
        match msg {
            ChannelMsg::Data { data } => {
                let recorded = live
                    .store()
                    .chunk(session, channel, Stream::Stdin, data.clone());
                if recorded.await.is_err() || target.data_bytes(data).await.is_err() {
                    break;
                }
            }
            ChannelMsg::Eof => {
                let _ = target.eof().await;
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    // The client is gone or the store failed: the target must not go on
    // reading input nobody records.
    let _ = target.close().await;
}

/// stdout, stderr, exit status: target -> store -> client.
///
/// The target's EOF is held back until the exit status (or signal) has been
/// delivered: sshd sends either first, but the exit status waits for its
/// write-ahead commit here, and an OpenSSH client that has sent its own EOF
/// closes the channel as soon as ours arrives and then drops a late exit
/// status (its exit code becomes 255; seen with ControlMaster clients).
async fn target_to_client(live: &LiveSession, client: &ClientChannel, mut reader: ChannelReadHalf) {
    let session = live.authorized.id();
    let channel = channel_number(client.id);
    let mut eof_held = false;
    while let Some(msg) = reader.wait().await {
        let delivered = match msg {
            ChannelMsg::Data { data } => {
                if live
                    .store()
                    .chunk(session, channel, Stream::Stdout, data.clone())
                    .await
                    .is_err()
                {
                    stop_unrecorded(client).await;
                    return;
                }
                client.writer.data_bytes(data).await.is_ok()
            }
            ChannelMsg::ExtendedData { data, ext } => {
                if live
                    .store()
                    .chunk(session, channel, Stream::Stderr, data.clone())
                    .await
                    .is_err()
                {
                    stop_unrecorded(client).await;
                    return;
                }
                client.writer.extended_data_bytes(ext, data).await.is_ok()
            }
            ChannelMsg::ExitStatus { exit_status } => {
                let _ = live
                    .record(
                        Some(client.id),
                        Event::ExitStatus {
                            status: exit_status,
                        },
                    )
                    .await;
                client.writer.exit_status(exit_status).await.is_ok()
                    && release_eof(client, &mut eof_held).await
            }
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            } => {
                let event = Event::ExitSignal {
                    signal: format!("{signal_name:?}"),
                    core_dumped,
                };
                let _ = live.record(Some(client.id), event).await;
                client
                    .handle
                    .exit_signal_request(
                        client.id,
                        signal_name,
                        core_dumped,
                        error_message,
                        lang_tag,
                    )
                    .await
                    .is_ok()
                    && release_eof(client, &mut eof_held).await
            }
            ChannelMsg::Failure => {
                client.fail("the target refused to run the command").await;
                return;
            }
            ChannelMsg::Eof => {
                eof_held = true;
                true
            }
            ChannelMsg::Close => {
                release_eof(client, &mut eof_held).await;
                return;
            }
            _ => true,
        };
        if !delivered {
            return;
        }
    }
}

/// Forwards the target's EOF if it was held back.
async fn release_eof(client: &ClientChannel, held: &mut bool) -> bool {
    if !std::mem::take(held) {
        return true;
    }
    client.writer.eof().await.is_ok()
}

/// Fail closed: output that cannot be recorded is not forwarded.
async fn stop_unrecorded(client: &ClientChannel) {
    client
        .fail("the audit store cannot record this session's output; stopping it")
        .await;
}
