//! direct-tcpip channels (`ssh -L`, `ssh -W`, `ssh -J`): decide and record,
//! connect from the bastion, splice.
//!
//! Invariant: the bastion opens a TCP connection only for a
//! `Recorded<ForwardDecision>`, so `forward.opened` (destination asked for,
//! the resolved address, the originator) is committed before the connect,
//! and it connects to exactly the recorded address. The client's channel
//! is accepted only once that connection stands; every refusal is a
//! channel-open failure plus a `forward.refused` row with the reason.

use std::sync::Arc;
use std::time::Duration;

use russh::server::{ChannelOpenHandle, Msg};
use russh::{Channel, ChannelOpenFailure};
use tokio::net::TcpStream;

use super::tcp;
use crate::audit::Event;
use crate::session::scope::ForwardDecision;
use crate::session::{LiveSession, Recorded};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the client asked for in its channel-open request.
pub struct ForwardRequest {
    pub host: String,
    pub port: u32,
    /// `address:port` of the client's end, as the client reported it.
    pub originator: String,
}

/// Runs one direct-tcpip request to its end; call it in a task of its own.
pub async fn run(
    live: Arc<LiveSession>,
    channel: Channel<Msg>,
    request: ForwardRequest,
    reply: ChannelOpenHandle,
) {
    let _guard = live.hold();
    let id = channel.id();
    let authorized = live
        .authorize_forward(id, &request.host, request.port, &request.originator)
        .await;
    let permit = match authorized {
        Ok(permit) => permit,
        Err(_) => {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return;
        }
    };
    let stream = match connect(&permit).await {
        Ok(stream) => stream,
        Err(reason) => {
            let event = Event::ForwardClosed {
                bytes_to_destination: 0,
                bytes_from_destination: 0,
                duration_ms: 0,
                how: reason,
            };
            live.record_best_effort(Some(id), event).await;
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        }
    };
    reply.accept().await;
    tcp::splice(&live, channel, stream).await;
}

/// Connects to the recorded address, and only to it.
async fn connect(permit: &Recorded<ForwardDecision>) -> Result<TcpStream, String> {
    let address = permit.action().address();
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!("connect to {address} failed: {e}")),
        Err(_) => Err(format!("connect to {address} timed out")),
    }
}
