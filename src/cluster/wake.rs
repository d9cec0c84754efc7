//! LISTEN/NOTIFY: a revocation committed anywhere wakes every replica's
//! watch at once. The watch also polls, so a lost notification (or a lost
//! listening connection) delays a revocation by one poll, never forever.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::grants::REVOCATIONS_CHANNEL;
use super::Cluster;

/// How long the listener waits before connecting again after losing its
/// connection.
const RECONNECT: Duration = Duration::from_secs(1);

/// Notified on every revocation notice.
#[derive(Default)]
pub struct RevocationWake {
    notify: Notify,
}

impl RevocationWake {
    /// Waits for the next notice.
    pub async fn notified(&self) {
        self.notify.notified().await
    }
}

impl Cluster {
    /// Listens for revocation notices for as long as the server runs (its
    /// own connection: the shared one is taken per operation).
    pub fn listen_for_revocations(&self) -> Arc<RevocationWake> {
        let wake = Arc::new(RevocationWake::default());
        let config = self.config.clone();
        let tls = self.tls.clone();
        let waker = wake.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = listen_once(&config, tls.clone(), &waker).await {
                    tracing::warn!(error = %e, "revocation notices: connection lost; polling until it is back");
                }
                tokio::time::sleep(RECONNECT).await;
            }
        });
        wake
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
    wake: &RevocationWake,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {REVOCATIONS_CHANNEL}");
    {
        let listen = client.batch_execute(&statement);
        tokio::pin!(listen);
        // The connection must be driven while LISTEN is sent, so both at once.
        loop {
            tokio::select! {
                done = &mut listen => { done?; break; }
                message = messages.next() => match message {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                }
            }
        }
    }
    // Anything committed while no one listened is caught by this wake-up.
    wake.notify.notify_one();
    while let Some(message) = messages.next().await {
        if let AsyncMessage::Notification(_) = message? {
            wake.notify.notify_one();
        }
    }
    drop(client);
    Ok(())
}
