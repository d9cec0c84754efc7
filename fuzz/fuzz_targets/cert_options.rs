//! Any critical options and extensions: `CertScope::from_cert` never panics,
//! refuses every unknown critical option, and keeps every known one.
//!
//! Input: `critical 0xFF extensions`, each an options map (see src/lib.rs).
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use portcullis::cert::options::{
    EXEC_OPTION, FORCE_COMMAND, OPEN_OPTION, PERMIT_PORT_FORWARDING, PERMIT_PTY, SOURCE_ADDRESS,
};
use portcullis::cert::{CertRefusal, CertScope};
use portcullis::policy::CommandLine;
use portcullis_fuzz::{fields, options};

const KNOWN: [&str; 4] = [EXEC_OPTION, OPEN_OPTION, FORCE_COMMAND, SOURCE_ADDRESS];

fuzz_target!(|data: &[u8]| {
    let [critical, extensions] = fields::<2>(data).map(options);
    let unknown = critical.keys().any(|name| !KNOWN.contains(&name.as_str()));
    match CertScope::from_cert(&critical, &extensions) {
        Ok(scope) => {
            assert!(
                !unknown,
                "an unknown critical option was dropped: {critical:?}"
            );
            // A restriction the cert carries is never silently lost.
            assert_eq!(scope.exec.is_some(), critical.contains_key(EXEC_OPTION));
            assert_eq!(scope.open.is_some(), critical.contains_key(OPEN_OPTION));
            assert_eq!(
                scope.force_command.as_ref(),
                critical.get(FORCE_COMMAND),
                "force-command"
            );
            assert_eq!(
                scope.source_address.is_some(),
                critical.contains_key(SOURCE_ADDRESS)
            );
            assert_eq!(scope.permit_pty, extensions.contains_key(PERMIT_PTY));
            assert_eq!(
                scope.permit_port_forwarding,
                extensions.contains_key(PERMIT_PORT_FORWARDING)
            );
            if let Some(exec) = &scope.exec {
                for command in ["uptime", "a 'b c'", "x ..."] {
                    if let Ok(line) = CommandLine::parse(command) {
                        exec.matches_any(&line);
                    }
                }
            }
            for cidr in scope.source_address.iter().flatten() {
                for peer in ["127.0.0.1", "::1", "::ffff:10.0.0.1", "0.0.0.0", "fe80::1"] {
                    if let Ok(ip) = peer.parse::<IpAddr>() {
                        cidr.contains(ip);
                    }
                }
            }
        }
        Err(refusal) => {
            if let CertRefusal::UnknownCriticalOption(name) = &refusal {
                assert!(!KNOWN.contains(&name.as_str()), "{name:?} is known");
            }
            // One line for the client's terminal and the audit row.
            assert!(!refusal.to_string().contains('\n'), "{refusal:?}");
        }
    }
});
