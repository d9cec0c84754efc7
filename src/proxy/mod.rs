//! Proxying: splicing an admitted client channel to a target channel (or
//! a TCP connection), with a recording tap and backpressure.
//!
//! Invariant: an action reaches the target or the network only through a
//! `session::Recorded` permit, which only exists once the action is
//! committed to the store; the exit status reaches the client only
//! through a `Recorded<Exit>`.

pub mod drain;
pub mod exec;
pub mod forward;
pub mod listen;
pub mod observe;
pub mod sftp;
pub mod shell;
pub mod splice;
pub mod tcp;

mod client;

use std::sync::Arc;

use crate::session::LiveSession;
use crate::upstream::Link;

pub use client::{BeforeRequest, ClientChannel, EarlyInput, MAX_EARLY_INPUT};

/// Exit status of a refused request, as a shell reports "cannot execute".
pub const REFUSED_EXIT_STATUS: u32 = 126;
/// Exit status when portcullis itself could not run the request (as ssh
/// reports its own errors).
pub const BASTION_ERROR_EXIT_STATUS: u32 = 255;

/// An admitted session and its link to the target: what every proxied
/// channel needs.
#[derive(Clone)]
pub struct SessionLink {
    pub live: Arc<LiveSession>,
    pub target: Arc<Link>,
}
