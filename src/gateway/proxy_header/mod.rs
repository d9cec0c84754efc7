//! The PROXY protocol (HAProxy's, v1 text and v2 binary), by which a load
//! balancer in front tells the bastion the agent's real address.
//!
//! Invariants: a header is honoured only from `trusted_proxies`, and from
//! them it is required (a connection from a trusted proxy without one is
//! refused, as is a malformed one); from any other source, a connection
//! that starts like a PROXY header is refused ([`Inbound`] sees the first
//! bytes before russh does), so no one can claim an address by sending
//! one. Parsing is bounded: v1 at most 107 bytes, v2 at most 16 + 536.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

const V1_PREFIX: &[u8] = b"PROXY ";
const V1_MAX: usize = 107;
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v2 address block accepted (HAProxy's own bound for the
/// address families it sends, with room for TLVs).
const V2_MAX_PAYLOAD: usize = 536;

/// What a trusted proxy said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The connection is relayed for this client.
    Relayed(SocketAddr),
    /// The proxy's own connection (v2 LOCAL, v1 UNKNOWN: a health check).
    Local,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("a trusted proxy sent no PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
    #[error("a PROXY protocol header from a source not in trusted_proxies")]
    Untrusted,
    #[error("reading the PROXY protocol header: {0}")]
    Io(String),
}

/// The result of looking at the first bytes of a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A whole header of this many bytes.
    Done(Header, usize),
}

/// Parses a header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Parsed, HeaderError> {
    if buf.starts_with(V1_PREFIX) {
        return parse_v1(buf);
    }
    if buf.starts_with(V2_SIGNATURE) {
        return parse_v2(buf);
    }
    match buf.is_empty() || is_prefix_of_either(buf) {
        true => Ok(Parsed::Incomplete),
        false => Err(HeaderError::Missing),
    }
}

/// Whether `first` (the first bytes of a connection) is the start of a
/// PROXY header of either version, or could still become one.
pub fn is_prefix_of_either(first: &[u8]) -> bool {
    let starts = |sig: &[u8]| {
        let n = first.len().min(sig.len());
        first[..n] == sig[..n]
    };
    !first.is_empty() && (starts(V1_PREFIX) || starts(V2_SIGNATURE))
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, HeaderError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return match buf.len() >= V1_MAX {
            true => Err(HeaderError::Malformed("v1 line longer than 107 bytes")),
            false => Ok(Parsed::Incomplete),
        };
    };
    let line = std::str::from_utf8(&buf[V1_PREFIX.len()..end])
        .map_err(|_| HeaderError::Malformed("v1 line is not text"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let header = match fields.as_slice() {
        ["UNKNOWN", ..] => Header::Local,
        [family @ ("TCP4" | "TCP6"), source, _destination, port, _destination_port] => {
            let ip: IpAddr = source
                .parse()
                .map_err(|_| HeaderError::Malformed("v1 source address"))?;
            if (*family == "TCP4") != ip.is_ipv4() {
                return Err(HeaderError::Malformed("v1 address family"));
            }
            let port = parse_port(port)?;
            Header::Relayed(SocketAddr::new(ip, port))
        }
        _ => return Err(HeaderError::Malformed("v1 fields")),
    };
    Ok(Parsed::Done(header, end + 2))
}

/// A decimal port as v1 writes it: digits only, no sign or leading zero.
fn parse_port(text: &str) -> Result<u16, HeaderError> {
    let bad = HeaderError::Malformed("v1 port");
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err(bad);
    }
    text.parse().map_err(|_| bad)
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, HeaderError> {
    if buf.len() < 16 {
        return Ok(Parsed::Incomplete);
    }
    let version_command = buf[12];
    let family = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if version_command >> 4 != 2 {
        return Err(HeaderError::Malformed("v2 version"));
    }
    if len > V2_MAX_PAYLOAD {
        return Err(HeaderError::Malformed("v2 address block too long"));
    }
    if buf.len() < 16 + len {
        return Ok(Parsed::Incomplete);
    }
    let payload = &buf[16..16 + len];
    let header = match version_command & 0x0f {
        0x0 => Header::Local,
        0x1 => match family {
            // TCP over IPv4: source, destination, source port, destination port.
            0x11 => {
                let a = payload
                    .get(..12)
                    .ok_or(HeaderError::Malformed("v2 IPv4 block"))?;
                let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
                Header::Relayed(SocketAddr::new(ip.into(), u16::from_be_bytes([a[8], a[9]])))
            }
            0x21 => {
                let a = payload
                    .get(..36)
                    .ok_or(HeaderError::Malformed("v2 IPv6 block"))?;
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&a[..16]);
                let ip = Ipv6Addr::from(octets);
                Header::Relayed(SocketAddr::new(
                    ip.into(),
                    u16::from_be_bytes([a[32], a[33]]),
                ))
            }
            // UNSPEC, UDP and Unix sockets name no TCP client.
            _ => return Err(HeaderError::Malformed("v2 address family")),
        },
        _ => return Err(HeaderError::Malformed("v2 command")),
    };
    Ok(Parsed::Done(header, 16 + len))
}

/// Reads a trusted proxy's header from `stream`; returns it and the bytes
/// read past it (the start of the SSH stream).
pub async fn read_header(stream: &mut TcpStream) -> Result<(Header, Vec<u8>), HeaderError> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    loop {
        match parse(&buf)? {
            Parsed::Done(header, len) => return Ok((header, buf.split_off(len))),
            Parsed::Incomplete if buf.len() > 16 + V2_MAX_PAYLOAD => {
                return Err(HeaderError::Malformed("header too long"))
            }
            Parsed::Incomplete => {}
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| HeaderError::Io(e.to_string()))?;
        if n == 0 {
            return Err(HeaderError::Missing);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The client side of a connection as russh reads it: first the bytes read
/// past a proxy header, then the socket; for a source that is not a
/// trusted proxy, the first bytes are checked and a PROXY header is
/// refused (an error to russh, and `refused` set).
pub struct Inbound<S> {
    inner: S,
    prefix: Vec<u8>,
    at: usize,
    /// The first bytes seen, while they may still be a header.
    sniffed: Option<Vec<u8>>,
    refused: Arc<AtomicBool>,
}

impl<S> Inbound<S> {
    /// From a trusted proxy, after its header: nothing to check.
    pub fn after_header(inner: S, prefix: Vec<u8>) -> Inbound<S> {
        Inbound {
            inner,
            prefix,
            at: 0,
            sniffed: None,
            refused: Arc::new(AtomicBool::new(false)),
        }
    }

    /// From any other source: a PROXY header is refused.
    pub fn untrusted(inner: S) -> Inbound<S> {
        Inbound {
            sniffed: Some(Vec::new()),
            ..Inbound::after_header(inner, Vec::new())
        }
    }

    /// Set when the connection was cut for sending a PROXY header.
    pub fn refused_flag(&self) -> Arc<AtomicBool> {
        self.refused.clone()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Inbound<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.at);
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(sniffed)) = (&polled, &mut this.sniffed) {
            sniffed.extend_from_slice(&buf.filled()[before..]);
            if sniffed.starts_with(V1_PREFIX) || sniffed.starts_with(V2_SIGNATURE) {
                this.refused.store(true, Ordering::Relaxed);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    HeaderError::Untrusted.to_string(),
                )));
            }
            if !is_prefix_of_either(sniffed) {
                this.sniffed = None;
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Inbound<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests;
