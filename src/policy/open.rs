//! Forward patterns (`open`, `open@portcullis`) and remote-forward listen
//! addresses (`listen`).
//!
//! Invariant: a pattern's host is matched against the literal host string
//! the client asked for, never against what it resolves to. A host pattern
//! is either an IP address (matched by address equality, so `[::1]` and
//! `0:0::1` are the same) or a name glob where `*` stands for any run of
//! host-name characters; names compare ASCII case-insensitively. Whether a
//! *resolved* address may be used is decided by the scope, which asks
//! [`OpenPatternSet::lists_address`]: only a pattern whose host is that
//! literal address counts.

use std::net::IpAddr;

use super::syntax::{is_host_char, port_number, split_host_port, Host};

/// One `host:port` forward pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPattern {
    source: String,
    host: HostPattern,
    low: u16,
    high: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Address(IpAddr),
    /// Lower-cased; may contain `*`.
    Name(String),
}

impl OpenPattern {
    /// Parses `host:port`, `[v6]:port`; the port may be `n`, `a-b` or `*`.
    pub fn parse(pattern: &str) -> Result<OpenPattern, String> {
        let bad = |why: &str| {
            format!(
                "open pattern {pattern:?} {why} (e.g. 127.0.0.1:5432, db.internal:8000-8099 or *:*)"
            )
        };
        let Some((host, port)) = split_host_port(pattern) else {
            return Err(bad("is not host:port"));
        };
        let host = match host {
            Host::V6(addr) => HostPattern::Address(IpAddr::V6(addr)),
            Host::Plain(text) => {
                if text.is_empty() || !text.chars().all(|c| c == '*' || is_host_char(c)) {
                    return Err(bad("has a bad host"));
                }
                match text.parse::<IpAddr>() {
                    Ok(addr) => HostPattern::Address(addr),
                    Err(_) => HostPattern::Name(text.to_ascii_lowercase()),
                }
            }
        };
        let (low, high) = if port == "*" {
            (1, u16::MAX)
        } else {
            let (low, high) = port.split_once('-').unwrap_or((port, port));
            match (port_number(low), port_number(high)) {
                (Some(low), Some(high)) if low <= high => (low, high),
                _ => return Err(bad("has a bad port")),
            }
        };
        Ok(OpenPattern {
            source: pattern.to_owned(),
            host,
            low,
            high,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    fn port_matches(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }

    /// Whether the client's literal `host` (brackets already removed) and
    /// `port` match.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if !self.port_matches(port) {
            return false;
        }
        match &self.host {
            HostPattern::Address(addr) => host.parse::<IpAddr>().is_ok_and(|h| h == *addr),
            HostPattern::Name(glob) => glob_matches(glob.as_bytes(), host.as_bytes()),
        }
    }

    /// Whether this pattern names `addr` literally (no wildcard) for `port`.
    pub fn lists_address(&self, addr: IpAddr, port: u16) -> bool {
        self.port_matches(port) && self.host == HostPattern::Address(addr)
    }
}

/// `*` matches any run of characters; everything else compares ASCII
/// case-insensitively. The scope refuses hosts with characters outside a
/// host name before matching, so a `*` only ever spans host characters.
/// Iterative (one remembered star), so no input makes it recurse.
fn glob_matches(glob: &[u8], text: &[u8]) -> bool {
    super::star::star_matches(glob, text, |a, b| a.eq_ignore_ascii_case(&b))
}

/// A union of forward patterns (a role's, or a certificate's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenPatternSet {
    patterns: Vec<OpenPattern>,
}

impl OpenPatternSet {
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<OpenPatternSet, String> {
        let mut set = OpenPatternSet::default();
        for pattern in patterns {
            set.push(OpenPattern::parse(pattern.as_ref())?);
        }
        Ok(set)
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Adds a pattern unless the same text is already present.
    pub fn push(&mut self, pattern: OpenPattern) {
        if !self.patterns.iter().any(|p| p.source == pattern.source) {
            self.patterns.push(pattern);
        }
    }

    /// The union with `other`.
    pub fn extend(&mut self, other: &OpenPatternSet) {
        for pattern in &other.patterns {
            self.push(pattern.clone());
        }
    }

    /// Whether `pattern` is one of these, as written.
    pub fn contains(&self, pattern: &str) -> bool {
        self.patterns.iter().any(|p| p.source == pattern)
    }

    /// The patterns as written, e.g. for an `open@portcullis` JSON array.
    pub fn to_strings(&self) -> Vec<String> {
        self.patterns.iter().map(|p| p.source.clone()).collect()
    }

    pub fn matches_any(&self, host: &str, port: u16) -> bool {
        self.patterns.iter().any(|p| p.matches(host, port))
    }

    pub fn lists_address(&self, addr: IpAddr, port: u16) -> bool {
        self.patterns.iter().any(|p| p.lists_address(addr, port))
    }
}

/// A remote-forward listen address a role allows: an IP address and a
/// port, both literal (no wildcard, no port 0), because opening a listener
/// on the bastion is a larger grant than reaching one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddress {
    pub addr: IpAddr,
    pub port: u16,
}

impl ListenAddress {
    pub fn parse(text: &str) -> Result<ListenAddress, String> {
        let bad = || {
            format!(
                "listen address {text:?} is not an IP address and port (e.g. 127.0.0.1:8080 or [::1]:8080)"
            )
        };
        let (host, port) = split_host_port(text).ok_or_else(bad)?;
        let addr = match host {
            Host::V6(addr) => IpAddr::V6(addr),
            Host::Plain(text) => text.parse::<IpAddr>().map_err(|_| bad())?,
        };
        let port = port_number(port).ok_or_else(bad)?;
        Ok(ListenAddress { addr, port })
    }

    /// Whether a tcpip-forward request for `address`:`port` asks exactly
    /// for this listener (`localhost` is accepted for the loopback address,
    /// as OpenSSH's client sends it by default).
    pub fn matches(&self, address: &str, port: u32) -> bool {
        if u32::from(self.port) != port {
            return false;
        }
        match address.parse::<IpAddr>() {
            Ok(addr) => addr == self.addr,
            Err(_) => address.eq_ignore_ascii_case("localhost") && self.addr.is_loopback(),
        }
    }
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::net::SocketAddr::new(self.addr, self.port).fmt(f)
    }
}
