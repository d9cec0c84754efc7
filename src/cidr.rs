//! CIDR blocks: the `source-address` critical option (a comma-separated
//! list, with OpenSSH's meaning: the client address must be in one) and
//! network lists in the config.
//!
//! Invariant: a [`Cidr`] holds a valid prefix for its family, and
//! IPv4-mapped IPv6 peers compare as the IPv4 address they carry.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr.trim().parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Cidr { network, prefix })
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, canonical(addr)) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                masked(u32::from(net) as u128, 32, self.prefix)
                    == masked(u32::from(a) as u128, 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                masked(u128::from(net), 128, self.prefix) == masked(u128::from(a), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// Parses the option value; `None` when any entry is malformed (the cert is
/// then refused, as OpenSSH does).
pub fn parse_list(value: &str) -> Option<Vec<Cidr>> {
    value.split(',').map(Cidr::parse).collect()
}

/// IPv4-mapped IPv6 peers (`::ffff:a.b.c.d`) compare as IPv4.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn masked(value: u128, bits: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let shift = u32::from(bits - prefix);
    (value >> shift) << shift
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn matches_addresses_inside_the_block_only() {
        let list = parse_list("10.0.0.0/8,127.0.0.1/32").unwrap();
        assert!(list.iter().any(|c| c.contains(ip("10.1.2.3"))));
        assert!(list.iter().any(|c| c.contains(ip("127.0.0.1"))));
        assert!(list.iter().any(|c| c.contains(ip("::ffff:127.0.0.1"))));
        assert!(!list.iter().any(|c| c.contains(ip("127.0.0.2"))));
        assert!(!list.iter().any(|c| c.contains(ip("::1"))));
    }

    #[test]
    fn ipv6_blocks_and_bare_addresses() {
        let list = parse_list("::1,fd00::/8").unwrap();
        assert!(list.iter().any(|c| c.contains(ip("::1"))));
        assert!(list.iter().any(|c| c.contains(ip("fd12::5"))));
        assert!(!list.iter().any(|c| c.contains(ip("fe80::1"))));
    }

    #[test]
    fn malformed_lists_are_rejected() {
        assert!(parse_list("10.0.0.0/33").is_none());
        assert!(parse_list("example.com").is_none());
        assert!(parse_list("").is_none());
        assert!(parse_list("10.0.0.1,").is_none());
    }
}
