//! The `[metrics] listen` endpoint: Prometheus scrapes `GET /metrics`.
//!
//! Invariant: a scraper gets the metrics and nothing else; a request is
//! read within [`REQUEST_TIMEOUT`] and [`MAX_REQUEST_BYTES`] or dropped,
//! anything but `GET /metrics` gets a 404, and every connection is closed
//! after one answer, so a slow or hostile peer holds one task briefly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::ServerContext;
use crate::metrics::metrics;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REQUEST_BYTES: usize = 8 * 1024;
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` (a failure stops the start, like the SSH listener's).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Answers scrapes for as long as the server runs.
pub async fn serve(ctx: Arc<ServerContext>, listener: TcpListener) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(&ctx, socket)).await;
        });
    }
}

async fn answer(ctx: &ServerContext, mut socket: TcpStream) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut chunk).await?;
        if n == 0 || request.len() + n > MAX_REQUEST_BYTES {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let line = request.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|b| *b == b' ');
    let (method, path) = (words.next(), words.next());
    let response = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => {
            let body = scrape(ctx);
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        }
        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
    };
    socket.write_all(response.as_bytes()).await?;
    socket.shutdown().await
}

/// The gauges read now (session channels count themselves), then
/// everything encoded.
fn scrape(ctx: &ServerContext) -> String {
    let m = metrics();
    let live = ctx.live.live_count();
    m.live_sessions.set(i64::try_from(live).unwrap_or(i64::MAX));
    m.writer_queue
        .set(i64::try_from(ctx.store.queue_depth()).unwrap_or(i64::MAX));
    m.store_healthy.set(i64::from(ctx.store.is_healthy()));
    m.encode()
}
