//! Decide and record, fused: each method decides with the session's own
//! scope, commits the decision, and only then hands out its permit; a
//! refusal is recorded and comes back as one line.
//!
//! Invariant: every `Ok` here follows a committed row naming the session,
//! the channel and the action; every `Err(Denied)` follows an attempt to
//! record the refusal. A store that cannot commit refuses the action
//! (fail closed): the permit is never made without its row.

use russh::{ChannelId, Sig};

use super::recorded::{Denied, Exit, Recorded, RefusedRequest, Unrecorded};
use super::scope::{
    EnvDecision, ExecDecision, ForwardDecision, ListenDecision, PtyDecision, Replaced,
    SftpDecision, ShellDecision,
};
use super::setup::{PtyRequest, WindowSize};
use super::{channel_number, LiveSession};
use crate::audit::Event;

impl LiveSession {
    /// Commits `event` and wraps `action` in its permit.
    async fn commit<T>(
        &self,
        channel: Option<ChannelId>,
        event: Event,
        action: T,
    ) -> Result<Recorded<T>, Unrecorded> {
        self.record_or_stop(channel, event).await?;
        Ok(Recorded::new(self.id, channel.map(channel_number), action))
    }

    /// Records a refused request and says why, in one line.
    pub async fn refuse_request(
        &self,
        channel: Option<ChannelId>,
        request: RefusedRequest,
        reason: &str,
    ) -> Denied {
        let request = request.to_string();
        tracing::info!(session = %self.id, request, reason, "request refused");
        let event = Event::RequestRefused {
            request,
            reason: reason.to_owned(),
        };
        self.record_best_effort(channel, event).await;
        Denied::new(reason.to_owned())
    }

    /// The forced command that runs instead of a shell or a subsystem
    /// (OpenSSH's meaning of force-command); `None` without one.
    pub async fn authorize_forced(
        &self,
        channel: ChannelId,
        replaced: Replaced,
        name: &str,
    ) -> Option<Result<Recorded<ExecDecision>, Denied>> {
        let decided = self.scope.decide_forced(replaced, name)?;
        Some(self.commit_exec(channel, decided, String::new).await)
    }

    pub(super) async fn commit_exec(
        &self,
        channel: ChannelId,
        decided: Result<ExecDecision, super::scope::ExecRefusal>,
        requested: impl FnOnce() -> String,
    ) -> Result<Recorded<ExecDecision>, Denied> {
        match decided {
            Ok(decision) => {
                let event = Event::ExecAllowed {
                    command: decision.requested().to_owned(),
                    forced_command: decision.forced_command().map(str::to_owned),
                    instead_of: decision.instead_of().map(str::to_owned),
                    approved_request: None,
                    approved_by: None,
                };
                self.commit(Some(channel), event, decision)
                    .await
                    .map_err(|_| {
                        Denied::new(
                            "the audit store cannot record the command, so it does not run".into(),
                        )
                    })
            }
            Err(refusal) => {
                let reason = refusal.to_string();
                let event = Event::ExecRefused {
                    command: requested(),
                    reason: reason.clone(),
                };
                self.record_best_effort(Some(channel), event).await;
                Err(Denied::new(reason))
            }
        }
    }

    /// An interactive shell: `shell.allowed` committed, or `shell.refused`.
    pub async fn authorize_shell(
        &self,
        channel: ChannelId,
        on_terminal: bool,
    ) -> Result<Recorded<ShellDecision>, Denied> {
        match self.scope.decide_shell(on_terminal) {
            Ok(decision) => {
                let event = Event::ShellAllowed { pty: on_terminal };
                self.commit(Some(channel), event, decision)
                    .await
                    .map_err(|_| {
                        Denied::new(
                            "the audit store cannot record the shell, so it does not open".into(),
                        )
                    })
            }
            Err(refusal) => {
                let reason = format!("interactive shell: {refusal}");
                tracing::info!(session = %self.id, %reason, "shell refused");
                let event = Event::ShellRefused {
                    reason: reason.clone(),
                };
                self.record_best_effort(Some(channel), event).await;
                Err(Denied::new(reason))
            }
        }
    }

    /// The sftp subsystem: `sftp.started` committed, or a refused request.
    pub async fn authorize_sftp(
        &self,
        channel: ChannelId,
        name: &str,
    ) -> Result<Recorded<SftpDecision>, Denied> {
        match self.scope.decide_sftp(name) {
            Ok(decision) => {
                let event = Event::SftpStarted {
                    paths: decision.patterns(),
                };
                self.commit(Some(channel), event, decision)
                    .await
                    .map_err(|_| {
                        Denied::new(
                            "the audit store cannot record the sftp session, so it does not start"
                                .into(),
                        )
                    })
            }
            Err(refusal) => {
                let request = RefusedRequest::Subsystem(super::scope::shown_name(name));
                Err(self
                    .refuse_request(Some(channel), request, &refusal.to_string())
                    .await)
            }
        }
    }

    /// A terminal: `pty.allowed` committed, or a refused `pty-req`.
    pub async fn authorize_pty(
        &self,
        channel: ChannelId,
        request: PtyRequest,
    ) -> Result<Recorded<PtyDecision>, Denied> {
        let event = Event::PtyAllowed {
            term: request.term.clone(),
            cols: request.cols,
            rows: request.rows,
        };
        match self.scope.decide_pty(request) {
            Ok(decision) => self
                .commit(Some(channel), event, decision)
                .await
                .map_err(|e| Denied::new(format!("terminal: {e}"))),
            Err(refusal) => Err(self
                .refuse_request(Some(channel), RefusedRequest::Pty, &refusal.to_string())
                .await),
        }
    }

    /// An environment variable: `env.allowed` committed, or a refused `env`.
    pub async fn authorize_env(
        &self,
        channel: ChannelId,
        name: &str,
        value: &str,
    ) -> Result<Recorded<EnvDecision>, Denied> {
        match self.scope.decide_env(name, value) {
            Ok(decision) => {
                let event = Event::EnvAllowed {
                    name: name.to_owned(),
                    value: value.to_owned(),
                };
                self.commit(Some(channel), event, decision)
                    .await
                    .map_err(|e| Denied::new(format!("environment: {e}")))
            }
            Err(refusal) => {
                let request = RefusedRequest::Env(name.to_owned());
                Err(self
                    .refuse_request(Some(channel), request, &refusal.to_string())
                    .await)
            }
        }
    }

    /// A terminal size change (within a granted terminal), committed.
    pub async fn record_resize(
        &self,
        channel: ChannelId,
        size: WindowSize,
    ) -> Result<Recorded<WindowSize>, Unrecorded> {
        let event = Event::PtyResize {
            cols: size.cols,
            rows: size.rows,
        };
        self.commit(Some(channel), event, size).await
    }

    /// A signal for the remote process, committed.
    pub async fn record_signal(
        &self,
        channel: ChannelId,
        signal: Sig,
    ) -> Result<Recorded<Sig>, Unrecorded> {
        let event = Event::Signal {
            signal: signal_name(&signal),
        };
        self.commit(Some(channel), event, signal).await
    }

    /// How a command ended, committed before the client hears it.
    pub async fn record_exit(
        &self,
        channel: ChannelId,
        exit: Exit,
    ) -> Result<Recorded<Exit>, Unrecorded> {
        let event = match &exit {
            Exit::Status(status) => Event::ExitStatus { status: *status },
            Exit::Signal {
                signal,
                core_dumped,
                ..
            } => Event::ExitSignal {
                signal: signal_name(signal),
                core_dumped: *core_dumped,
            },
        };
        self.commit(Some(channel), event, exit).await
    }

    /// A direct-tcpip forward: decided (one resolution), `forward.opened`
    /// committed with the one address to connect to; or `forward.refused`.
    pub async fn authorize_forward(
        &self,
        channel: ChannelId,
        host: &str,
        port: u32,
        originator: &str,
    ) -> Result<Recorded<ForwardDecision>, Denied> {
        match self.scope.decide_forward(host, port).await {
            Ok(decision) => {
                let event = Event::ForwardOpened {
                    host: decision.host().to_owned(),
                    port: decision.port(),
                    address: decision.address().to_string(),
                    originator: originator.to_owned(),
                };
                self.commit(Some(channel), event, decision)
                    .await
                    .map_err(|e| Denied::new(format!("forward: {e}")))
            }
            Err(refusal) => {
                let reason = refusal.to_string();
                tracing::info!(session = %self.id, host, port, %reason, "forward refused");
                let event = Event::ForwardRefused {
                    host: host.chars().take(256).collect(),
                    port,
                    originator: originator.chars().take(256).collect(),
                    reason: reason.clone(),
                };
                self.record_best_effort(Some(channel), event).await;
                Err(Denied::new(reason))
            }
        }
    }

    /// A remote-forward listener: `listen.opened` committed with the one
    /// address to bind; or a refused `tcpip-forward`.
    pub async fn authorize_listen(
        &self,
        address: &str,
        port: u32,
    ) -> Result<Recorded<ListenDecision>, Denied> {
        match self.scope.decide_listen(address, port) {
            Ok(decision) => {
                let event = Event::ListenOpened {
                    address: decision.address().to_string(),
                };
                self.commit(None, event, decision)
                    .await
                    .map_err(|e| Denied::new(format!("remote forward: {e}")))
            }
            Err(refusal) => {
                let request = RefusedRequest::TcpipForward {
                    address: address.to_owned(),
                    port,
                };
                Err(self
                    .refuse_request(None, request, &refusal.to_string())
                    .await)
            }
        }
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
