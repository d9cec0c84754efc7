//! Forward decisions: may this session open a TCP connection to `host:port`
//! from the bastion, and to which exact address.
//!
//! Invariant: a [`ForwardDecision`] is only made here and names one socket
//! address. It exists only when the certificate carries
//! `permit-port-forwarding`, the literal `host:port` the client asked for
//! matches the cert's `open@portcullis` (for an explicit cert) and a role's
//! `open`, and the address is not loopback, link-local, unspecified,
//! multicast, broadcast or one of the bastion host's own addresses, unless
//! both lists name that address literally. A name is resolved once, here;
//! the proxy connects to exactly the address decided, so a later DNS answer
//! cannot redirect it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::Scope;
use crate::policy::is_host_char;

const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest host name accepted (DNS's limit).
const MAX_HOST_LEN: usize = 253;

/// A forward that may be made: where the client asked to go and the one
/// address the bastion connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardDecision {
    host: String,
    port: u16,
    address: SocketAddr,
}

impl ForwardDecision {
    /// The host as the client asked for it.
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The address the bastion connects to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

/// Why a forward is refused; one line for the audit row and the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardRefusal {
    #[error("the certificate does not carry permit-port-forwarding")]
    NotPermitted,
    #[error("port {0} is not a TCP port")]
    BadPort(u32),
    #[error("host {0:?} is not an IP address or a host name")]
    BadHost(String),
    #[error("host {0:?} looks numeric but is not a plain IP address; ask for the address itself")]
    NumericName(String),
    #[error("destination {0} is not allowed by the certificate's open@portcullis")]
    NotInCert(String),
    #[error(
        "destination {destination} is not allowed by the policy for identity {identity} on target {target}"
    )]
    NotInPolicy {
        destination: String,
        identity: String,
        target: String,
    },
    #[error("cannot resolve {host}: {reason}")]
    Unresolvable { host: String, reason: String },
    #[error(
        "{host} is {address}, a loopback, link-local, unspecified or bastion-local address that the scope does not list literally"
    )]
    SpecialAddress { host: String, address: IpAddr },
}

impl Scope {
    /// Decides a direct-tcpip request (`ssh -L`, `-W`, `-J`): the pattern
    /// checks, then (for a name) one resolution, then the address check.
    pub async fn decide_forward(
        &self,
        host: &str,
        port: u32,
    ) -> Result<ForwardDecision, ForwardRefusal> {
        let (host, port, literal) = self.check_destination(host, port)?;
        let candidates = match literal {
            Some(addr) => vec![addr],
            None => resolve(&host, port).await?,
        };
        let address = self.choose_address(&host, port, &candidates)?;
        Ok(ForwardDecision {
            host,
            port,
            address: SocketAddr::new(address, port),
        })
    }

    /// The pattern stage: the grant, the shape of the request, and both
    /// pattern lists. Returns the host without brackets, the port, and the
    /// address when the host is an IP literal.
    pub(super) fn check_destination(
        &self,
        host: &str,
        port: u32,
    ) -> Result<(String, u16, Option<IpAddr>), ForwardRefusal> {
        if !self.permit_port_forwarding {
            return Err(ForwardRefusal::NotPermitted);
        }
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or(ForwardRefusal::BadPort(port))?;
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let literal = bare.parse::<IpAddr>().ok().map(|a| a.to_canonical());
        if literal.is_none() {
            check_name(bare)?;
        }
        let destination = match literal {
            Some(IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
            _ => format!("{bare}:{port}"),
        };
        if let Some(cert_open) = &self.cert_open {
            if !cert_open.matches_any(bare, port) {
                return Err(ForwardRefusal::NotInCert(destination));
            }
        }
        if !self.ceiling.open().matches_any(bare, port) {
            return Err(ForwardRefusal::NotInPolicy {
                destination,
                identity: self.identity.clone(),
                target: self.ceiling.target().name.clone(),
            });
        }
        Ok((bare.to_owned(), port, literal))
    }

    /// The address stage: the first candidate that is an ordinary address,
    /// or a special one that both lists name literally.
    pub(super) fn choose_address(
        &self,
        host: &str,
        port: u16,
        candidates: &[IpAddr],
    ) -> Result<IpAddr, ForwardRefusal> {
        let listed = |addr: IpAddr| {
            self.ceiling.open().lists_address(addr, port)
                && self
                    .cert_open
                    .as_ref()
                    .is_none_or(|c| c.lists_address(addr, port))
        };
        let mut refused = None;
        for addr in candidates.iter().map(|a| a.to_canonical()) {
            if !(is_special(addr) || is_own_address(addr)) || listed(addr) {
                return Ok(addr);
            }
            refused.get_or_insert(addr);
        }
        Err(match refused {
            Some(address) => ForwardRefusal::SpecialAddress {
                host: host.to_owned(),
                address,
            },
            None => ForwardRefusal::Unresolvable {
                host: host.to_owned(),
                reason: "no address".to_owned(),
            },
        })
    }
}

/// A host name: host characters only, and not a number in disguise
/// (`127.1`, `2130706433`, `0x7f.1` are addresses to the resolver but are
/// not written as one; a DNS name's last label is never numeric).
fn check_name(host: &str) -> Result<(), ForwardRefusal> {
    if host.is_empty() || host.len() > MAX_HOST_LEN || !host.chars().all(is_host_char) {
        return Err(ForwardRefusal::BadHost(host.chars().take(80).collect()));
    }
    let last = host.trim_end_matches('.').rsplit('.').next().unwrap_or("");
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || (last.len() > 2
            && last[..2].eq_ignore_ascii_case("0x")
            && last[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    if numeric {
        return Err(ForwardRefusal::NumericName(host.to_owned()));
    }
    Ok(())
}

/// Addresses a forward must not reach by accident: the bastion itself,
/// the local link (cloud metadata lives there), "any", and group addresses.
pub fn is_special(addr: IpAddr) -> bool {
    match addr.to_canonical() {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Whether `addr` is one of the bastion host's own addresses (any
/// interface): a forward there reaches the bastion's own services like
/// loopback does. Asked of the kernel at decision time, so addresses added
/// later count too: only an address of this host can be bound. A host that
/// lets any address be bound (`ip_nonlocal_bind`) thus refuses every
/// unlisted forward, which fails closed.
fn is_own_address(addr: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(addr, 0)).is_ok()
}

async fn resolve(host: &str, port: u16) -> Result<Vec<IpAddr>, ForwardRefusal> {
    let unresolvable = |reason: String| ForwardRefusal::Unresolvable {
        host: host.to_owned(),
        reason,
    };
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => Ok(addrs.map(|a| a.ip()).collect()),
        Ok(Err(e)) => Err(unresolvable(e.to_string())),
        Err(_) => Err(unresolvable("timed out".to_owned())),
    }
}
