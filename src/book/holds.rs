//! Held commands in the book: made by the session that held them, read
//! while it waits, taken once to run.

use super::{Book, BookError, Booked};
use crate::audit::{Abort, Event, SessionId};
use crate::grants::db::{self, HoldRecord, NewHold};

/// What a held command is, to be taken to run: the same cert, target and
/// exact command bytes it was held for.
#[derive(Debug, Clone)]
pub struct HeldRun {
    pub id: i64,
    pub cert_fingerprint: String,
    pub target: String,
    pub command: String,
    pub session: SessionId,
    pub channel: u32,
}

impl Book {
    /// Records a new hold and its `command.held` in the holding session.
    pub async fn create_hold(&self, hold: NewHold) -> Booked<i64> {
        let Some(cluster) = &self.cluster else {
            let created = self
                .store
                .transact(move |txn| db::create_hold(txn, &hold))
                .await;
            return Ok(created?);
        };
        let id = cluster.create_hold(&hold).await?;
        let event = db::held_event(id, &hold);
        self.store
            .record(Some(hold.session), hold.channel, event)
            .await?;
        Ok(id)
    }

    pub async fn hold(&self, id: i64) -> Booked<Option<HoldRecord>> {
        match &self.cluster {
            Some(cluster) => Ok(cluster.hold(id).await?),
            None => Ok(self.reader.run(move |conn| db::hold(conn, id)).await?),
        }
    }

    /// The newest hold of this command for this cert on this target that
    /// may still be decided or run.
    pub async fn hold_for_retry(
        &self,
        cert_fingerprint: String,
        target: String,
        command: String,
    ) -> Booked<Option<HoldRecord>> {
        if let Some(cluster) = &self.cluster {
            let held = cluster.hold_for_retry(&cert_fingerprint, &target, &command);
            return Ok(held.await?);
        }
        let now_us = crate::clock::now_us();
        let held = self.reader.run(move |conn| {
            db::hold_for_retry(conn, &cert_fingerprint, &target, &command, now_us)
        });
        Ok(held.await?)
    }

    /// Takes the approved hold (`approved` -> `ran`, once) and commits
    /// `allowed` (the `exec.allowed` naming it) in one step: nothing runs
    /// unless both hold. With the cluster, a failed local commit leaves
    /// the hold approved.
    pub async fn run_approved(&self, run: HeldRun, allowed: Event) -> Booked<()> {
        let HeldRun {
            id,
            cert_fingerprint,
            target,
            command,
            session,
            channel,
        } = run;
        let Some(cluster) = &self.cluster else {
            let claimed = self
                .store
                .transact(move |txn| {
                    db::claim_approved(txn, id, &cert_fingerprint, &target, &command, session)?;
                    txn.record(Some(session), Some(channel), &allowed)?;
                    Ok::<_, Abort<_>>(())
                })
                .await;
            return Ok(claimed?);
        };
        let store = self.store.clone();
        let record = async move |_: HoldRecord| {
            store
                .record(Some(session), Some(channel), allowed)
                .await
                .map_err(BookError::from)
        };
        let claimed = cluster
            .claim_approved(id, &cert_fingerprint, &target, &command, session, record)
            .await;
        claimed?
    }
}
