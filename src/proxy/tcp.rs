//! Splicing a client channel with a TCP connection the bastion made (or
//! accepted), counting bytes and, when the scope asks, recording them.
//!
//! Invariant: the channel is drained by its own task into a bounded buffer
//! ([`Drained`]), the TCP side is read only as fast as the client's window
//! takes it, and every byte is counted after it was delivered, so the
//! counts in `forward.closed` are what really went each way. With capture
//! on, bytes are handed to the store before they are forwarded, and a store
//! that cannot take them ends the forward (fail closed).

use std::time::Instant;

use russh::server::Msg;
use russh::{Channel, ChannelMsg, ChannelWriteHalf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::drain::{Drained, CHANNEL_BUFFER};
use crate::audit::{Event, Stream};
use crate::session::LiveSession;

/// Read size on the TCP side: one SSH packet's worth.
const READ_CHUNK: usize = 32 * 1024;

/// How one direction ended.
enum End {
    /// EOF (client EOF, or the destination closed its side).
    Eof,
    /// The client closed the channel.
    Closed,
    Failed(String),
}

/// Splices until both directions are done or one fails, closes the
/// channel, and commits `forward.closed` with the counts.
pub async fn splice(live: &LiveSession, channel: Channel<Msg>, stream: TcpStream) {
    let started = Instant::now();
    let id = channel.id();
    let _ = stream.set_nodelay(true);
    let (tcp_read, tcp_write) = stream.into_split();
    let (reader, writer) = channel.split();
    let mut drained = Drained::start(reader, CHANNEL_BUFFER);
    let capture = live.scope().captures_payload();
    let (mut sent, mut got) = (0u64, 0u64);

    let how = {
        let up = to_destination(live, id, &mut drained, tcp_write, capture, &mut sent);
        let down = to_client(live, id, tcp_read, &writer, capture, &mut got);
        tokio::pin!(up, down);
        tokio::select! {
        end = &mut up => match end {
            // Half-close: the destination may still answer.
            End::Eof => describe("client sent EOF", down.await, "destination"),
            End::Closed => "client closed the channel".to_string(),
            End::Failed(why) => why,
        },
        end = &mut down => match end {
            End::Eof => {
                let _ = writer.eof().await;
                describe("destination closed", up.await, "client")
            }
            End::Closed => "client closed the channel".to_string(),
            End::Failed(why) => why,
        },
        }
    };
    let _ = writer.eof().await;
    let _ = writer.close().await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let event = Event::ForwardClosed {
        bytes_to_destination: sent,
        bytes_from_destination: got,
        duration_ms,
        how,
    };
    live.record_best_effort(Some(id), event).await;
}

fn describe(first: &str, then: End, other: &str) -> String {
    match then {
        End::Eof => format!("{first}, then {other} closed"),
        End::Closed => format!("{first}, then the client closed the channel"),
        End::Failed(why) => format!("{first}, then {why}"),
    }
}

/// Client -> destination, from the drained channel.
async fn to_destination(
    live: &LiveSession,
    id: russh::ChannelId,
    drained: &mut Drained,
    mut tcp: OwnedWriteHalf,
    capture: bool,
    count: &mut u64,
) -> End {
    while let Some(msg) = drained.next().await {
        match msg {
            ChannelMsg::Data { data } => {
                if capture
                    && live
                        .record_chunk(id, Stream::Stdin, data.clone())
                        .await
                        .is_err()
                {
                    return End::Failed(UNRECORDED.to_string());
                }
                if let Err(e) = tcp.write_all(&data).await {
                    return End::Failed(format!("writing to the destination failed: {e}"));
                }
                *count += data.len() as u64;
            }
            ChannelMsg::Eof => {
                let _ = tcp.shutdown().await;
                return End::Eof;
            }
            ChannelMsg::Close => return End::Closed,
            _ => {}
        }
    }
    End::Closed
}

/// Destination -> client, as fast as the client's window allows.
async fn to_client(
    live: &LiveSession,
    id: russh::ChannelId,
    mut tcp: OwnedReadHalf,
    writer: &ChannelWriteHalf<Msg>,
    capture: bool,
    count: &mut u64,
) -> End {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match tcp.read(&mut buf).await {
            Ok(0) => return End::Eof,
            Ok(n) => n,
            Err(e) => return End::Failed(format!("reading from the destination failed: {e}")),
        };
        let data = bytes::Bytes::copy_from_slice(&buf[..n]);
        if capture
            && live
                .record_chunk(id, Stream::Stdout, data.clone())
                .await
                .is_err()
        {
            return End::Failed(UNRECORDED.to_string());
        }
        if writer.data_bytes(data).await.is_err() {
            return End::Closed;
        }
        *count += n as u64;
    }
}

const UNRECORDED: &str = "the audit store cannot record the payload; stopped";
