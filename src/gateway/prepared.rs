//! Terminal and environment decisions made in the handler's callbacks,
//! handed to the channel task that applies them.
//!
//! OpenSSH sends pty-req, env and the exec or shell back to back and acts
//! on each reply (`ssh -t` gives up on a refused terminal at once), so these
//! requests are decided and recorded in the callback, before the reply
//! goes out. russh also queues the request for the channel's task, which
//! takes the recorded decision from here, in order, once the handler is
//! done with it (`channel::settle`).
//!
//! Invariant: the channel task applies exactly the decisions the handler
//! recorded for its channel, in the order the requests came; nothing here
//! decides anything. Only open session channels have an entry (a request
//! naming any other channel number is refused unrecorded), and each holds
//! a bounded number of decisions, so requests cannot grow memory or the
//! store without bound.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use russh::ChannelId;

use crate::session::scope::{EnvDecision, PtyDecision};
use crate::session::setup::MAX_ENV_VARS;
use crate::session::Recorded;

#[derive(Default)]
pub struct Prepared {
    channels: Mutex<HashMap<ChannelId, Channel>>,
}

/// Terminal requests one channel may have decided (and recorded).
const MAX_PTY_REQUESTS: usize = 8;

#[derive(Default)]
struct Channel {
    /// `None`: that request was refused.
    pty: VecDeque<Option<Recorded<PtyDecision>>>,
    env: VecDeque<Option<Recorded<EnvDecision>>>,
    /// Requests decided on this channel, for the bounds.
    pty_decided: usize,
    env_decided: usize,
}

impl Prepared {
    /// A session channel was opened: it may have requests decided.
    pub fn open(&self, id: ChannelId) {
        if let Ok(mut channels) = self.channels.lock() {
            channels.insert(id, Channel::default());
        }
    }

    /// Whether another terminal request of this open channel may be
    /// decided (and recorded); counts it.
    pub fn pty_room(&self, id: ChannelId) -> bool {
        self.with(id, |c| {
            c.pty_decided += 1;
            c.pty_decided <= MAX_PTY_REQUESTS
        })
    }

    pub fn push_pty(&self, id: ChannelId, pty: Option<Recorded<PtyDecision>>) {
        self.with(id, |c| c.pty.push_back(pty));
    }

    pub fn take_pty(&self, id: ChannelId) -> Option<Recorded<PtyDecision>> {
        self.with(id, |c| c.pty.pop_front().flatten())
    }

    /// Whether another variable of this open channel may be decided (and
    /// recorded); counts it. Past the bound variables are refused
    /// unrecorded.
    pub fn env_room(&self, id: ChannelId) -> bool {
        self.with(id, |c| {
            c.env_decided += 1;
            c.env_decided <= 2 * MAX_ENV_VARS
        })
    }

    pub fn push_env(&self, id: ChannelId, env: Option<Recorded<EnvDecision>>) {
        self.with(id, |c| c.env.push_back(env));
    }

    pub fn take_env(&self, id: ChannelId) -> Option<Recorded<EnvDecision>> {
        self.with(id, |c| c.env.pop_front().flatten())
    }

    /// The channel is done: what it did not take is dropped.
    pub fn forget(&self, id: ChannelId) {
        if let Ok(mut channels) = self.channels.lock() {
            channels.remove(&id);
        }
    }

    /// `f` on an open channel's entry; the default (nothing, no room) for
    /// any other channel number.
    fn with<T: Default>(&self, id: ChannelId, f: impl FnOnce(&mut Channel) -> T) -> T {
        match self.channels.lock() {
            Ok(mut channels) => channels.get_mut(&id).map(f).unwrap_or_default(),
            Err(_) => T::default(),
        }
    }
}
