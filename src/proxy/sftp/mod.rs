//! The sftp subsystem: decided and recorded, opened on the target, and
//! every request judged by the [`gate::Gate`] on its way through.
//!
//! Invariant: the subsystem opens on the target only for a
//! `Recorded<SftpDecision>`; a path operation is committed to the store
//! before its packet reaches the target, and one outside the path scope
//! never reaches it (the client gets the bastion's own status answer).
//! Both channels are drained into bounded buffers; every packet towards
//! the client is written whole by one task, so the bastion's own answers
//! never split a target packet. A packet that does not parse, or a client
//! that breaks the protocol, ends the channel.

pub mod gate;
pub mod packet;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use russh::client;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::sync::{mpsc, watch};

use super::drain::{Drained, CHANNEL_BUFFER};
use super::{ClientChannel, SessionLink};
use crate::audit::{Event, Stream};
use crate::session::{Exit, LiveSession, RefusedRequest};
use gate::{Gate, Verdict};
use packet::Framer;

type TargetWriter = Arc<ChannelWriteHalf<client::Msg>>;

pub async fn run(link: &SessionLink, client: ClientChannel, reader: ChannelReadHalf, name: &str) {
    let live = &link.live;
    let _guard = live.hold();
    let permit = match live.authorize_sftp(client.id, name).await {
        Ok(permit) => permit,
        Err(denied) => {
            client.refuse(denied.reason()).await;
            return;
        }
    };
    let target = match link.target.get().await {
        Ok(upstream) => upstream
            .start_sftp(&permit)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let target = match target {
        Ok(channel) => channel,
        Err(reason) => {
            let event = Event::UpstreamFailed {
                reason: reason.clone(),
            };
            live.record_best_effort(Some(client.id), event).await;
            client.fail(&reason).await;
            return;
        }
    };
    let gate = Arc::new(Mutex::new(Gate::new(permit.action().clone())));
    let (target_reader, target_writer) = target.split();
    let target_writer: TargetWriter = Arc::new(target_writer);
    let (replies, answers) = mpsc::channel(64);
    let (ready_tx, ready_rx) = watch::channel(false);
    let mut up = tokio::spawn(client_to_target(
        live.clone(),
        client.id,
        Drained::start(reader, CHANNEL_BUFFER),
        target_writer.clone(),
        (gate.clone(), ready_rx),
        replies,
    ));
    let down = Downstream {
        live,
        client: &client,
        gate: &gate,
        target: &target_writer,
        ready: &ready_tx,
    };
    let broken = tokio::select! {
        () = down.run(Drained::start(target_reader, CHANNEL_BUFFER), answers) => None,
        ended = &mut up => match ended {
            Ok(Ended::Broken(reason)) => Some(reason),
            _ => None,
        },
    };
    up.abort();
    if let Some(reason) = broken {
        client.fail(&format!("sftp: {reason}")).await;
    }
    let left_open = gate.lock().map(|mut g| g.finish()).unwrap_or_default();
    for event in left_open {
        live.record_best_effort(Some(client.id), event).await;
    }
    client.close().await;
}

/// How the client's side of an sftp channel ended.
enum Ended {
    /// The client closed (or the target went away).
    Closed,
    /// The client broke the protocol, or its requests cannot be recorded:
    /// the channel ends at once.
    Broken(String),
}

/// Requests: client -> gate -> store -> target (or an answer back).
async fn client_to_target(
    live: Arc<LiveSession>,
    id: russh::ChannelId,
    mut client: Drained,
    target: TargetWriter,
    (gate, mut ready): (Arc<Mutex<Gate>>, watch::Receiver<bool>),
    replies: mpsc::Sender<Bytes>,
) -> Ended {
    let mut framer = Framer::default();
    let capture = live.scope().captures_payload();
    while let Some(msg) = client.next().await {
        match msg {
            ChannelMsg::Data { data } => {
                if capture
                    && live
                        .record_chunk(id, Stream::Stdin, data.clone())
                        .await
                        .is_err()
                {
                    return broken(&live, id, &target, UNRECORDED).await;
                }
                framer.push(&data);
                loop {
                    let packet = match framer.next_packet() {
                        Ok(Some(packet)) => packet,
                        Ok(None) => break,
                        Err(e) => return broken(&live, id, &target, &e.to_string()).await,
                    };
                    let verdict = loop {
                        let verdict = match gate.lock() {
                            Ok(mut gate) => gate.on_request(&packet),
                            Err(_) => return Ended::Closed,
                        };
                        if !matches!(verdict, Ok(Verdict::Wait)) {
                            break verdict;
                        }
                        // The gate is learning the home: this request waits
                        // (and so does everything after it, in order).
                        if ready.wait_for(|r| *r).await.is_err() {
                            return Ended::Closed;
                        }
                    };
                    match verdict {
                        Ok(Verdict::Forward(event)) => {
                            if let Some(event) = event {
                                if live.record_or_stop(Some(id), event).await.is_err() {
                                    return broken(&live, id, &target, UNRECORDED).await;
                                }
                            }
                            if target.data_bytes(packet).await.is_err() {
                                return Ended::Closed;
                            }
                        }
                        Ok(Verdict::Deny { event, reply }) => {
                            live.record_best_effort(Some(id), event).await;
                            if replies.send(reply).await.is_err() {
                                return Ended::Closed;
                            }
                        }
                        Ok(Verdict::Wait) => {}
                        Err(e) => return broken(&live, id, &target, &e.to_string()).await,
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
    Ended::Closed
}

const UNRECORDED: &str = "the audit store cannot record sftp operations; stopped";

/// Ends the target channel for a client that broke the protocol (or a
/// store that cannot record), and says why in the store.
async fn broken(
    live: &LiveSession,
    id: russh::ChannelId,
    target: &ChannelWriteHalf<client::Msg>,
    reason: &str,
) -> Ended {
    live.refuse_request(Some(id), RefusedRequest::Sftp, reason)
        .await;
    let _ = target.close().await;
    Ended::Broken(reason.to_owned())
}

/// Responses: target -> gate -> client, with the bastion's own answers
/// written between whole packets.
struct Downstream<'a> {
    live: &'a LiveSession,
    client: &'a ClientChannel,
    gate: &'a Mutex<Gate>,
    target: &'a TargetWriter,
    ready: &'a watch::Sender<bool>,
}

impl Downstream<'_> {
    async fn run(&self, mut target: Drained, mut answers: mpsc::Receiver<Bytes>) {
        let (live, client) = (self.live, self.client);
        let mut framer = Framer::default();
        let capture = live.scope().captures_payload();
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
                                let reason = format!("the target broke the sftp protocol: {e}");
                                client.fail(&reason).await;
                                return;
                            }
                        };
                        if !self.follow(packet, capture).await {
                            return;
                        }
                    }
                }
                ChannelMsg::Failure => {
                    client.fail("the target refused to start sftp").await;
                    return;
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    let exit = Exit::Status(exit_status);
                    match live.record_exit(client.id, exit).await {
                        Ok(recorded) => {
                            client.deliver_exit(&recorded).await;
                        }
                        Err(_) => {
                            client.fail(UNRECORDED).await;
                            return;
                        }
                    }
                }
                ChannelMsg::Eof => {
                    let _ = client.writer.eof().await;
                }
                ChannelMsg::Close => return,
                _ => {}
            }
        }
    }

    /// One target packet: the gate follows it (and may send its own probe
    /// to the target), its events are recorded, and it goes on to the
    /// client unless it answers the gate's probe. False: stop.
    async fn follow(&self, packet: Bytes, capture: bool) -> bool {
        let answer = match self.gate.lock() {
            // A target packet the gate cannot read teaches it nothing; the
            // client gets it as the target sent it.
            Ok(mut gate) => gate.on_response(&packet).unwrap_or(gate::Answer {
                forward: true,
                ..gate::Answer::default()
            }),
            Err(_) => return false,
        };
        for event in answer.events {
            self.live
                .record_best_effort(Some(self.client.id), event)
                .await;
        }
        if let Some(probe) = answer.probe {
            if self.target.data_bytes(probe).await.is_err() {
                return false;
            }
        }
        if self.gate.lock().is_ok_and(|g| g.ready()) {
            self.ready.send_replace(true);
        }
        if !answer.forward {
            return true;
        }
        if capture
            && self
                .live
                .record_chunk(self.client.id, Stream::Stdout, packet.clone())
                .await
                .is_err()
        {
            return false;
        }
        self.client.writer.data_bytes(packet).await.is_ok()
    }
}

#[cfg(test)]
mod tests;
