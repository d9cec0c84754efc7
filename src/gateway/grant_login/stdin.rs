//! The grant login's stdin: read to its end, within a bound.

use russh::keys::PublicKey;
use russh::{ChannelMsg, ChannelReadHalf};

use super::refusal::Refusal;
use crate::proxy::EarlyInput;

/// A task public key is one line, and a JSON request one key and a few
/// patterns; anything longer is neither.
pub(super) const MAX_STDIN: usize = 16 * 1024;

/// The request's stdin: the channel, and what came before the request.
pub struct Stdin {
    pub reader: ChannelReadHalf,
    pub early: EarlyInput,
}

/// Everything the client sends until EOF; `None` past [`MAX_STDIN`].
pub(super) async fn read_all(stdin: Stdin) -> Option<Vec<u8>> {
    let Stdin { mut reader, early } = stdin;
    let mut input: Vec<u8> = early.data.concat();
    let mut open = !early.closed;
    while open && input.len() <= MAX_STDIN {
        let Some(msg) = reader.wait().await else {
            break;
        };
        match msg {
            ChannelMsg::Data { data } => input.extend_from_slice(&data),
            ChannelMsg::Eof | ChannelMsg::Close => open = false,
            _ => {}
        }
    }
    (input.len() <= MAX_STDIN).then_some(input)
}

/// The task key a plain request sends on stdin.
pub(super) async fn read_task_key(stdin: Stdin) -> Result<PublicKey, Refusal> {
    let input = read_all(stdin).await.ok_or(Refusal::StdinTooLong)?;
    let text = String::from_utf8_lossy(&input);
    PublicKey::from_openssh(text.trim()).map_err(|_| Refusal::NotAKey)
}
