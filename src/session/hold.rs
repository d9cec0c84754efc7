//! Held commands in a live session: an exec outside the scope that a
//! role's `ask` pattern allows is recorded as a pending request and waits
//! (bounded) for an operator instead of being refused.
//!
//! Invariant: a held command runs only through [`ExecAnswer::Run`] or
//! [`HoldOutcome::Run`], whose permit exists only after one transaction
//! has both taken the approved hold (`approved` -> `ran`: once, for this
//! cert, target and exact command bytes, before it expires) and committed
//! `exec.allowed` naming the request and its approver. A hold never
//! outlives the cert (it expires at `valid_before` at the latest), and a
//! session that ends stops waiting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::ChannelId;

use super::recorded::{Denied, Recorded};
use super::scope::{ExecDecision, Holdable};
use super::{channel_number, LiveSession};
use crate::audit::Event;
use crate::book::{Book, BookError, HeldRun, Throttled};
use crate::clock;
use crate::grants::db::{HoldRecord, HoldStatus, NewHold};

/// How often a waiting channel looks at its hold.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// How held commands behave in a session.
#[derive(Clone)]
pub struct HoldSettings {
    /// How long an exec waits for the decision before "still pending".
    pub wait: Duration,
    /// How long a hold stays decidable (capped by the cert's lifetime).
    pub expiry: Duration,
    /// Where holds are kept, and their rate per identity.
    pub book: Arc<Book>,
}

impl std::fmt::Debug for HoldSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HoldSettings")
            .field("wait", &self.wait)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

/// What an exec request comes to.
#[derive(Debug)]
pub enum ExecAnswer {
    /// Within scope, or an earlier hold of it approved: run it.
    Run(Recorded<ExecDecision>),
    Refused(Denied),
    /// On hold: tell the agent, then [`LiveSession::await_hold`].
    Held(PendingHold),
}

/// A command on hold, recorded as request `request`.
#[derive(Debug)]
pub struct PendingHold {
    request: i64,
    holdable: Holdable,
    /// False when the command matched an earlier, still pending hold.
    fresh: bool,
}

impl PendingHold {
    pub fn request(&self) -> i64 {
        self.request
    }
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }
}

/// How the wait for a held command ended.
#[derive(Debug)]
pub enum HoldOutcome {
    Run(Recorded<ExecDecision>),
    /// An operator denied it (the line says who, and why).
    Denied(Denied),
    /// Undecided when the wait ran out: the same command may be retried.
    StillPending {
        request: i64,
    },
    /// The hold expired, the store failed, or the session is ending.
    Refused(Denied),
}

impl LiveSession {
    /// How long an exec waits for the decision on a held command.
    pub fn hold_wait(&self) -> Duration {
        self.limits.holds.wait
    }

    /// An exec request: the command in scope (committed `exec.allowed`), a
    /// command an `ask` pattern holds (approved before: run it; pending:
    /// wait on it; else a new hold, `command.held`), or a refusal
    /// (`exec.refused`).
    pub async fn authorize_exec_or_hold(&self, channel: ChannelId, raw: &[u8]) -> ExecAnswer {
        let refusal = match self.scope.decide_exec(raw) {
            Err(refusal) => refusal,
            Ok(decision) => {
                return match self.commit_exec(channel, Ok(decision), String::new).await {
                    Ok(permit) => ExecAnswer::Run(permit),
                    Err(denied) => ExecAnswer::Refused(denied),
                }
            }
        };
        let Some(holdable) = self.scope.holdable(raw, &refusal) else {
            let requested = || String::from_utf8_lossy(raw).into_owned();
            return match self.commit_exec(channel, Err(refusal), requested).await {
                Ok(permit) => ExecAnswer::Run(permit),
                Err(denied) => ExecAnswer::Refused(denied),
            };
        };
        match self.earlier_hold(&holdable).await {
            Err(denied) => ExecAnswer::Refused(denied),
            Ok(Some(held)) => match held.status {
                HoldStatus::Approved => match self.run_approved(channel, &holdable, &held).await {
                    Ok(permit) => ExecAnswer::Run(permit),
                    Err(denied) => ExecAnswer::Refused(denied),
                },
                HoldStatus::Denied => ExecAnswer::Refused(denied_line(&held)),
                _ => ExecAnswer::Held(PendingHold {
                    request: held.id,
                    holdable,
                    fresh: false,
                }),
            },
            Ok(None) => match self.new_hold(channel, &holdable).await {
                Ok(request) => ExecAnswer::Held(PendingHold {
                    request,
                    holdable,
                    fresh: true,
                }),
                Err(denied) => ExecAnswer::Refused(denied),
            },
        }
    }

    /// Waits (up to the session's hold wait) for an operator to decide
    /// `hold`; runs it once approved.
    pub async fn await_hold(&self, channel: ChannelId, hold: PendingHold) -> HoldOutcome {
        let deadline = Instant::now() + self.limits.holds.wait;
        let ending = self.terminated();
        tokio::pin!(ending);
        loop {
            self.touch();
            let held = match self.load_hold(hold.request).await {
                Ok(held) => held,
                Err(denied) => return HoldOutcome::Refused(denied),
            };
            match held.status {
                HoldStatus::Approved => {
                    return match self.run_approved(channel, &hold.holdable, &held).await {
                        Ok(permit) => HoldOutcome::Run(permit),
                        Err(denied) => HoldOutcome::Refused(denied),
                    }
                }
                HoldStatus::Denied => return HoldOutcome::Denied(denied_line(&held)),
                HoldStatus::Expired | HoldStatus::Ran => {
                    let line = format!(
                        "request {} is {}: run the command again",
                        held.id, held.status
                    );
                    return HoldOutcome::Refused(Denied::new(line));
                }
                HoldStatus::Pending => {}
            }
            if Instant::now() >= deadline {
                return HoldOutcome::StillPending {
                    request: hold.request,
                };
            }
            tokio::select! {
                reason = &mut ending => return HoldOutcome::Refused(Denied::new(reason)),
                _ = tokio::time::sleep(POLL_EVERY) => {}
            }
        }
    }

    /// The newest hold of this command for this cert on this target that
    /// may still be decided or run.
    async fn earlier_hold(&self, holdable: &Holdable) -> Result<Option<HoldRecord>, Denied> {
        let fingerprint = self.cert.fingerprint().to_owned();
        let target = self.scope.target().name.clone();
        let command = holdable.command().to_owned();
        self.book()
            .hold_for_retry(fingerprint, target, command)
            .await
            .map_err(|e| book_refusal(&e))
    }

    async fn load_hold(&self, id: i64) -> Result<HoldRecord, Denied> {
        self.book()
            .hold(id)
            .await
            .map_err(|e| book_refusal(&e))?
            .ok_or_else(|| Denied::new(format!("request {id} is not on record")))
    }

    fn book(&self) -> &Book {
        &self.limits.holds.book
    }

    /// Records a new hold (`command.held`), within the identity's rate.
    async fn new_hold(&self, channel: ChannelId, holdable: &Holdable) -> Result<i64, Denied> {
        if let Err(throttled) = self.book().holds.take(self.identity()).await {
            let reason = match throttled {
                Throttled::Wait(wait) => format!(
                    "too many held commands from identity {}; try again in {}s",
                    self.identity(),
                    wait.as_secs().max(1)
                ),
                Throttled::Unavailable => UNAVAILABLE.to_owned(),
            };
            let event = Event::ExecRefused {
                command: holdable.command().to_owned(),
                reason: reason.clone(),
            };
            self.record_best_effort(Some(channel), event).await;
            return Err(Denied::new(reason));
        }
        let expiry_us = i64::try_from(self.limits.holds.expiry.as_micros()).unwrap_or(i64::MAX);
        let cert_end_us = i64::try_from(self.cert.valid_before())
            .unwrap_or(i64::MAX / 1_000_000)
            .saturating_mul(1_000_000);
        let hold = NewHold {
            session: self.id,
            channel: Some(channel_number(channel)),
            identity: self.identity().to_owned(),
            role: self.scope.role().map(str::to_owned),
            task: self.cert.scope().task.clone(),
            target: self.scope.target().name.clone(),
            cert_fingerprint: self.cert.fingerprint().to_owned(),
            command: holdable.command().to_owned(),
            expires_at_us: clock::now_us().saturating_add(expiry_us).min(cert_end_us),
        };
        self.book()
            .create_hold(hold)
            .await
            .map_err(|e| book_refusal(&e))
    }

    /// Takes the approved hold and commits `exec.allowed` naming it, in
    /// one transaction: the permit to run the command once.
    async fn run_approved(
        &self,
        channel: ChannelId,
        holdable: &Holdable,
        held: &HoldRecord,
    ) -> Result<Recorded<ExecDecision>, Denied> {
        let channel_no = channel_number(channel);
        let run = HeldRun {
            id: held.id,
            cert_fingerprint: self.cert.fingerprint().to_owned(),
            target: self.scope.target().name.clone(),
            command: holdable.command().to_owned(),
            session: self.id,
            channel: channel_no,
        };
        let allowed = Event::ExecAllowed {
            command: run.command.clone(),
            forced_command: None,
            instead_of: None,
            approved_request: Some(held.id),
            approved_by: Some(held.decided_by.clone().unwrap_or_else(|| "operator".into())),
        };
        match self.book().run_approved(run, allowed).await {
            Ok(()) => Ok(Recorded::new(
                self.id,
                Some(channel_no),
                holdable.approved(),
            )),
            Err(e) => Err(book_refusal(&e)),
        }
    }
}

fn denied_line(held: &HoldRecord) -> Denied {
    let by = held.decided_by.as_deref().unwrap_or("an operator");
    let reason = held
        .decision_reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    Denied::new(format!("request {} was denied by {by}{reason}", held.id))
}

const UNAVAILABLE: &str =
    "the cluster database cannot be reached, so the held command does not run";

fn book_refusal(e: &BookError) -> Denied {
    match e {
        BookError::Refused(e) => Denied::new(e.to_string()),
        BookError::Store(e) => {
            tracing::error!(error = %e, "held command: the store failed");
            Denied::new("the audit store cannot record the held command, so it does not run".into())
        }
        BookError::Cluster(e) => {
            tracing::error!(error = %e, "held command: the cluster database failed");
            Denied::new(UNAVAILABLE.into())
        }
    }
}
