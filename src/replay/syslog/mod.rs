//! `[syslog]`: `serve` forwards every chained event committed while it runs
//! (by the server or by any CLI against the same store) to a syslog
//! receiver, one RFC 5424 message per event.
//!
//! Invariant: forwarding reads the store like `events --follow`, on its own
//! thread, so a slow or absent receiver delays no session; events go out
//! in sequence order, each at least once (a failed send is retried after a
//! back-off, never skipped), except a message the transport cannot carry
//! at all, which is logged and skipped. Each message carries the event's
//! `seq`, so a receiver can see a gap and fill it with `events --after`.

mod message;

#[cfg(test)]
mod tests;

use std::io::{self, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use crate::audit::Reader;
use crate::config::{SyslogTarget, SyslogTransport};
pub use message::{format_message, Origin};

/// How often the store is read for new events.
const POLL: Duration = Duration::from_millis(200);
/// Events read per query.
const PAGE: usize = 1000;
/// Back-off after a failed send: doubles from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_LAST: Duration = Duration::from_secs(30);
/// How long a connect or a stream write may take.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The sequence number forwarding starts after: the store's last event
/// now (0 for a store not made yet), so what is committed from the
/// server's start on goes out.
pub fn start_point(store: &std::path::Path) -> i64 {
    Reader::open(store)
        .and_then(|reader| reader.last_seq())
        .unwrap_or(0)
}

/// Starts the forwarding thread; it runs until the process exits.
pub fn spawn(store: PathBuf, target: SyslogTarget, after: i64) -> io::Result<()> {
    let origin = Origin::this_process();
    thread::Builder::new()
        .name("syslog".into())
        .spawn(move || forward(&store, &target, &origin, after))
        .map(drop)
}

fn forward(store: &std::path::Path, target: &SyslogTarget, origin: &Origin, mut after: i64) {
    let mut reader = None;
    let mut link = Link::new(target.transport.clone());
    loop {
        if reader.is_none() {
            reader = Reader::open(store).ok();
        }
        let page = match reader.as_ref().map(|r| r.events_after(after, None, PAGE)) {
            Some(Ok(page)) => page,
            Some(Err(error)) => {
                tracing::warn!(%error, "syslog: reading the store failed; retrying");
                reader = None;
                Vec::new()
            }
            None => Vec::new(),
        };
        for event in &page {
            let message = format_message(event, target.facility, origin);
            link.deliver(&message);
            after = event.seq;
        }
        if page.len() < PAGE {
            thread::sleep(POLL);
        }
    }
}

/// The connection to the receiver, made again after a failure.
struct Link {
    transport: SyslogTransport,
    open: Option<Sender>,
    failing: bool,
}

enum Sender {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Unix(UnixDatagram),
}

impl Link {
    fn new(transport: SyslogTransport) -> Link {
        Link {
            transport,
            open: None,
            failing: false,
        }
    }

    /// Sends `message`, retrying with a back-off until it goes out (or
    /// cannot ever go out).
    fn deliver(&mut self, message: &[u8]) {
        let mut wait = RETRY_FIRST;
        loop {
            match self.send(message) {
                Ok(()) => {
                    if std::mem::take(&mut self.failing) {
                        tracing::info!("syslog: the receiver takes messages again");
                    }
                    return;
                }
                Err(error)
                    if error.raw_os_error() == Some(rustix::io::Errno::MSGSIZE.raw_os_error()) =>
                {
                    tracing::warn!(
                        bytes = message.len(),
                        "syslog: message too large for the transport; skipped"
                    );
                    return;
                }
                Err(error) => {
                    if !std::mem::replace(&mut self.failing, true) {
                        tracing::warn!(%error, "syslog: sending failed; retrying with a back-off");
                    }
                    self.open = None;
                    thread::sleep(wait);
                    wait = (wait * 2).min(RETRY_LAST);
                }
            }
        }
    }

    fn send(&mut self, message: &[u8]) -> io::Result<()> {
        if self.open.is_none() {
            self.open = Some(connect(&self.transport)?);
        }
        match self.open.as_mut() {
            Some(Sender::Udp(socket)) => socket.send(message).map(drop),
            Some(Sender::Unix(socket)) => socket.send(message).map(drop),
            // RFC 6587 octet counting: "LEN SP MSG".
            Some(Sender::Tcp(stream)) => {
                let mut framed = format!("{} ", message.len()).into_bytes();
                framed.extend_from_slice(message);
                stream.write_all(&framed)
            }
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

fn connect(transport: &SyslogTransport) -> io::Result<Sender> {
    match transport {
        SyslogTransport::Udp(address) => {
            let remote = resolve(address)?;
            let local = match remote.is_ipv4() {
                true => "0.0.0.0:0",
                false => "[::]:0",
            };
            let socket = UdpSocket::bind(local)?;
            socket.connect(remote)?;
            Ok(Sender::Udp(socket))
        }
        SyslogTransport::Tcp(address) => {
            let stream = TcpStream::connect_timeout(&resolve(address)?, IO_TIMEOUT)?;
            stream.set_write_timeout(Some(IO_TIMEOUT))?;
            Ok(Sender::Tcp(stream))
        }
        SyslogTransport::Unix(path) => {
            let socket = UnixDatagram::unbound()?;
            socket.connect(path)?;
            Ok(Sender::Unix(socket))
        }
    }
}

fn resolve(address: &str) -> io::Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{address}: no address")))
}
