//! The write-ahead gate: the only way to turn a decision into something the
//! upstream side accepts is to commit it to the store first.

use russh::ChannelId;

use crate::audit::{Event, StoreError};
use crate::gateway::live::LiveSession;
use crate::scope::{ExecDecision, ForwardDecision, ListenDecision, SftpDecision, ShellDecision};

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

/// Commits a forward before the bastion connects: the destination asked
/// for, the one address it will connect to, and the client's end.
pub async fn record_forward(
    live: &LiveSession,
    channel: ChannelId,
    decision: ForwardDecision,
    originator: &str,
) -> Result<Recorded<ForwardDecision>, StoreError> {
    let event = Event::ForwardOpened {
        host: decision.host().to_string(),
        port: decision.port(),
        address: decision.address().to_string(),
        originator: originator.to_string(),
    };
    live.record(Some(channel), event).await?;
    Ok(Recorded { action: decision })
}

/// Commits the start of an sftp subsystem before it opens on the target.
pub async fn record_sftp(
    live: &LiveSession,
    channel: ChannelId,
    decision: SftpDecision,
) -> Result<Recorded<SftpDecision>, StoreError> {
    let event = Event::SftpStarted {
        paths: decision.patterns(),
    };
    live.record(Some(channel), event).await?;
    Ok(Recorded { action: decision })
}

/// Commits a remote-forward listener before it binds.
pub async fn record_listen(
    live: &LiveSession,
    decision: ListenDecision,
) -> Result<Recorded<ListenDecision>, StoreError> {
    let event = Event::ListenOpened {
        address: decision.address().to_string(),
    };
    live.record(None, event).await?;
    Ok(Recorded { action: decision })
}
