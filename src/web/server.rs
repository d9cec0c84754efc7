//! The accept loop: hyper's HTTP/1 with the limits axum::serve does not
//! expose. A peer may hold a connection only so long, send headers only
//! so slowly and so large, and only so many peers are served at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// The whole life of one connection (keep-alive is off: one request).
const CONNECTION_TIME: Duration = Duration::from_secs(30);
/// A request's head must arrive within this.
const HEADER_TIME: Duration = Duration::from_secs(10);
/// The read buffer, which bounds a request's head.
const MAX_HEAD_BYTES: usize = 16 * 1024;

pub async fn serve(listen: SocketAddr, app: Router) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("web: listening on {listen}"))?;
    tracing::info!(%listen, "web viewer listening (plain HTTP)");
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = slots.clone().acquire_owned().await?;
        let (stream, _peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "web: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIME)
                .max_buf_size(MAX_HEAD_BYTES)
                .keep_alive(false);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIME, conn).await;
            drop(permit);
        });
    }
}
