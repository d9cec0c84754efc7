//! Turning the raw files into checked policy values, one file at a time.
//!
//! Invariant: every problem is recorded (never just the first), and an
//! entry is kept under its written name even when it has problems, so that
//! references to it from other files are not reported as unknown too; the
//! loader discards the whole policy whenever anything was recorded.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use russh::keys::HashAlg;
use toml::Spanned;

use crate::policy::duration::parse_duration;
use crate::policy::load::Problems;
use crate::policy::open::{ListenAddress, OpenPattern, OpenPatternSet};
use crate::policy::paths::{PathPattern, PathScope};
use crate::policy::pattern::{CommandPattern, PatternSet};
use crate::policy::raw::{IdentitiesFile, Name, RawRole, RawTarget, RolesFile, TargetsFile};
use crate::policy::syntax::{check_address, check_name, check_public_key};
use crate::policy::{
    Approval, Approver, ChannelGrants, Identity, Review, Role, Target, UpstreamAuth,
    RESERVED_LOGIN, REVIEW_LOGIN,
};

pub(crate) fn check_targets(
    raw: TargetsFile,
    dir: &Path,
    problems: &mut Problems<'_>,
) -> BTreeMap<String, Target> {
    let mut targets = BTreeMap::new();
    for (name, target) in raw.targets {
        check_entry_name("target", &name, problems);
        if name.get_ref() == RESERVED_LOGIN {
            problems.at(
                name.span(),
                format!(
                    "target name \"{RESERVED_LOGIN}\" is reserved for the bastion's request flow"
                ),
            );
        }
        if name.get_ref() == REVIEW_LOGIN {
            problems.at(
                name.span(),
                format!("target name \"{REVIEW_LOGIN}\" is reserved for the web viewer's sign-in"),
            );
        }
        let checked = check_target(name.get_ref(), target, dir, problems);
        targets.insert(name.into_inner(), checked);
    }
    targets
}

fn check_target(name: &str, raw: RawTarget, dir: &Path, problems: &mut Problems<'_>) -> Target {
    let about = |message: String| format!("target {name:?}: {message}");
    if let Err(message) = check_address(raw.address.get_ref()) {
        problems.at(raw.address.span(), about(message));
    }
    if let Err(message) = check_name(raw.user.get_ref()) {
        problems.at(raw.user.span(), about(format!("user: {message}")));
    }
    let host_key =
        raw.host_key
            .as_ref()
            .and_then(|host_key| match check_public_key(host_key.get_ref()) {
                Ok(key) => Some(key),
                Err(message) => {
                    problems.at(host_key.span(), about(format!("host_key {message}")));
                    None
                }
            });
    let auth = match (
        raw.auth.as_ref().map(|a| a.get_ref().as_str()),
        &raw.key_file,
    ) {
        (None | Some("certificate"), None) => UpstreamAuth::Certificate,
        (None | Some("certificate"), Some(key_file)) => {
            problems.at(
                key_file.span(),
                about("key_file is only used with auth = \"key\"".to_owned()),
            );
            UpstreamAuth::Certificate
        }
        (Some("key"), Some(key_file)) if !key_file.get_ref().is_empty() => {
            UpstreamAuth::KeyFile(resolve(dir, key_file.get_ref()))
        }
        (Some("key"), _) => {
            let span = raw
                .key_file
                .as_ref()
                .or(raw.auth.as_ref())
                .map(Spanned::span);
            problems.at(
                span.unwrap_or_default(),
                about("auth = \"key\" needs key_file = \"path/to/private_key\"".to_owned()),
            );
            UpstreamAuth::Certificate
        }
        (Some(other), _) => {
            let span = raw.auth.as_ref().map(Spanned::span).unwrap_or_default();
            problems.at(
                span,
                about(format!("auth {other:?} is not \"certificate\" or \"key\"")),
            );
            UpstreamAuth::Certificate
        }
    };
    Target {
        name: name.to_owned(),
        address: raw.address.into_inner(),
        user: raw.user.into_inner(),
        host_key,
        auth,
    }
}

/// Key files are relative to the policy directory; made absolute so the
/// path means the same whatever the bastion's working directory is.
fn resolve(dir: &Path, key_file: &str) -> std::path::PathBuf {
    let joined = dir.join(key_file);
    std::path::absolute(&joined).unwrap_or(joined)
}

pub(crate) fn check_roles(
    raw: RolesFile,
    targets: Option<&BTreeMap<String, Target>>,
    problems: &mut Problems<'_>,
) -> BTreeMap<String, Role> {
    let mut roles = BTreeMap::new();
    for (name, role) in raw.roles {
        check_entry_name("role", &name, problems);
        let checked = check_role(name.get_ref(), role, targets, problems);
        roles.insert(name.into_inner(), checked);
    }
    roles
}

fn check_role(
    name: &str,
    raw: RawRole,
    known_targets: Option<&BTreeMap<String, Target>>,
    problems: &mut Problems<'_>,
) -> Role {
    let about = |message: String| format!("role {name:?}: {message}");
    let channels = check_channels(&raw, problems, &about);
    let mut targets = Vec::new();
    for target in raw.targets {
        // Without a readable targets.toml there is nothing to check against.
        if known_targets.is_some_and(|known| !known.contains_key(target.get_ref())) {
            let message = format!("target {:?} is not in targets.toml", target.get_ref());
            problems.at(target.span(), about(message));
        }
        if !targets.contains(target.get_ref()) {
            targets.push(target.into_inner());
        }
    }
    let mut exec = PatternSet::new();
    for pattern in &raw.exec {
        match CommandPattern::parse(pattern.get_ref()) {
            Ok(parsed) => exec.push(parsed),
            Err(error) => problems.at(pattern.span(), about(format!("exec: {error}"))),
        }
    }
    let mut ask = PatternSet::new();
    for pattern in &raw.ask {
        match CommandPattern::parse(pattern.get_ref()) {
            Ok(parsed) => ask.push(parsed),
            Err(error) => problems.at(pattern.span(), about(format!("ask: {error}"))),
        }
    }
    let mut open = OpenPatternSet::default();
    for pattern in &raw.open {
        match OpenPattern::parse(pattern.get_ref()) {
            Ok(parsed) => open.push(parsed),
            Err(message) => problems.at(pattern.span(), about(message)),
        }
    }
    let max_ttl = parse_duration(raw.max_ttl.get_ref()).unwrap_or_else(|error| {
        let message = format!("max_ttl {:?}: {error}", raw.max_ttl.get_ref());
        problems.at(raw.max_ttl.span(), about(message));
        Duration::ZERO
    });
    let approval = match raw.approval.as_ref().map(|a| a.get_ref().as_str()) {
        None | Some("manual") => Approval::Manual,
        Some("auto") => Approval::Auto,
        Some(other) => {
            let span = raw.approval.as_ref().map(Spanned::span).unwrap_or_default();
            let message = format!("approval {other:?} is not \"auto\" or \"manual\"");
            problems.at(span, about(message));
            Approval::Manual
        }
    };
    Role {
        name: name.to_owned(),
        targets,
        exec,
        ask,
        open,
        pty: raw.pty,
        max_ttl,
        approval,
        single_session: raw.single_session,
        channels,
    }
}

/// `sftp`, `sftp_paths`, `listen` and `capture`.
fn check_channels(
    raw: &RawRole,
    problems: &mut Problems<'_>,
    about: &dyn Fn(String) -> String,
) -> ChannelGrants {
    let mut paths = Vec::new();
    for path in &raw.sftp_paths {
        match PathPattern::parse(path.get_ref()) {
            Ok(parsed) => paths.push(parsed),
            Err(message) => problems.at(path.span(), about(message)),
        }
    }
    if !raw.sftp {
        if let Some(first) = raw.sftp_paths.first() {
            let message = "sftp_paths is only used with sftp = true".to_owned();
            problems.at(first.span(), about(message));
        }
    }
    let mut listen = Vec::new();
    for address in &raw.listen {
        match ListenAddress::parse(address.get_ref()) {
            Ok(parsed) => listen.push(parsed),
            Err(message) => problems.at(address.span(), about(message)),
        }
    }
    ChannelGrants {
        sftp: raw.sftp.then(|| PathScope::new(paths)),
        listen,
        capture: raw.capture,
    }
}

pub(crate) fn check_identities(
    raw: IdentitiesFile,
    known_roles: Option<&BTreeMap<String, Role>>,
    problems: &mut Problems<'_>,
) -> BTreeMap<String, Identity> {
    let mut identities = BTreeMap::new();
    // A key held by two identities would make the holder ambiguous when it
    // logs in to request a grant.
    let mut key_holders: HashMap<String, String> = HashMap::new();
    for (name, raw_identity) in raw.identities {
        check_entry_name("identity", &name, problems);
        let about = |message: String| format!("identity {:?}: {message}", name.get_ref());
        let mut keys = Vec::new();
        for key in raw_identity.keys {
            match check_public_key(key.get_ref()) {
                Ok(parsed) => {
                    let id = parsed.fingerprint(HashAlg::Sha256).to_string();
                    match key_holders.get(&id) {
                        Some(holder) if holder != name.get_ref() => {
                            let message = format!("key is already held by identity {holder:?}");
                            problems.at(key.span(), about(message));
                        }
                        _ => {
                            key_holders.insert(id, name.get_ref().clone());
                        }
                    }
                    keys.push(parsed);
                }
                Err(message) => problems.at(key.span(), about(format!("key {message}"))),
            }
        }
        let mut roles = Vec::new();
        for role in raw_identity.roles {
            if known_roles.is_some_and(|known| !known.contains_key(role.get_ref())) {
                let message = format!("role {:?} is not in roles.toml", role.get_ref());
                problems.at(role.span(), about(message));
            }
            if !roles.contains(role.get_ref()) {
                roles.push(role.into_inner());
            }
        }
        let name_span = name.span();
        let name = name.into_inner();
        let review = match raw_identity.review {
            true => Review::Allowed,
            false => Review::Denied,
        };
        let approve = match (raw_identity.approve, review) {
            (false, _) => Approver::Denied,
            (true, Review::Allowed) => Approver::Allowed,
            (true, Review::Denied) => {
                let message = format!(
                    "identity {:?}: approve = true needs review = true (approvals are made in the web viewer)",
                    name
                );
                problems.at(name_span, message);
                Approver::Denied
            }
        };
        let identity = Identity {
            name: name.clone(),
            keys,
            roles,
            review,
            approve,
        };
        identities.insert(name, identity);
    }
    identities
}

fn check_entry_name(kind: &str, name: &Name, problems: &mut Problems<'_>) {
    if let Err(message) = check_name(name.get_ref()) {
        problems.at(name.span(), format!("{kind} {message}"));
    }
}
