//! The policy a bastion starts with.

use super::*;

/// A role in roles.toml.
#[derive(Clone, Debug)]
pub struct Role {
    pub targets: Vec<String>,
    pub exec: Vec<String>,
    /// Commands held for an operator's approval instead of refused.
    pub ask: Vec<String>,
    pub open: Vec<String>,
    pub pty: bool,
    pub max_ttl: String,
    pub approval: String,
    pub single_session: bool,
    /// `sftp = true` with these `sftp_paths` when `Some`.
    pub sftp: Option<Vec<String>>,
    pub listen: Vec<String>,
    pub capture: bool,
}

impl Role {
    /// A role on these targets that allows nothing yet; max_ttl 15m, auto approval.
    pub fn on(targets: &[&str]) -> Role {
        Role {
            targets: targets.iter().map(|t| t.to_string()).collect(),
            exec: Vec::new(),
            ask: Vec::new(),
            open: Vec::new(),
            pty: false,
            max_ttl: "15m".to_string(),
            approval: "auto".to_string(),
            single_session: false,
            sftp: None,
            listen: Vec::new(),
            capture: false,
        }
    }
    /// Forward patterns (`open`).
    pub fn open(mut self, patterns: &[&str]) -> Self {
        self.open.extend(patterns.iter().map(|p| p.to_string()));
        self
    }
    /// `sftp = true` within these paths.
    pub fn sftp(mut self, paths: &[&str]) -> Self {
        self.sftp = Some(paths.iter().map(|p| p.to_string()).collect());
        self
    }
    pub fn listen(mut self, addresses: &[&str]) -> Self {
        self.listen.extend(addresses.iter().map(|p| p.to_string()));
        self
    }
    pub fn capture(mut self, capture: bool) -> Self {
        self.capture = capture;
        self
    }
    pub fn ask(mut self, patterns: &[&str]) -> Self {
        self.ask.extend(patterns.iter().map(|p| p.to_string()));
        self
    }
    pub fn exec(mut self, patterns: &[&str]) -> Self {
        self.exec.extend(patterns.iter().map(|p| p.to_string()));
        self
    }
    pub fn approval(mut self, approval: &str) -> Self {
        self.approval = approval.to_string();
        self
    }
    pub fn max_ttl(mut self, ttl: &str) -> Self {
        self.max_ttl = ttl.to_string();
        self
    }
    pub fn pty(mut self, pty: bool) -> Self {
        self.pty = pty;
        self
    }
    pub fn single_session(mut self, single: bool) -> Self {
        self.single_session = single;
        self
    }
}

/// What a bastion starts with: its targets (each a real sshd), the roles and
/// identities of its policy, and further trusted CA public key files.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    pub targets: Vec<String>,
    pub roles: Vec<(String, Role)>,
    pub identities: Vec<(String, Vec<String>)>,
    /// Identity keys (identity name, OpenSSH public key line).
    pub identity_keys: Vec<(String, String)>,
    /// Identities with `review = true` (the web viewer's sign-in).
    pub reviewers: Vec<String>,
    /// Reviewers that also have `approve = true`.
    pub approvers: Vec<String>,
    pub trusted_ca_files: Vec<PathBuf>,
    /// `[limits]` settings: key and TOML value (`"2s"` quoted, numbers bare).
    pub limits: Vec<(String, String)>,
    /// Top-level settings of portcullis.toml, the same way.
    pub settings: Vec<(String, String)>,
    /// Settings of tables of portcullis.toml (`[ca]`, `[metrics]`): table,
    /// key and TOML value.
    pub table_settings: Vec<(String, String, String)>,
    /// Whole tables appended to portcullis.toml (`[cluster]` and the like).
    pub appended: Vec<String>,
}

impl Setup {
    /// The world most tests share: target `web1`, role `ops` on it allowing
    /// [`STANDARD_EXEC`] with max_ttl 15m, identity `agent-7` holding `ops`.
    pub fn standard() -> Setup {
        Setup::empty()
            .target(TARGET)
            .role(ROLE, Role::on(&[TARGET]).exec(STANDARD_EXEC))
            .identity(AGENT, &[ROLE])
    }

    pub fn empty() -> Setup {
        Setup::default()
    }

    /// A target backed by a fresh sshd.
    pub fn target(mut self, name: &str) -> Self {
        self.targets.push(name.to_string());
        self
    }

    /// Adds the role, or replaces the one of the same name.
    pub fn role(mut self, name: &str, role: Role) -> Self {
        self.roles.retain(|(n, _)| n != name);
        self.roles.push((name.to_string(), role));
        self
    }

    /// Changes the standard role.
    pub fn with_role(mut self, change: impl FnOnce(Role) -> Role) -> Self {
        let (_, role) = self
            .roles
            .iter_mut()
            .find(|(n, _)| n == ROLE)
            .expect("Setup::with_role needs the standard role");
        *role = change(role.clone());
        self
    }

    /// Further command patterns for the standard role.
    pub fn allow(mut self, patterns: &[&str]) -> Self {
        let (_, role) = self
            .roles
            .iter_mut()
            .find(|(n, _)| n == ROLE)
            .expect("Setup::allow needs the standard role");
        role.exec.extend(patterns.iter().map(|p| p.to_string()));
        self
    }

    pub fn identity(mut self, name: &str, roles: &[&str]) -> Self {
        self.identities.retain(|(n, _)| n != name);
        self.identities.push((
            name.to_string(),
            roles.iter().map(|r| r.to_string()).collect(),
        ));
        self
    }

    /// Sets `[limits] key = value` (a TOML value: `"\"2s\""` or `"3"`).
    pub fn limit(mut self, key: &str, value: &str) -> Self {
        self.limits.push((key.to_string(), value.to_string()));
        self
    }

    /// A `[ca]` setting of portcullis.toml (TOML value, strings quoted).
    pub fn ca_setting(self, key: &str, value: &str) -> Self {
        self.table_setting("ca", key, value)
    }

    /// A setting in `[table]` of portcullis.toml (TOML value, strings quoted).
    pub fn table_setting(mut self, table: &str, key: &str, value: &str) -> Self {
        self.table_settings
            .push((table.to_string(), key.to_string(), value.to_string()));
        self
    }

    /// A top-level setting of portcullis.toml (`"2s"` quoted, numbers bare).
    pub fn setting(mut self, key: &str, value: &str) -> Self {
        self.settings.push((key.to_string(), value.to_string()));
        self
    }

    /// Lists `key` (an OpenSSH public key line) as a key of identity `name`.
    pub fn identity_key(mut self, name: &str, key: &str) -> Self {
        self.identity_keys.push((name.to_string(), key.to_string()));
        self
    }

    /// Gives identity `name` `review = true` and `approve = true`.
    pub fn approver(mut self, name: &str) -> Self {
        self.approvers.push(name.to_string());
        self.reviewer(name)
    }

    /// Gives identity `name` `review = true` (it may sign in to the web viewer).
    pub fn reviewer(mut self, name: &str) -> Self {
        self.reviewers.push(name.to_string());
        self
    }

    /// A CA public key file to list under `[ca] trusted` (copied into the setup dir).
    pub fn trusted_ca_file(mut self, path: &Path) -> Self {
        self.trusted_ca_files.push(path.to_path_buf());
        self
    }
}

/// A TOML basic string: JSON's escapes are a subset of TOML's.
pub fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("string to JSON")
}

pub fn toml_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| toml_str(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}
