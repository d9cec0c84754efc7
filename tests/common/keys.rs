//! Keys and certificates.

use super::*;

/// A client key pair made by `ssh-keygen`: `DIR/NAME` and `DIR/NAME.pub`.
/// A certificate for it lands in `DIR/NAME-cert.pub`, which `ssh` also picks
/// up by itself: one key, one certificate.
pub struct AgentKey {
    pub private: PathBuf,
    pub public: PathBuf,
}

impl AgentKey {
    pub fn generate(dir: &Path, name: &str) -> AgentKey {
        AgentKey::generate_typed(dir, name, &["-t", "ed25519"])
    }

    /// An RSA key pair (2048 bits): what the SHA-1 checks need.
    pub fn generate_rsa(dir: &Path, name: &str) -> AgentKey {
        AgentKey::generate_typed(dir, name, &["-t", "rsa", "-b", "2048"])
    }

    fn generate_typed(dir: &Path, name: &str, kind: &[&str]) -> AgentKey {
        let private = dir.join(name);
        run_ok(
            Command::new("ssh-keygen")
                .arg("-q")
                .args(kind)
                .args(["-N", "", "-C", name, "-f"])
                .arg(&private),
            "ssh-keygen (agent key)",
        );
        AgentKey {
            public: private.with_extension("pub"),
            private,
        }
    }

    /// `ssh-keygen -l -f KEY.pub`: the public key's `SHA256:...` fingerprint.
    pub fn fingerprint(&self) -> String {
        let out = run_ok(
            Command::new("ssh-keygen")
                .arg("-l")
                .arg("-f")
                .arg(&self.public),
            "ssh-keygen -l",
        );
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("ssh-keygen -l printed no fingerprint: {text}"))
            .to_string()
    }

    /// Where `grant` and `ssh-keygen -s` write this key's certificate.
    pub fn cert_path(&self) -> PathBuf {
        let mut name = self
            .private
            .file_name()
            .expect("key file name")
            .to_os_string();
        name.push("-cert.pub");
        self.private.with_file_name(name)
    }
}

/// A CA key pair of its own: a CA the bastion trusts through `[ca] trusted`
/// (see [`Setup::trusted_ca_file`]) or one it has never heard of.
pub struct CaKey {
    pub private: PathBuf,
    pub public: PathBuf,
    _dir: TempDir,
}

impl CaKey {
    pub fn generate(name: &str) -> CaKey {
        let dir = tempdir();
        let key = AgentKey::generate(dir.path(), name);
        CaKey {
            private: key.private,
            public: key.public,
            _dir: dir,
        }
    }

    /// An RSA CA: it can sign with `ssh-rsa` (SHA-1) or `rsa-sha2-512`
    /// (see [`CertSpec::ca_signature`]).
    pub fn generate_rsa(name: &str) -> CaKey {
        let dir = tempdir();
        let key = AgentKey::generate_rsa(dir.path(), name);
        CaKey {
            private: key.private,
            public: key.public,
            _dir: dir,
        }
    }
}

/// Signs `pubkey` with `ssh-keygen -s` and returns the certificate path.
///
/// `validity` is ssh-keygen's `-V` (`"-5m:+10m"`, `"+1h"`: note that
/// ssh-keygen backdates a lone `+T` by a minute). The certificate starts from
/// `-O clear` (no extensions) and gets exactly `options`, each one `-O`
/// argument: `critical:exec@portcullis=["uptime"]`, `source-address=10.0.0.1/32`,
/// `force-command=...`, `extension:permit-pty`, ... An empty `principals`
/// list signs a certificate without principals.
#[allow(clippy::too_many_arguments)]
pub fn sign_with_ssh_keygen(
    ca_private_key: &Path,
    pubkey: &Path,
    key_id: &str,
    principals: &[&str],
    validity: &str,
    options: &[&str],
    host_cert: bool,
    serial: u64,
) -> PathBuf {
    sign_with_ssh_keygen_as(
        ca_private_key,
        None,
        pubkey,
        key_id,
        principals,
        validity,
        options,
        host_cert,
        serial,
    )
}

/// Like [`sign_with_ssh_keygen`], with the CA's signature algorithm
/// (`ssh-keygen -t`, e.g. `ssh-rsa` or `rsa-sha2-512` for an RSA CA).
#[allow(clippy::too_many_arguments)]
pub fn sign_with_ssh_keygen_as(
    ca_private_key: &Path,
    ca_signature: Option<&str>,
    pubkey: &Path,
    key_id: &str,
    principals: &[&str],
    validity: &str,
    options: &[&str],
    host_cert: bool,
    serial: u64,
) -> PathBuf {
    let mut cmd = Command::new("ssh-keygen");
    cmd.arg("-q")
        .arg("-s")
        .arg(ca_private_key)
        .args(["-I", key_id]);
    if let Some(algorithm) = ca_signature {
        cmd.args(["-t", algorithm]);
    }
    if !principals.is_empty() {
        cmd.args(["-n", &principals.join(",")]);
    }
    cmd.args(["-V", validity, "-z", &serial.to_string()]);
    if host_cert {
        cmd.arg("-h");
    }
    cmd.args(["-O", "clear"]);
    for option in options {
        cmd.args(["-O", option]);
    }
    cmd.arg(pubkey);
    run_ok(&mut cmd, "ssh-keygen -s");
    let pubkey = pubkey.to_string_lossy();
    let cert = PathBuf::from(format!(
        "{}-cert.pub",
        pubkey.strip_suffix(".pub").unwrap_or(&pubkey)
    ));
    assert!(cert.exists(), "ssh-keygen -s wrote no {}", cert.display());
    cert
}

/// What a certificate signed with `ssh-keygen` says; defaults to a valid
/// user certificate for the standard identity and target.
#[derive(Clone, Debug)]
pub struct CertSpec {
    pub key_id: String,
    pub principals: Vec<String>,
    pub validity: String,
    pub options: Vec<String>,
    pub host_cert: bool,
    pub serial: u64,
    /// The CA's signature algorithm (`ssh-keygen -t`); ssh-keygen's default when `None`.
    pub ca_signature: Option<String>,
}

impl CertSpec {
    pub fn standard() -> CertSpec {
        CertSpec {
            key_id: AGENT.to_string(),
            principals: vec![TARGET.to_string()],
            validity: "-1m:+10m".to_string(),
            options: Vec::new(),
            host_cert: false,
            serial: 1,
            ca_signature: None,
        }
    }
    pub fn key_id(mut self, key_id: &str) -> Self {
        self.key_id = key_id.to_string();
        self
    }
    pub fn principals(mut self, principals: &[&str]) -> Self {
        self.principals = principals.iter().map(|p| p.to_string()).collect();
        self
    }
    pub fn validity(mut self, validity: &str) -> Self {
        self.validity = validity.to_string();
        self
    }
    /// One more `-O` option.
    pub fn option(mut self, option: &str) -> Self {
        self.options.push(option.to_string());
        self
    }
    /// `critical:exec@portcullis=<JSON array of patterns>`.
    pub fn exec(self, patterns: &[&str]) -> Self {
        let json = serde_json::to_string(patterns).expect("patterns to JSON");
        self.option(&format!("critical:exec@portcullis={json}"))
    }
    pub fn host_cert(mut self) -> Self {
        self.host_cert = true;
        self
    }
    pub fn serial(mut self, serial: u64) -> Self {
        self.serial = serial;
        self
    }
    /// `extension:role@portcullis=ROLE`: the cert speaks for this role only.
    pub fn role(self, role: &str) -> Self {
        self.option(&format!("extension:role@portcullis={role}"))
    }
    /// The CA signs with this algorithm (`ssh-keygen -t ssh-rsa`, ...).
    pub fn ca_signature(mut self, algorithm: &str) -> Self {
        self.ca_signature = Some(algorithm.to_string());
        self
    }

    pub fn sign(&self, ca_private_key: &Path, key: &AgentKey) -> PathBuf {
        let principals: Vec<&str> = self.principals.iter().map(String::as_str).collect();
        let options: Vec<&str> = self.options.iter().map(String::as_str).collect();
        sign_with_ssh_keygen_as(
            ca_private_key,
            self.ca_signature.as_deref(),
            &key.public,
            &self.key_id,
            &principals,
            &self.validity,
            &options,
            self.host_cert,
            self.serial,
        )
    }
}

/// `ssh-keygen -Q -f KRL CERT`: whether OpenSSH itself finds it revoked.
pub fn openssh_says_revoked(krl: &Path, cert: &Path) -> bool {
    let out = Command::new("ssh-keygen")
        .args(["-Q", "-f"])
        .arg(krl)
        .arg(cert)
        .output()
        .expect("run ssh-keygen -Q");
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    match said.contains("REVOKED") {
        true => true,
        false => {
            assert!(
                said.contains(": ok"),
                "ssh-keygen -Q said: {said:?} {out:?}"
            );
            false
        }
    }
}
