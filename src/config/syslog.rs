//! `[syslog]`: where `serve` forwards each chained event as an RFC 5424
//! message. Off unless `address` is set.

use std::path::PathBuf;

use serde::Deserialize;

/// How messages reach the syslog receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogTransport {
    /// One datagram per event to `host:port`.
    Udp(String),
    /// A stream to `host:port`, octet-counted framing (RFC 6587).
    Tcp(String),
    /// One datagram per event on a local socket such as `/dev/log`.
    Unix(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    pub transport: SyslogTransport,
    /// The RFC 5424 facility code (`auth` is 4).
    pub facility: u8,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SyslogFile {
    address: Option<String>,
    facility: Option<String>,
}

const FACILITIES: [(&str, u8); 12] = [
    ("user", 1),
    ("daemon", 3),
    ("auth", 4),
    ("authpriv", 10),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

impl SyslogFile {
    pub(super) fn resolve(&self) -> Result<Option<SyslogTarget>, String> {
        let Some(address) = &self.address else {
            if self.facility.is_some() {
                return Err("[syslog] facility is set but address is not".into());
            }
            return Ok(None);
        };
        let facility = match &self.facility {
            None => 4,
            Some(name) => FACILITIES
                .iter()
                .find(|(known, _)| known == name)
                .map(|(_, code)| *code)
                .ok_or_else(|| {
                    let names: Vec<&str> = FACILITIES.iter().map(|(n, _)| *n).collect();
                    format!("[syslog] facility = {name:?}: one of {}", names.join(", "))
                })?,
        };
        Ok(Some(SyslogTarget {
            transport: parse_address(address)?,
            facility,
        }))
    }
}

fn parse_address(address: &str) -> Result<SyslogTransport, String> {
    let invalid = || {
        format!(
            "[syslog] address = {address:?}: use \"udp:HOST:PORT\", \"tcp:HOST:PORT\" \
             or \"unix:/dev/log\""
        )
    };
    let (scheme, rest) = address.split_once(':').ok_or_else(invalid)?;
    let host_port = || match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(rest.to_string())
        }
        _ => Err(invalid()),
    };
    match scheme {
        "udp" => host_port().map(SyslogTransport::Udp),
        "tcp" => host_port().map(SyslogTransport::Tcp),
        "unix" if rest.starts_with('/') => Ok(SyslogTransport::Unix(PathBuf::from(rest))),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(address: &str, facility: Option<&str>) -> Result<Option<SyslogTarget>, String> {
        SyslogFile {
            address: Some(address.into()),
            facility: facility.map(Into::into),
        }
        .resolve()
    }

    #[test]
    fn addresses_name_their_transport() {
        let udp = resolve("udp:127.0.0.1:514", None);
        assert_eq!(
            udp,
            Ok(Some(SyslogTarget {
                transport: SyslogTransport::Udp("127.0.0.1:514".into()),
                facility: 4
            }))
        );
        let tcp = resolve("tcp:[::1]:6514", Some("local3")).ok().flatten();
        assert_eq!(
            tcp.map(|t| (t.transport, t.facility)),
            Some((SyslogTransport::Tcp("[::1]:6514".into()), 19))
        );
        let unix = resolve("unix:/dev/log", None).ok().flatten();
        assert_eq!(
            unix.map(|t| t.transport),
            Some(SyslogTransport::Unix("/dev/log".into()))
        );
    }

    #[test]
    fn bad_addresses_and_facilities_are_refused() {
        for bad in [
            "127.0.0.1:514",
            "udp:127.0.0.1",
            "udp::514",
            "tcp:h:0",
            "unix:dev/log",
            "http:x:1",
        ] {
            assert!(resolve(bad, None).is_err(), "{bad}");
        }
        assert!(resolve("udp:h:514", Some("kern")).is_err());
        let facility_only = SyslogFile {
            address: None,
            facility: Some("auth".into()),
        };
        assert!(facility_only.resolve().is_err());
    }
}
