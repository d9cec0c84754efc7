//! The request book: grant requests, held commands, the certs issued for
//! requests and the per-identity rate limits, kept in this process's store
//! on one machine or in the cluster's database with `[cluster]`. The server
//! (the grant login, live sessions, the expiry sweep) asks the book; the
//! book picks the backend, and both run the same rules (`grants::db`).
//!
//! Invariant: with the cluster, every change commits there first (one id
//! space and one state for every replica), then its event is recorded in
//! this replica's store too, so its chain and transcripts read as on one
//! machine; a change whose local record fails is refused to the client.

mod holds;
mod limit;

use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;

use crate::audit::{Abort, Store, StoreError};
use crate::cluster::{Cluster, ClusterError};
use crate::config::Limits;
use crate::grants::{
    self, db, GrantError, GrantsReader, IssueOrder, Issued, NewRequest, RequestRecord,
};
pub use holds::HeldRun;
pub use limit::{Limiter, Throttled};

/// Why the book could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    /// The rules said no; the line says why.
    #[error(transparent)]
    Refused(#[from] GrantError),
    #[error("the audit store failed: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

impl From<Abort<GrantError>> for BookError {
    fn from(e: Abort<GrantError>) -> BookError {
        match e {
            Abort::Refused(e) => BookError::Refused(e),
            Abort::Failed(e) => BookError::Store(e),
        }
    }
}

type Booked<T> = Result<T, BookError>;

/// Where this server keeps its requests.
pub struct Book {
    store: Store,
    reader: GrantsReader,
    cluster: Option<Arc<Cluster>>,
    /// Grant requests per identity.
    pub requests: Limiter,
    /// Held commands per identity.
    pub holds: Limiter,
}

impl Book {
    pub fn new(
        store: Store,
        reader: GrantsReader,
        cluster: Option<Arc<Cluster>>,
        limits: &Limits,
    ) -> Book {
        Book {
            requests: Limiter::new("grant_requests", limits.grant_requests, cluster.clone()),
            holds: Limiter::new("held_commands", limits.held_commands, cluster.clone()),
            store,
            reader,
            cluster,
        }
    }

    /// Records a new request (`grant.requested`); refused for a suspended
    /// identity.
    pub async fn create_request(&self, new: NewRequest, client_addr: String) -> Booked<i64> {
        let Some(cluster) = &self.cluster else {
            let created = self
                .store
                .transact(move |txn| db::create_request(txn, &new, &client_addr))
                .await;
            return Ok(created?);
        };
        let id = cluster.create_request(&new, &client_addr).await??;
        let event = db::requested_event(id, &new, &client_addr);
        self.store.record(None, None, event).await?;
        Ok(id)
    }

    pub async fn request(&self, id: i64) -> Booked<Option<RequestRecord>> {
        match &self.cluster {
            Some(cluster) => Ok(cluster.request(id).await?),
            None => Ok(self.reader.run(move |conn| db::request(conn, id)).await?),
        }
    }

    /// The cert issued for request `id` and its `valid_before`, if any.
    pub async fn cert_for_request(&self, id: i64) -> Booked<Option<(String, u64)>> {
        match &self.cluster {
            Some(cluster) => Ok(cluster.cert_for_request(id).await?),
            None => {
                let issued = self.reader.run(move |conn| db::cert_for_request(conn, id));
                Ok(issued.await?)
            }
        }
    }

    pub async fn is_suspended(&self, identity: &str) -> Booked<bool> {
        match &self.cluster {
            Some(cluster) => Ok(cluster.is_suspended(identity).await?),
            None => {
                let identity = identity.to_owned();
                let suspended = self
                    .reader
                    .run(move |conn| db::is_suspended(conn, &identity).map_err(GrantError::from));
                Ok(suspended.await?)
            }
        }
    }

    /// Issues the cert `order` asks for through the one issuing path; with
    /// the cluster, the request is taken there first, so it gets one cert
    /// however many replicas deliver it, and the cert is on record there.
    pub async fn issue(&self, ca: PrivateKey, order: IssueOrder) -> Booked<Issued> {
        let issue_here = async |order: IssueOrder| {
            let issued = self
                .store
                .transact(move |txn| grants::issue(txn, &ca, &order))
                .await;
            issued.map_err(BookError::from)
        };
        let Some(cluster) = &self.cluster else {
            return issue_here(order).await;
        };
        let identity = order.identity().to_owned();
        match order.request_id() {
            Some(id) => {
                let order = order.for_cluster_request();
                let issued = cluster
                    .issue_for_request(id, &identity, async || issue_here(order).await)
                    .await;
                issued?
            }
            // On record in the cluster before anyone has it.
            None => {
                let issued = issue_here(order).await?;
                cluster.record_grant(&identity, &issued).await?;
                Ok(issued)
            }
        }
    }

    /// Marks every request and hold nobody decided in time expired.
    pub async fn expire(&self, expiry: Duration) -> Booked<usize> {
        let Some(cluster) = &self.cluster else {
            let swept = self
                .store
                .transact(move |txn| {
                    let requests = db::expire_requests(txn, expiry)?;
                    let holds = db::expire_holds(txn)?;
                    Ok::<_, Abort<GrantError>>(requests + holds)
                })
                .await;
            return Ok(swept?);
        };
        Ok(cluster.expire_requests(expiry).await? + cluster.expire_holds().await?)
    }
}
