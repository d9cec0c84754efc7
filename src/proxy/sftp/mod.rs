//! The sftp subsystem: decided and recorded, opened on the target, and
//! every request judged by the [`gate::Gate`] on its way through.
//!
//! Invariant: a path operation is committed to the store before its packet
//! reaches the target, and one outside the path scope never reaches it (the
//! client gets `SSH_FX_PERMISSION_DENIED` from the bastion). Both channels
//! are drained into bounded buffers; every packet towards the client is
//! written whole by one task, so the bastion's own answers never split a
//! target packet. A packet that does not parse ends the channel.

pub mod gate;
pub mod packet;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use russh::client;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::sync::mpsc;

use super::drain::{Drained, CHANNEL_BUFFER};
use super::{permit, ClientChannel};
use crate::audit::{Event, Stream};
use crate::gateway::live::LiveSession;
use gate::{Gate, Verdict};
use packet::Framer;

pub async fn run(
    live: &Arc<LiveSession>,
    client: ClientChannel,
    reader: ChannelReadHalf,
    name: &str,
) {
    let _guard = live.hold();
    let decision = match live.authorized.scope().authorize_subsystem(name) {
        Ok(decision) => decision,
        Err(refusal) => {
            let request = format!("subsystem {}", name.chars().take(64).collect::<String>());
            let reason = refusal.to_string();
            live.record_refused_request(Some(client.id), &request, &reason)
                .await;
            client.refuse(&reason).await;
            return;
        }
    };
    let Ok(permit) = permit::record_sftp(live, client.id, decision).await else {
        client
            .refuse("the audit store cannot record the sftp session, so it does not start")
            .await;
        return;
    };
    let target = match live.upstream().await {
        Ok(upstream) => upstream
            .start_sftp(&permit)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let target = match target {
        Ok(channel) => channel,
        Err(reason) => {
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
    let gate = Arc::new(Mutex::new(Gate::new(permit.action().clone())));
    let (target_reader, target_writer) = target.split();
    let (replies, answers) = mpsc::channel(64);
    let up = tokio::spawn(client_to_target(
        live.clone(),
        client.id,
        Drained::start(reader, CHANNEL_BUFFER),
        target_writer,
        gate.clone(),
        replies,
    ));
    target_to_client(
        live,
        &client,
        Drained::start(target_reader, CHANNEL_BUFFER),
        &gate,
        answers,
    )
    .await;
    up.abort();
    let left_open = gate.lock().map(|mut g| g.finish()).unwrap_or_default();
    for event in left_open {
        let _ = live.record(Some(client.id), event).await;
    }
    client.close().await;
}

/// Requests: client -> gate -> store -> target (or an answer back).
async fn client_to_target(
    live: Arc<LiveSession>,
    id: russh::ChannelId,
    mut client: Drained,
    target: ChannelWriteHalf<client::Msg>,
    gate: Arc<Mutex<Gate>>,
    replies: mpsc::Sender<Bytes>,
) {
    let mut framer = Framer::default();
    let capture = live.authorized.scope().captures_payload();
    while let Some(msg) = client.next().await {
        match msg {
            ChannelMsg::Data { data } => {
                if capture
                    && live
                        .record_chunk(id, Stream::Stdin, data.clone())
                        .await
                        .is_err()
                {
                    break;
                }
                framer.push(&data);
                loop {
                    let packet = match framer.next_packet() {
                        Ok(Some(packet)) => packet,
                        Ok(None) => break,
                        Err(e) => return protocol_error(&live, id, &target, &e.to_string()).await,
                    };
                    let verdict = match gate.lock() {
                        Ok(mut gate) => gate.on_request(&packet),
                        Err(_) => return,
                    };
                    match verdict {
                        Ok(Verdict::Forward(event)) => {
                            if let Some(event) = event {
                                if live.record(Some(id), event).await.is_err() {
                                    return protocol_error(&live, id, &target, UNRECORDED).await;
                                }
                            }
                            if target.data_bytes(packet).await.is_err() {
                                return;
                            }
                        }
                        Ok(Verdict::Deny { event, reply }) => {
                            let _ = live.record(Some(id), event).await;
                            if replies.send(reply).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => return protocol_error(&live, id, &target, &e.to_string()).await,
                    }
                }
            }
            ChannelMsg::Eof => {
                let _ = target.eof().await;
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    let _ = target.close().await;
}

const UNRECORDED: &str = "the audit store cannot record sftp operations; stopped";

/// Ends the target channel for a client that broke the protocol (or a
/// store that cannot record), and says why in the store.
async fn protocol_error(
    live: &LiveSession,
    id: russh::ChannelId,
    target: &ChannelWriteHalf<client::Msg>,
    reason: &str,
) {
    live.record_refused_request(Some(id), "sftp", reason).await;
    let _ = target.close().await;
}

/// Responses: target -> gate -> client, with the bastion's own answers
/// written between whole packets.
async fn target_to_client(
    live: &LiveSession,
    client: &ClientChannel,
    mut target: Drained,
    gate: &Mutex<Gate>,
    mut answers: mpsc::Receiver<Bytes>,
) {
    let mut framer = Framer::default();
    let capture = live.authorized.scope().captures_payload();
    loop {
        let msg = tokio::select! {
            msg = target.next() => msg,
            Some(answer) = answers.recv() => {
                if client.writer.data_bytes(answer).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let Some(msg) = msg else { return };
        match msg {
            ChannelMsg::Data { data } => {
                framer.push(&data);
                loop {
                    let packet = match framer.next_packet() {
                        Ok(Some(packet)) => packet,
                        Ok(None) => break,
                        Err(e) => {
                            client
                                .fail(&format!("the target broke the sftp protocol: {e}"))
                                .await;
                            return;
                        }
                    };
                    let events = gate.lock().map(|mut g| g.on_response(&packet));
                    for event in events.ok().and_then(Result::ok).unwrap_or_default() {
                        let _ = live.record(Some(client.id), event).await;
                    }
                    if capture
                        && live
                            .record_chunk(client.id, Stream::Stdout, packet.clone())
                            .await
                            .is_err()
                    {
                        return;
                    }
                    if client.writer.data_bytes(packet).await.is_err() {
                        return;
                    }
                }
            }
            ChannelMsg::Failure => {
                client.fail("the target refused to start sftp").await;
                return;
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
                let _ = client.writer.exit_status(exit_status).await;
            }
            ChannelMsg::Eof => {
                let _ = client.writer.eof().await;
            }
            ChannelMsg::Close => return,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
