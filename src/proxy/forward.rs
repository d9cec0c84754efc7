//! direct-tcpip channels (`ssh -L`, `ssh -W`, `ssh -J`): decide, record,
//! connect from the bastion, splice.
//!
//! Invariant: the bastion opens a TCP connection only for a
//! [`Recorded<ForwardDecision>`], so `forward.opened` (destination asked
//! for, the resolved address, the originator) is committed before the
//! connect, and it connects to exactly the recorded address. The client's
//! channel is accepted only once that connection stands; every refusal is a
//! channel-open failure plus a `forward.refused` row with the reason.

use std::sync::Arc;
use std::time::Duration;

use russh::server::{ChannelOpenHandle, Msg};
use russh::{Channel, ChannelOpenFailure};
use tokio::net::TcpStream;

use super::permit::{self, Recorded};
use super::tcp;
use crate::audit::Event;
use crate::gateway::live::LiveSession;
use crate::scope::ForwardDecision;

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
    let decision = match live
        .authorized
        .scope()
        .authorize_forward(&request.host, request.port)
        .await
    {
        Ok(decision) => decision,
        Err(refusal) => {
            refuse(&live, &request, id, &refusal.to_string()).await;
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return;
        }
    };
    let Ok(permit) = permit::record_forward(&live, id, decision, &request.originator).await else {
        tracing::error!("the audit store cannot record a forward; refused");
        reply.reject(ChannelOpenFailure::ResourceShortage).await;
        return;
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
            let _ = live.record(Some(id), event).await;
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

async fn refuse(live: &LiveSession, request: &ForwardRequest, id: russh::ChannelId, reason: &str) {
    tracing::info!(
        session = %live.authorized.id(),
        host = %request.host,
        port = request.port,
        reason,
        "forward refused"
    );
    let event = Event::ForwardRefused {
        host: request.host.chars().take(256).collect(),
        port: request.port,
        originator: request.originator.chars().take(256).collect(),
        reason: reason.to_string(),
    };
    if let Err(e) = live.record(Some(id), event).await {
        tracing::error!(error = %e, "could not record a refused forward");
    }
}
