//! The paths from the client to the target, as `ssh` command lines.

use std::path::Path;
use std::process::Command;

use crate::lab::Lab;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `ssh target`: no hop at all.
    Direct,
    /// `ssh -J jump target`: the jump host forwards the encrypted stream.
    ProxyJump,
    /// `ssh jump "ssh target ..."`: the jump host terminates and re-dials,
    /// as a recording bastion must.
    Relay,
    /// `ssh target@portcullis`, recording everything.
    Portcullis,
}

impl Route {
    pub fn name(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::ProxyJump => "OpenSSH ProxyJump",
            Route::Relay => "OpenSSH relay",
            Route::Portcullis => "portcullis",
        }
    }

    /// The host alias in the lab's client config.
    pub fn host(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::ProxyJump => "proxyjump",
            Route::Relay => "jump",
            Route::Portcullis => "bastion",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// What each side picks by default (OpenSSH: chacha20-poly1305; on its
    /// upstream leg portcullis chooses for itself).
    Default,
    /// `Ciphers aes128-gcm@openssh.com` in the client config (every hop the
    /// client makes, and the relay's inner ssh).
    Aes128Gcm,
}

impl Cipher {
    pub fn name(self) -> &'static str {
        match self {
            Cipher::Default => "default cipher",
            Cipher::Aes128Gcm => "aes128-gcm",
        }
    }

    fn config(self, lab: &Lab) -> &Path {
        match self {
            Cipher::Default => &lab.config_default,
            Cipher::Aes128Gcm => &lab.config_aes,
        }
    }
}

/// `ssh -F CONFIG HOST COMMAND` along `route`.
pub fn ssh(lab: &Lab, route: Route, cipher: Cipher, command: &str) -> Command {
    let config = cipher.config(lab);
    let mut cmd = Command::new("ssh");
    cmd.arg("-F").arg(config).arg(route.host());
    if route == Route::Relay {
        // The jump host runs the second ssh itself (same machine, same
        // files, same user): it re-dials the target and relays.
        cmd.arg(format!(
            "ssh -F {} {} {}",
            quote(&config.to_string_lossy()),
            Route::Direct.host(),
            quote(command)
        ));
    } else {
        cmd.arg(command);
    }
    cmd
}

/// A ControlMaster connection to `host` of the client config `config`
/// (`ssh -M -N`), listening on `socket`.
pub fn mux_master_at(config: &Path, host: &str, socket: &Path) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.arg("-F")
        .arg(config)
        .args(["-N", "-o", "ControlMaster=yes", "-o", "ControlPersist=no"])
        .arg("-o")
        .arg(format!("ControlPath={}", socket.display()))
        .arg(host);
    cmd
}

/// A command through an existing ControlMaster: one more channel on the
/// same connection (one more exec of the same session, for portcullis).
pub fn mux_client_at(config: &Path, host: &str, socket: &Path, command: &str) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.arg("-F")
        .arg(config)
        .arg("-o")
        .arg(format!("ControlPath={}", socket.display()))
        .arg(host)
        .arg(command);
    cmd
}

/// Asks a ControlMaster to exit.
pub fn mux_exit_at(config: &Path, host: &str, socket: &Path) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.arg("-F")
        .arg(config)
        .arg("-o")
        .arg(format!("ControlPath={}", socket.display()))
        .args(["-O", "exit"])
        .arg(host);
    cmd
}

/// Single-quotes `s` for a POSIX shell.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
