//! What a client asks of a session channel before its exec or shell: a
//! terminal (pty-req), its size (window-change) and a few environment
//! variables (env). The channel task collects them here; the upstream side
//! replays them on the target's channel just before the exec or shell.
//!
//! Invariant: a [`ChannelSetup`] holds only recorded decisions: at most one
//! terminal ([`Recorded<PtyDecision>`]) and at most [`MAX_ENV_VARS`]
//! variables ([`Recorded<EnvDecision>`]), so nothing reaches the target
//! that is not committed first and within the scope.

use russh::Pty;

use super::recorded::Recorded;
use super::scope::{EnvDecision, PtyDecision};

/// Most environment variables kept for one channel.
pub const MAX_ENV_VARS: usize = 32;

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

/// A terminal size change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    pub cols: u32,
    pub rows: u32,
    pub pix_width: u32,
    pub pix_height: u32,
}

/// The granted requests that precede a channel's exec or shell.
#[derive(Debug, Default)]
pub struct ChannelSetup {
    pty: Option<Recorded<PtyDecision>>,
    /// The latest recorded size, when it changed after the pty-req.
    size: Option<WindowSize>,
    env: Vec<Recorded<EnvDecision>>,
    /// A pty-req was refused, and the client was told why.
    terminal_refused: bool,
}

impl ChannelSetup {
    /// The terminal as it should be allocated: the request, resized.
    pub fn pty(&self) -> Option<PtyRequest> {
        let mut request = self.pty.as_ref()?.action().request().clone();
        if let Some(size) = self.size {
            (request.cols, request.rows) = (size.cols, size.rows);
            (request.pix_width, request.pix_height) = (size.pix_width, size.pix_height);
        }
        Some(request)
    }

    pub fn has_terminal(&self) -> bool {
        self.pty.is_some()
    }

    pub fn env(&self) -> impl Iterator<Item = &EnvDecision> {
        self.env.iter().map(Recorded::action)
    }

    /// A later pty-req replaces an earlier one, as it would on sshd.
    pub fn set_pty(&mut self, pty: Recorded<PtyDecision>) {
        self.pty = Some(pty);
        self.size = None;
    }

    /// Notes that a terminal was refused (the client was told why).
    pub fn note_terminal_refused(&mut self) {
        self.terminal_refused = true;
    }

    pub fn terminal_refused(&self) -> bool {
        self.terminal_refused
    }

    /// A recorded size change before the exec or shell; ignored without a
    /// terminal (there is nothing to resize).
    pub fn resize(&mut self, size: Recorded<WindowSize>) {
        if self.pty.is_some() {
            self.size = Some(*size.action());
        }
    }

    /// Whether another variable fits.
    pub fn has_room_for_env(&self) -> bool {
        self.env.len() < MAX_ENV_VARS
    }

    /// Keeps a recorded variable, replacing an earlier one of that name.
    pub fn add_env(&mut self, env: Recorded<EnvDecision>) {
        self.env
            .retain(|e| e.action().name() != env.action().name());
        if self.env.len() < MAX_ENV_VARS {
            self.env.push(env);
        }
    }
}
