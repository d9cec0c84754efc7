//! The splice of a client channel and a target channel, for exec and shell
//! alike: stream bytes both ways with a recording tap, terminal resizes and
//! signals passed on and recorded, exit status and signal passed back.
//!
//! Invariant: every stdin, stdout and stderr byte is handed to the store
//! before it is forwarded, and every resize and signal is committed before
//! it reaches the target; the exit status and exit signal reach the client
//! only as a `Recorded<Exit>` (a status that cannot be recorded is not
//! delivered: the client gets an error line and 255). Each direction is
//! drained into its own bounded buffer (drain.rs), so a reader that stops
//! reading one channel holds at most that buffer before its own channel
//! stops, not the other channels of either connection; the store's queue is
//! bounded too. If the store fails, the splice stops rather than forward
//! unrecorded.

use std::sync::{Arc, Mutex};

use russh::client;
use russh::{Channel, ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};

use super::drain::{Drained, CHANNEL_BUFFER};
use super::observe::Observer;
use super::{ClientChannel, EarlyInput, SessionLink};
use crate::audit::{Event, Stream};
use crate::session::setup::WindowSize;
use crate::session::{Exit, LiveSession};
use crate::upstream::Upstream;

/// The observer of a shell, shared by the splice's two directions.
type SharedObserver = Option<Arc<Mutex<Observer>>>;

/// The session's upstream connection, or a recorded failure and one
/// `portcullis: error:` line to the client.
pub async fn target_or_fail(link: &SessionLink, client: &ClientChannel) -> Option<Arc<Upstream>> {
    match link.target.get().await {
        Ok(upstream) => Some(upstream),
        Err(e) => {
            fail_target(&link.live, client, e.to_string()).await;
            None
        }
    }
}

/// Records an upstream failure and tells the client.
pub async fn fail_target(live: &LiveSession, client: &ClientChannel, reason: String) {
    let event = Event::UpstreamFailed {
        reason: reason.clone(),
    };
    live.record_best_effort(Some(client.id), event).await;
    client.fail(&reason).await;
}

/// Splices until the target closes its channel or either side fails.
/// `refused` is the client's line when the target answers `Failure`.
/// The splice also ends, with one line to the client, when the session
/// must end (expiry, revocation, idle).
pub async fn run(
    link: &SessionLink,
    client: &ClientChannel,
    reader: ChannelReadHalf,
    early: EarlyInput,
    target: Channel<client::Msg>,
    observer: Option<Observer>,
    refused: &str,
) {
    let live = &link.live;
    let observer: SharedObserver = observer.map(|o| Arc::new(Mutex::new(o)));
    let (target_reader, target_writer) = target.split();
    let inbound = tokio::spawn(client_to_target(
        live.clone(),
        client.id,
        (reader, early),
        target_writer,
        observer.clone(),
    ));
    tokio::select! {
        () = target_to_client(live, client, target_reader, observer, refused) => client.close().await,
        reason = live.terminated() => {
            client.fail(&format!("session ended: {reason}")).await;
        }
    }
    inbound.abort();
}

/// stdin, resizes, signals: client -> store -> target.
async fn client_to_target(
    live: Arc<LiveSession>,
    id: ChannelId,
    (reader, early): (ChannelReadHalf, EarlyInput),
    target: ChannelWriteHalf<client::Msg>,
    observer: SharedObserver,
) {
    for data in early.data {
        let recorded = live.record_chunk(id, Stream::Stdin, data.clone());
        if recorded.await.is_err() || target.data_bytes(data).await.is_err() {
            let _ = target.close().await;
            return;
        }
    }
    if early.closed {
        let _ = target.eof().await;
    }
    let mut reader = Drained::start(reader, CHANNEL_BUFFER);
    while let Some(msg) = reader.next().await {
        live.touch();
        let forwarded = match msg {
            ChannelMsg::Data { data } => {
                let recorded = live.record_chunk(id, Stream::Stdin, data.clone());
                if recorded.await.is_err() {
                    break;
                }
                observe(&observer, |o| o.input(&data));
                target.data_bytes(data).await.is_ok()
            }
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } => {
                let size = WindowSize {
                    cols: col_width,
                    rows: row_height,
                    pix_width,
                    pix_height,
                };
                let Ok(resize) = live.record_resize(id, size).await else {
                    break;
                };
                let size = resize.action();
                observe(&observer, |o| o.resize(size.cols, size.rows));
                target
                    .window_change(size.cols, size.rows, size.pix_width, size.pix_height)
                    .await
                    .is_ok()
            }
            ChannelMsg::Signal { signal } => {
                let Ok(signal) = live.record_signal(id, signal).await else {
                    break;
                };
                target.signal(signal.action().clone()).await.is_ok()
            }
            ChannelMsg::Eof => target.eof().await.is_ok(),
            ChannelMsg::Close => break,
            _ => true,
        };
        if !forwarded {
            break;
        }
    }
    // The client is gone or the store failed: the target must not go on
    // reading input nobody records.
    let _ = target.close().await;
}

/// stdout, stderr, exit status: target -> store -> client.
async fn target_to_client(
    live: &LiveSession,
    client: &ClientChannel,
    reader: ChannelReadHalf,
    observer: SharedObserver,
    refused: &str,
) {
    let mut exited = false;
    let mut reader = Drained::start(reader, CHANNEL_BUFFER);
    while let Some(msg) = reader.next().await {
        live.touch();
        if matches!(
            msg,
            ChannelMsg::ExitStatus { .. } | ChannelMsg::ExitSignal { .. }
        ) {
            exited = true;
        }
        let delivered = match msg {
            ChannelMsg::Data { data } => {
                let recorded = live.record_chunk(client.id, Stream::Stdout, data.clone());
                if recorded.await.is_err() {
                    stop_unrecorded(client).await;
                    return;
                }
                let lines = observe(&observer, |o| o.output(&data)).unwrap_or_default();
                let delivered = client.writer.data_bytes(data).await.is_ok();
                for line in lines {
                    // Not authoritative: the bytes are recorded already.
                    let event = Event::CommandObserved { line };
                    live.record_best_effort(Some(client.id), event).await;
                }
                delivered
            }
            ChannelMsg::ExtendedData { data, ext } => {
                let recorded = live.record_chunk(client.id, Stream::Stderr, data.clone());
                if recorded.await.is_err() {
                    stop_unrecorded(client).await;
                    return;
                }
                client.writer.extended_data_bytes(ext, data).await.is_ok()
            }
            ChannelMsg::ExitStatus { exit_status } => {
                let exit = Exit::Status(exit_status);
                match live.record_exit(client.id, exit).await {
                    Ok(recorded) => client.deliver_exit(&recorded).await,
                    Err(_) => {
                        stop_unrecorded(client).await;
                        return;
                    }
                }
            }
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            } => {
                let exit = Exit::Signal {
                    signal: signal_name,
                    core_dumped,
                    error_message,
                    lang_tag,
                };
                match live.record_exit(client.id, exit).await {
                    Ok(recorded) => client.deliver_exit(&recorded).await,
                    Err(_) => {
                        stop_unrecorded(client).await;
                        return;
                    }
                }
            }
            ChannelMsg::Failure => {
                client.fail(refused).await;
                return;
            }
            // Held back until the exit status is out: OpenSSH closes a
            // channel once it has EOF both ways, and an exit status that
            // arrives after its close is lost (committing it makes ours
            // later than the target's). `run` sends EOF with the close.
            ChannelMsg::Eof => true,
            ChannelMsg::Close => break,
            _ => true,
        };
        if !delivered {
            return;
        }
    }
    if !exited {
        // The target went away mid-command (restart, crash, network): the
        // client learns that it did not complete, and why.
        let reason = format!(
            "target {} closed the channel before an exit status",
            live.scope().target().name
        );
        fail_target(live, client, reason).await;
    }
}

/// Runs `f` on the observer, if there is one and it is not poisoned.
fn observe<T>(observer: &SharedObserver, f: impl FnOnce(&mut Observer) -> T) -> Option<T> {
    let mut guard = observer.as_ref()?.lock().ok()?;
    Some(f(&mut guard))
}

/// Fail closed: output that cannot be recorded is not forwarded.
async fn stop_unrecorded(client: &ClientChannel) {
    client
        .fail("the audit store cannot record this session's output; stopping it")
        .await;
}
