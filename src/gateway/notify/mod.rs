//! `[notify]`: `serve` POSTs each grant request that awaits an operator
//! and each held command to a webhook (a chat bot, a pager), as signed
//! JSON, so a human is asked without watching `portcullis requests`.
//!
//! Invariant: notifying never delays a session. The notifier tails the
//! store's chained events (like the syslog forwarder) in its own task,
//! from the store's last event at start; each notice is delivered by a
//! task of its own, each attempt on a thread of its own within the
//! timeout, so a slow or absent receiver delays neither sessions nor other
//! notices. A failed attempt is logged (one line) and recorded as
//! `notify.failed`, then retried with a doubling back-off, at most
//! [`MAX_ATTEMPTS`] times, and not once the request is decided.

mod body;
mod post;
mod sign;

#[cfg(test)]
mod peer_tests;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::ServerContext;
use crate::audit::{Event, EventRecord, Reader};
use crate::config::NotifyTarget;
use crate::grants::{db, RequestStatus};
use crate::policy::Approval;
pub use body::{notice_of, Notice, NoticeKind};
pub use post::{Failure, Poster};
pub use sign::{signature, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// How often the store is read for new events.
const POLL: Duration = Duration::from_millis(200);
/// Events read per query.
const PAGE: usize = 1000;
/// Attempts per notice; with the back-off below they span about 2 minutes.
pub const MAX_ATTEMPTS: u32 = 8;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(60);
/// Notices being delivered at once; past that the tail waits (sessions
/// do not).
const MAX_IN_FLIGHT: usize = 32;

/// The wait before attempt `attempt + 1`; `None` after the last attempt.
pub fn retry_after(attempt: u32) -> Option<Duration> {
    if attempt >= MAX_ATTEMPTS {
        return None;
    }
    let doubled = FIRST_RETRY.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    Some(doubled.min(LAST_RETRY))
}

/// A notifier whose secret has been read, ready to start.
pub struct Notifier {
    poster: Arc<Poster>,
    origin: String,
}

impl Notifier {
    /// Reads the secret: a bad one refuses the server's start.
    pub fn prepare(target: &NotifyTarget) -> anyhow::Result<Notifier> {
        let secret = target.read_secret().map_err(anyhow::Error::msg)?;
        Ok(Notifier {
            poster: Arc::new(Poster::new(target, secret)),
            origin: target.origin(),
        })
    }

    /// Starts tailing the store from its last event now. A store whose
    /// last event cannot be read refuses the start: from 0, every request
    /// still pending would be sent again.
    pub async fn start(self, ctx: Arc<ServerContext>) -> anyhow::Result<()> {
        let store = ctx.config.store.clone();
        let path = store.clone();
        let after = tokio::task::spawn_blocking(move || Reader::open(&path)?.last_seq())
            .await
            .map_err(|_| anyhow::anyhow!("notify: reading the store's last event failed"))?
            .map_err(|e| anyhow::anyhow!("notify: reading the store's last event: {e}"))?;
        eprintln!(
            "portcullis: notify: pending requests and held commands go to {}",
            self.origin
        );
        tokio::spawn(tail(ctx, self.poster, store, after));
        Ok(())
    }
}

/// Reads new events forever, starting a delivery for each notice.
async fn tail(ctx: Arc<ServerContext>, poster: Arc<Poster>, store: PathBuf, mut after: i64) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut reader = None;
    loop {
        let (kept, page) = read_page(reader.take(), store.clone(), after).await;
        reader = kept;
        for record in &page {
            after = record.seq;
            let Some(notice) = notice_for(&ctx, record).await else {
                continue;
            };
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let (ctx, poster) = (ctx.clone(), poster.clone());
            tokio::spawn(async move {
                deliver(&ctx, &poster, notice).await;
                drop(slot);
            });
        }
        if page.len() < PAGE {
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The next page of events after `after`, read off the async threads; the
/// reader is kept for the next page unless it failed.
async fn read_page(
    reader: Option<Reader>,
    store: PathBuf,
    after: i64,
) -> (Option<Reader>, Vec<EventRecord>) {
    let read = tokio::task::spawn_blocking(move || {
        let reader = match reader {
            Some(reader) => reader,
            None => Reader::open(&store)?,
        };
        let page = reader.events_after(after, None, PAGE)?;
        Ok::<_, crate::audit::StoreError>((reader, page))
    })
    .await;
    match read {
        Ok(Ok((reader, page))) => (Some(reader), page),
        Ok(Err(error)) => {
            tracing::warn!(%error, "notify: reading the store failed; retrying");
            (None, Vec::new())
        }
        Err(_) => (None, Vec::new()),
    }
}

/// The notice for `record`, if someone is to be asked about it.
async fn notice_for(ctx: &Arc<ServerContext>, record: &EventRecord) -> Option<Notice> {
    let notice = match notice_of(record)? {
        Ok(notice) => notice,
        Err(why) => {
            tracing::warn!(
                seq = record.seq,
                kind = record.entry.kind(),
                why,
                "notify: skipped"
            );
            return None;
        }
    };
    match standing(ctx, &notice).await {
        Standing::Decided => None,
        Standing::Waiting => Some(notice),
    }
}

/// Whether the notified request still waits for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Waiting,
    Decided,
}

async fn standing(ctx: &Arc<ServerContext>, notice: &Notice) -> Standing {
    match notice.kind {
        NoticeKind::GrantRequested => grant_standing(ctx, notice).await,
        NoticeKind::CommandHeld => hold_standing(ctx, notice).await,
    }
}

/// A held command waits while its row says pending (or cannot be read).
async fn hold_standing(ctx: &Arc<ServerContext>, notice: &Notice) -> Standing {
    let id = notice.request_id;
    match ctx.book.hold(id).await {
        Ok(Some(hold)) if hold.status != db::HoldStatus::Pending => Standing::Decided,
        Ok(None) => Standing::Decided,
        Ok(Some(_)) | Err(_) => Standing::Waiting,
    }
}

/// A request of an auto-approved role needs no one (it is issued at once,
/// perhaps not yet when this runs); otherwise its row says. A row that
/// cannot be read errs on the side of asking.
async fn grant_standing(ctx: &Arc<ServerContext>, notice: &Notice) -> Standing {
    let policy = ctx.policy();
    let auto = notice
        .role
        .as_ref()
        .and_then(|role| policy.roles.get(role))
        .is_some_and(|role| role.approval == Approval::Auto);
    if auto {
        return Standing::Decided;
    }
    let id = notice.request_id;
    match ctx.book.request(id).await {
        Ok(Some(request)) if request.status != RequestStatus::Pending => Standing::Decided,
        Ok(None) => Standing::Decided,
        Ok(Some(_)) | Err(_) => Standing::Waiting,
    }
}

/// Attempts until one succeeds, the attempts run out, or the request is
/// decided; each failure logged and recorded.
async fn deliver(ctx: &Arc<ServerContext>, poster: &Arc<Poster>, notice: Notice) {
    let body = Arc::new(notice.body.clone());
    for attempt in 1..=MAX_ATTEMPTS {
        let failure = match poster.attempt(body.clone()).await {
            Ok(()) => {
                tracing::debug!(seq = notice.seq, attempt, "notify: delivered");
                return;
            }
            Err(failure) => failure,
        };
        let retry = retry_after(attempt);
        tracing::warn!(
            kind = notice.kind.as_str(),
            request = notice.request_id,
            attempt,
            retry_in_secs = retry.map(|d| d.as_secs()),
            reason = %failure,
            "notify: delivery failed"
        );
        let event = Event::NotifyFailed {
            event_kind: notice.kind.as_str().to_owned(),
            event_seq: notice.seq,
            request_id: notice.request_id,
            attempt,
            reason: failure.to_string(),
            retry_in_secs: retry.map(|d| d.as_secs()),
        };
        if let Err(error) = ctx.store.record(None, None, event).await {
            tracing::error!(%error, "notify: could not record a failed delivery");
        }
        let Some(wait) = retry else {
            return;
        };
        tokio::time::sleep(wait).await;
        if standing(ctx, &notice).await == Standing::Decided {
            tracing::info!(
                request = notice.request_id,
                "notify: the request was decided; not retried"
            );
            return;
        }
    }
}
