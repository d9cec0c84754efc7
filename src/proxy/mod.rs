//! Proxying: splicing an admitted client channel to a target channel, with
//! a recording tap and backpressure.
//!
//! Invariant: an action reaches the target only through a [`permit::Recorded`]
//! token, which only exists once the action is committed to the store.

pub mod drain;
pub mod exec;
pub mod forward;
pub mod listen;
pub mod permit;
pub mod sftp;
pub mod tcp;

use russh::server::{Handle, Msg};
use russh::{ChannelId, ChannelWriteHalf};

use crate::gateway::channel::REFUSED_EXIT_STATUS;

/// Exit status when portcullis itself could not run the request (as ssh
/// reports its own errors).
pub const BASTION_ERROR_EXIT_STATUS: u32 = 255;

/// The client's side of a session channel.
pub struct ClientChannel {
    pub id: ChannelId,
    pub writer: ChannelWriteHalf<Msg>,
    pub handle: Handle,
}

impl ClientChannel {
    pub fn new(id: ChannelId, writer: ChannelWriteHalf<Msg>, handle: Handle) -> Self {
        ClientChannel { id, writer, handle }
    }

    /// One `portcullis: refused: ...` line on stderr, exit status 126, close.
    pub async fn refuse(&self, reason: &str) {
        self.finish_with_line(
            &format!("portcullis: refused: {reason}"),
            REFUSED_EXIT_STATUS,
        )
        .await;
    }

    /// One `portcullis: error: ...` line on stderr, exit status 255, close.
    pub async fn fail(&self, reason: &str) {
        self.finish_with_line(
            &format!("portcullis: error: {reason}"),
            BASTION_ERROR_EXIT_STATUS,
        )
        .await;
    }

    async fn finish_with_line(&self, line: &str, status: u32) {
        let _ = self
            .writer
            .extended_data_bytes(1, format!("{line}\n").into_bytes())
            .await;
        let _ = self.writer.exit_status(status).await;
        self.close().await;
    }

    pub async fn close(&self) {
        let _ = self.writer.eof().await;
        let _ = self.writer.close().await;
    }
}
