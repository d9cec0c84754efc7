//! What a client asks of a session channel before its exec or shell: a
//! terminal (pty-req), its size (window-change) and a few environment
//! variables (env). The channel task collects them here and they are
//! replayed on the target's channel just before the exec or shell.
//!
//! Invariant: a [`ChannelSetup`] holds at most one terminal and only the
//! environment variables [`env_is_forwarded`] accepts, bounded in number
//! and size. The channel task (`gateway::channel`) is its only filler, and
//! adds a terminal only when the scope grants one, each setting only after
//! its row is committed.

use russh::client;
use russh::{Channel, Pty, Sig};

/// Most environment variables kept for one channel; later ones are
/// dropped (the client was already told yes; the target never sees them).
pub const MAX_ENV_VARS: usize = 32;
/// Longest accepted environment value, in bytes.
pub const MAX_ENV_VALUE: usize = 1024;

/// A terminal as the client requested it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtyRequest {
    pub term: String,
    pub cols: u32,
    pub rows: u32,
    pub pix_width: u32,
    pub pix_height: u32,
    pub modes: Vec<(Pty, u32)>,
}

/// The granted requests that precede a channel's exec or shell.
#[derive(Debug, Clone, Default)]
pub struct ChannelSetup {
    pty: Option<PtyRequest>,
    env: Vec<(String, String)>,
    /// A pty-req was refused, and the client was told why.
    terminal_refused: bool,
}

/// Like sshd's `AcceptEnv TERM LANG LC_*`: the locale and terminal type
/// help an agent read output; anything else (`LD_PRELOAD`, `PATH`, ...)
/// could change what a command does on the target.
pub fn env_is_forwarded(name: &str, value: &str) -> bool {
    let known = name == "TERM" || name == "LANG" || name.starts_with("LC_");
    let plain_name = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    known && plain_name && value.len() <= MAX_ENV_VALUE
}

impl ChannelSetup {
    pub fn pty(&self) -> Option<&PtyRequest> {
        self.pty.as_ref()
    }

    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// A later pty-req replaces an earlier one, as it would on sshd.
    pub fn set_pty(&mut self, pty: PtyRequest) {
        self.pty = Some(pty);
    }

    /// Notes that the handler refused a terminal (and said why).
    pub fn note_terminal_refused(&mut self) {
        self.terminal_refused = true;
    }

    pub fn terminal_refused(&self) -> bool {
        self.terminal_refused
    }

    /// Records a size change before the exec or shell; false when there is
    /// no terminal to resize.
    pub fn resize(&mut self, cols: u32, rows: u32, pix_width: u32, pix_height: u32) -> bool {
        match &mut self.pty {
            Some(pty) => {
                (pty.cols, pty.rows) = (cols, rows);
                (pty.pix_width, pty.pix_height) = (pix_width, pix_height);
                true
            }
            None => false,
        }
    }

    /// Keeps a variable [`env_is_forwarded`] accepts; false when it is not
    /// kept.
    pub fn add_env(&mut self, name: &str, value: &str) -> bool {
        if !env_is_forwarded(name, value) || self.env.len() >= MAX_ENV_VARS {
            return false;
        }
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_string(), value.to_string()));
        true
    }

    /// Sends the terminal and the environment on the target's channel.
    /// The terminal wants a reply, so a target that refuses it shows up as
    /// a `Failure` in the splice instead of a shell silently without one.
    pub async fn replay(&self, channel: &Channel<client::Msg>) -> Result<(), russh::Error> {
        if let Some(p) = &self.pty {
            channel
                .request_pty(
                    true,
                    &p.term,
                    p.cols,
                    p.rows,
                    p.pix_width,
                    p.pix_height,
                    &p.modes,
                )
                .await?;
        }
        for (name, value) in &self.env {
            channel
                .set_env(false, name.as_str(), value.as_str())
                .await?;
        }
        Ok(())
    }
}

/// A signal's name as SSH spells it (`INT`, `TERM`, ...).
pub fn signal_name(signal: &Sig) -> String {
    match signal {
        Sig::ABRT => "ABRT".into(),
        Sig::ALRM => "ALRM".into(),
        Sig::FPE => "FPE".into(),
        Sig::HUP => "HUP".into(),
        Sig::ILL => "ILL".into(),
        Sig::INT => "INT".into(),
        Sig::KILL => "KILL".into(),
        Sig::PIPE => "PIPE".into(),
        Sig::QUIT => "QUIT".into(),
        Sig::SEGV => "SEGV".into(),
        Sig::TERM => "TERM".into(),
        Sig::USR1 => "USR1".into(),
        Sig::Custom(name) => name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_term_lang_and_lc_variables_pass() {
        for (name, ok) in [
            ("TERM", true),
            ("LANG", true),
            ("LC_ALL", true),
            ("LC_CTYPE", true),
            ("LD_PRELOAD", false),
            ("PATH", false),
            ("LANGUAGE", false),
            ("LC_=x", false),
            ("lang", false),
        ] {
            assert_eq!(env_is_forwarded(name, "C.UTF-8"), ok, "{name}");
        }
        assert!(!env_is_forwarded("LANG", &"x".repeat(MAX_ENV_VALUE + 1)));
    }

    #[test]
    fn environment_is_bounded_and_deduplicated() {
        let mut setup = ChannelSetup::default();
        assert!(setup.add_env("LANG", "C"));
        assert!(setup.add_env("LANG", "C.UTF-8"));
        assert!(!setup.add_env("PATH", "/tmp"));
        assert_eq!(setup.env(), [("LANG".to_string(), "C.UTF-8".to_string())]);
        for i in 0..2 * MAX_ENV_VARS {
            setup.add_env(&format!("LC_X{i}"), "C");
        }
        assert_eq!(setup.env().len(), MAX_ENV_VARS);
    }

    #[test]
    fn resize_needs_a_terminal() {
        let mut setup = ChannelSetup::default();
        assert!(!setup.resize(100, 30, 0, 0));
        setup.set_pty(PtyRequest {
            term: "xterm".into(),
            cols: 80,
            rows: 24,
            pix_width: 0,
            pix_height: 0,
            modes: Vec::new(),
        });
        assert!(setup.resize(100, 30, 0, 0));
        assert_eq!(setup.pty().map(|p| (p.cols, p.rows)), Some((100, 30)));
    }
}
