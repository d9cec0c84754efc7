//! Remote forwarding (`ssh -R`, tcpip-forward): a listener on the bastion,
//! at an address a role lists exactly, whose connections go back to the
//! client as forwarded-tcpip channels.
//!
//! Invariant: the listener binds exactly the address of a
//! `Recorded<ListenDecision>` (`listen.opened` committed first, naming that
//! address); each accepted connection is committed (`listen.accepted`)
//! before it is offered to the client, and spliced like a forward
//! (`forward.closed` with its counts). Listeners live exactly as long as
//! the SSH connection that asked for them, or until cancelled.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use russh::server::Handle;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::tcp;
use crate::audit::Event;
use crate::session::scope::ListenDecision;
use crate::session::{LiveSession, Recorded};

/// The remote-forward listeners of one connection; dropping it stops them.
#[derive(Default)]
pub struct RemoteForwards {
    listeners: HashMap<SocketAddr, JoinHandle<()>>,
}

impl RemoteForwards {
    /// Whether a listener on this address runs already.
    pub fn has(&self, address: &str, port: u32) -> bool {
        self.listeners
            .keys()
            .any(|s| u32::from(s.port()) == port && same_host(address, s))
    }

    /// Binds the recorded address and starts serving it; false when it
    /// cannot (the client's request then fails).
    pub async fn open(
        &mut self,
        live: &Arc<LiveSession>,
        permit: Recorded<ListenDecision>,
        handle: Handle,
    ) -> bool {
        let address = permit.action().address();
        let socket = SocketAddr::new(address.addr, address.port);
        if self.listeners.contains_key(&socket) {
            return false;
        }
        let listener = match TcpListener::bind(socket).await {
            Ok(listener) => listener,
            Err(e) => {
                let request = crate::session::RefusedRequest::TcpipForward {
                    address: address.addr.to_string(),
                    port: u32::from(address.port),
                };
                let reason = format!("cannot listen on {socket}: {e}");
                live.refuse_request(None, request, &reason).await;
                return false;
            }
        };
        let task = tokio::spawn(serve(live.clone(), listener, socket, handle));
        self.listeners.insert(socket, task);
        true
    }

    /// Stops the listener a cancel-tcpip-forward names.
    pub fn cancel(&mut self, address: &str, port: u32) -> bool {
        let found = self
            .listeners
            .keys()
            .find(|s| u32::from(s.port()) == port && same_host(address, s))
            .copied();
        match found.and_then(|s| self.listeners.remove(&s)) {
            Some(task) => {
                task.abort();
                true
            }
            None => false,
        }
    }
}

fn same_host(address: &str, socket: &SocketAddr) -> bool {
    match address.parse::<std::net::IpAddr>() {
        Ok(ip) => ip == socket.ip(),
        Err(_) => address.eq_ignore_ascii_case("localhost") && socket.ip().is_loopback(),
    }
}

impl Drop for RemoteForwards {
    fn drop(&mut self) {
        for task in self.listeners.values() {
            task.abort();
        }
    }
}

async fn serve(live: Arc<LiveSession>, listener: TcpListener, socket: SocketAddr, handle: Handle) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of file descriptors and the like: wait, do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(offer(live.clone(), stream, peer, socket, handle.clone()));
    }
}

/// Records one accepted connection, then hands it to the client.
async fn offer(
    live: Arc<LiveSession>,
    stream: TcpStream,
    peer: SocketAddr,
    socket: SocketAddr,
    handle: Handle,
) {
    let _guard = live.hold();
    let event = Event::ListenAccepted {
        address: socket.to_string(),
        originator: peer.to_string(),
    };
    if live.record_or_stop(None, event).await.is_err() {
        return;
    }
    let opened = handle
        .channel_open_forwarded_tcpip(
            socket.ip().to_string(),
            u32::from(socket.port()),
            peer.ip().to_string(),
            u32::from(peer.port()),
        )
        .await;
    match opened {
        Ok(channel) => tcp::splice(&live, channel, stream).await,
        Err(e) => {
            let event = Event::ForwardClosed {
                bytes_to_destination: 0,
                bytes_from_destination: 0,
                duration_ms: 0,
                how: format!("the client did not open the forwarded channel: {e}"),
            };
            live.record_best_effort(None, event).await;
        }
    }
}
