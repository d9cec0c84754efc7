//! The write-ahead gate: the only way to turn a decision into something the
//! upstream side accepts is to commit it to the store first.

use russh::ChannelId;

use crate::audit::{Event, StoreError};
use crate::gateway::live::LiveSession;
use crate::scope::{ExecDecision, ShellDecision};

/// An action committed to the store; holding one is the licence to forward it.
pub struct Recorded<T> {
    action: T,
}

impl<T> Recorded<T> {
    pub fn action(&self) -> &T {
        &self.action
    }
}

/// Commits `decision` (SPEC guarantee 2: before it reaches the target).
pub async fn record_exec(
    live: &LiveSession,
    channel: ChannelId,
    decision: ExecDecision,
) -> Result<Recorded<ExecDecision>, StoreError> {
    let event = Event::ExecAllowed {
        command: decision.requested().to_string(),
        forced_command: decision.is_forced().then(|| decision.run().to_string()),
    };
    live.record(Some(channel), event).await?;
    Ok(Recorded { action: decision })
}

/// Commits an interactive shell before it opens upstream (guarantee 2).
pub async fn record_shell(
    live: &LiveSession,
    channel: ChannelId,
    decision: ShellDecision,
    pty: bool,
) -> Result<Recorded<ShellDecision>, StoreError> {
    live.record(Some(channel), Event::ShellAllowed { pty })
        .await?;
    Ok(Recorded { action: decision })
}
