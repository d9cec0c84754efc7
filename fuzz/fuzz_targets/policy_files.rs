//! Any text for the three policy files: the loader never panics, a loaded
//! policy has no dangling reference, and every problem names one of the
//! three files and a line inside it.
//!
//! Input: `targets.toml 0xFF roles.toml 0xFF identities.toml`.
#![no_main]

use std::path::Path;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use portcullis::policy::{Approval, Policy, RoleClaim};
use portcullis_fuzz::{fields, text};

const FILES: [&str; 3] = ["targets.toml", "roles.toml", "identities.toml"];

fuzz_target!(|data: &[u8]| {
    let texts = fields::<3>(data).map(text);
    let dir = Path::new("/etc/portcullis/policy");
    match Policy::parse(dir, &texts[0], &texts[1], &texts[2]) {
        Ok(policy) => {
            for role in policy.roles.values() {
                for target in &role.targets {
                    assert!(policy.targets.contains_key(target), "{target:?}");
                }
                assert!(role.max_ttl > Duration::ZERO, "{role:?}");
            }
            for identity in policy.identities.values() {
                for role in &identity.roles {
                    assert!(policy.roles.contains_key(role), "{role:?}");
                }
                for target in policy.targets.keys() {
                    for lifetime in [1, 600, u64::MAX] {
                        let lifetime = Duration::from_secs(lifetime);
                        let unnamed =
                            policy.ceiling(&identity.name, target, lifetime, RoleClaim::Unnamed);
                        // Unnamed: the auto-approved roles only.
                        if let Ok(ceiling) = unnamed {
                            for role in ceiling.roles() {
                                assert_eq!(policy.roles[role].approval, Approval::Auto, "{role}");
                            }
                        }
                        for role in &identity.roles {
                            if let Ok(ceiling) = policy.ceiling(
                                &identity.name,
                                target,
                                lifetime,
                                RoleClaim::Named(role),
                            ) {
                                assert_eq!(ceiling.roles(), [role.clone()]);
                            }
                        }
                    }
                }
            }
        }
        Err(errors) => {
            assert!(!errors.errors.is_empty());
            for error in &errors.errors {
                let index = FILES
                    .iter()
                    .position(|name| error.file == dir.join(name))
                    .unwrap_or_else(|| panic!("problem in an unknown file: {error}"));
                if let Some(line) = error.line {
                    let lines = texts[index].split('\n').count();
                    assert!(
                        line >= 1 && line <= lines,
                        "{error} (file has {lines} lines)"
                    );
                }
                assert!(!error.message.contains('\n'), "{error:?}");
            }
            let _ = errors.to_string();
        }
    }
});
