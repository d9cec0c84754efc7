//! The client's side of a session channel: what it sent before its
//! request, and the one way the bastion speaks to it (refusal lines,
//! errors, the target's recorded exit).
//!
//! Invariant: every line the bastion writes is one line with a
//! `portcullis:` prefix, followed by the exit status that says what kind
//! (126 refused, 255 the bastion's error); a target's exit status or
//! signal is delivered only as a `Recorded<Exit>`.

use russh::server::{Handle, Msg};
use russh::{ChannelId, ChannelWriteHalf};

use super::{BASTION_ERROR_EXIT_STATUS, REFUSED_EXIT_STATUS};
use crate::session::{Exit, Recorded};

/// What a client sent on a session channel before its request: stdin that
/// must not be lost, and whether stdin is already closed (OpenSSH's
/// multiplexing sends EOF early).
#[derive(Debug, Default)]
pub struct EarlyInput {
    pub data: Vec<bytes::Bytes>,
    pub closed: bool,
    len: usize,
}

/// Input held before a request, at most: a client has no reason to send
/// more before it says what the input is for.
pub const MAX_EARLY_INPUT: usize = 256 * 1024;

/// What a message that came before the request amounts to.
pub enum BeforeRequest {
    /// Stdin or EOF, kept for the request.
    Kept,
    /// More stdin than [`MAX_EARLY_INPUT`]: refuse the channel.
    Overflow,
    /// The client closed the channel.
    Closed,
    /// Anything else, for the caller.
    Other(russh::ChannelMsg),
}

impl EarlyInput {
    /// Keeps stdin and EOF that arrive before the request.
    pub fn absorb(&mut self, msg: russh::ChannelMsg) -> BeforeRequest {
        match msg {
            russh::ChannelMsg::Data { data } => {
                self.len += data.len();
                self.data.push(data);
                if self.len <= MAX_EARLY_INPUT {
                    BeforeRequest::Kept
                } else {
                    BeforeRequest::Overflow
                }
            }
            russh::ChannelMsg::Eof => {
                self.closed = true;
                BeforeRequest::Kept
            }
            russh::ChannelMsg::Close => BeforeRequest::Closed,
            other => BeforeRequest::Other(other),
        }
    }
}

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

    /// Like [`ClientChannel::refuse`]; on a granted terminal the line ends
    /// in CR LF, since the client's terminal is in raw mode and nothing on
    /// the target translates it.
    pub async fn refuse_on(&self, reason: &str, terminal: bool) {
        let line = format!("portcullis: refused: {reason}");
        self.finish_on(&line, REFUSED_EXIT_STATUS, terminal).await;
    }

    /// `line` on stderr (CR LF on a granted terminal), then `status`, close.
    pub async fn finish_on(&self, line: &str, status: u32, terminal: bool) {
        self.finish(&format!("{line}{}", line_end(terminal)), status)
            .await;
    }

    /// One line on stderr (CR LF on a granted terminal); the channel stays open.
    pub async fn say_on(&self, line: &str, terminal: bool) {
        self.write_stderr(&format!("{line}{}", line_end(terminal)))
            .await;
    }

    /// Exit status 126 and close, without a line: the client was told why.
    pub async fn end_refused(&self) {
        let _ = self.writer.exit_status(REFUSED_EXIT_STATUS).await;
        self.close().await;
    }

    /// One `portcullis: error: ...` line on stderr, exit status 255, close.
    pub async fn fail(&self, reason: &str) {
        self.finish_with_line(
            &format!("portcullis: error: {reason}"),
            BASTION_ERROR_EXIT_STATUS,
        )
        .await;
    }

    /// One line on stderr, then `status`, then close.
    pub async fn finish_with_line(&self, line: &str, status: u32) {
        self.finish(&format!("{line}\n"), status).await;
    }

    /// `text` on stderr, then `status`, then close.
    async fn finish(&self, text: &str, status: u32) {
        self.write_stderr(text).await;
        self.exit(status).await;
    }

    /// One line on stderr; the channel stays open.
    pub async fn say(&self, line: &str) {
        self.write_stderr(&format!("{line}\n")).await;
    }

    async fn write_stderr(&self, text: &str) {
        let _ = self
            .writer
            .extended_data_bytes(1, text.as_bytes().to_vec())
            .await;
    }

    /// Bytes on stdout.
    pub async fn print(&self, bytes: Vec<u8>) {
        let _ = self.writer.data_bytes(bytes).await;
    }

    /// Exit status, EOF, close: for the bastion's own answers (the grant
    /// login, refusals), never for a target's status (that is
    /// [`ClientChannel::deliver_exit`]).
    pub async fn exit(&self, status: u32) {
        let _ = self.writer.exit_status(status).await;
        self.close().await;
    }

    /// Tells the client how the target's command ended: only once that is
    /// on record.
    pub async fn deliver_exit(&self, exit: &Recorded<Exit>) -> bool {
        match exit.action() {
            Exit::Status(status) => self.writer.exit_status(*status).await.is_ok(),
            Exit::Signal {
                signal,
                core_dumped,
                error_message,
                lang_tag,
            } => self
                .handle
                .exit_signal_request(
                    self.id,
                    signal.clone(),
                    *core_dumped,
                    error_message.clone(),
                    lang_tag.clone(),
                )
                .await
                .is_ok(),
        }
    }

    pub async fn close(&self) {
        let _ = self.writer.eof().await;
        let _ = self.writer.close().await;
    }
}

/// A granted terminal is in raw mode on the client, and nothing on the
/// target translates the bastion's own lines.
fn line_end(terminal: bool) -> &'static str {
    match terminal {
        true => "\r\n",
        false => "\n",
    }
}
