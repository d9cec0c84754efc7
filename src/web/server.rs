//! The accept loop: hyper's HTTP/1 with the limits axum::serve does not
//! expose, over TLS when configured. A peer may hold a connection only so
//! long, finish a TLS handshake and send headers only so slowly and so
//! large, and only so many peers are served at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// The whole life of one connection, handshake included (keep-alive is
/// off: one request).
const CONNECTION_TIME: Duration = Duration::from_secs(30);
/// A TLS handshake, and then a request's head, must each arrive within
/// this: a silent socket gives its slot back soon.
const HEADER_TIME: Duration = Duration::from_secs(10);
/// The read buffer, which bounds a request's head.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// A bound listener: binding is part of starting, so a taken port fails
/// the start rather than a background task.
pub struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl Listener {
    pub async fn bind(listen: SocketAddr, tls: Option<TlsAcceptor>) -> anyhow::Result<Listener> {
        let tcp = TcpListener::bind(listen)
            .await
            .with_context(|| format!("web: listening on {listen}"))?;
        Ok(Listener { tcp, tls })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves `app` until the process stops.
    pub async fn serve(self, app: Router) -> anyhow::Result<()> {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let permit = slots.clone().acquire_owned().await?;
            let (stream, peer) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "web: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let service = TowerToHyperService::new(app.clone());
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let served = async {
                    match tls {
                        None => serve_connection(stream, service).await,
                        Some(acceptor) => {
                            let handshake = acceptor.accept(stream);
                            match tokio::time::timeout(HEADER_TIME, handshake).await {
                                Ok(Ok(stream)) => serve_connection(stream, service).await,
                                // rustls's errors name the protocol fault only.
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "web: TLS handshake failed")
                                }
                                Err(_) => tracing::debug!(%peer, "web: TLS handshake timed out"),
                            }
                        }
                    }
                };
                let _ = tokio::time::timeout(CONNECTION_TIME, served).await;
                drop(permit);
            });
        }
    }
}

/// One request on `io` (plain TCP or TLS), within the header bounds.
async fn serve_connection<I>(io: I, service: TowerToHyperService<Router>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIME)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(false);
    let _ = builder.serve_connection(TokioIo::new(io), service).await;
}
