//! The web viewer's sign-in state: one-time links (made by `serve` on the
//! `review` login) and browser sessions (made by `portcullis web` when a
//! link is redeemed), kept in the shared store.
//!
//! Invariant: a secret (link token, session id) is 32 random bytes handed
//! out once; the store keeps only its SHA-256, so reading the store signs
//! no one in. A link is redeemed at most once, before its expiry, by one
//! UPDATE (`used = 0 AND expires > now`), so two racing redemptions cannot
//! both win. Secrets are looked up by SQL equality of their hashes: a
//! timing difference would leak bits of a hash of a secret, not of the
//! secret, so no constant-time comparison is needed.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

/// How long a sign-in link may wait to be opened.
pub const LINK_LIFETIME: Duration = Duration::from_secs(60);
/// How long a browser session lasts after sign-in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// A secret as handed out: 64 hex digits of 32 random bytes.
pub struct Secret(String);

impl Secret {
    pub fn random() -> Secret {
        let bytes: [u8; 32] = rand::random();
        Secret(hex::encode(bytes))
    }

    /// The text given to the peer (a link's `token`, a cookie's value).
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

/// The stored form of a secret the peer presents.
fn hash_of(presented: &str) -> Vec<u8> {
    Sha256::digest(presented.as_bytes()).to_vec()
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Stores a new link for `identity`, valid for [`LINK_LIFETIME`] from `now_us`.
pub fn issue_link(conn: &Connection, identity: &str, now_us: i64) -> rusqlite::Result<Secret> {
    let secret = Secret::random();
    conn.execute(
        "INSERT INTO review_links (token_hash, identity, created_at_us, expires_at_us)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            hash_of(secret.reveal()),
            identity,
            now_us,
            now_us.saturating_add(micros(LINK_LIFETIME))
        ],
    )?;
    Ok(secret)
}

/// Why a link did not sign anyone in (the same answer for each, to the peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    /// Unknown, used already, or expired.
    Invalid,
}

/// Consumes the link `token` at `now_us`: the identity it was made for.
pub fn redeem_link(
    conn: &Connection,
    token: &str,
    now_us: i64,
) -> rusqlite::Result<Result<String, LinkRefusal>> {
    let identity = conn
        .query_row(
            "UPDATE review_links SET used = 1
             WHERE token_hash = ?1 AND used = 0 AND expires_at_us > ?2
             RETURNING identity",
            params![hash_of(token), now_us],
            |row| row.get::<_, String>(0),
        )
        .optional()?;
    Ok(identity.ok_or(LinkRefusal::Invalid))
}

/// A browser session as handed to the browser: the cookie value, and the
/// CSRF value its pages embed.
pub struct NewBrowserSession {
    pub cookie: Secret,
    pub csrf: Secret,
}

/// Starts a browser session for `identity`, valid for [`SESSION_LIFETIME`].
pub fn begin_browser_session(
    conn: &Connection,
    identity: &str,
    now_us: i64,
) -> rusqlite::Result<NewBrowserSession> {
    let session = NewBrowserSession {
        cookie: Secret::random(),
        csrf: Secret::random(),
    };
    conn.execute(
        "INSERT INTO review_sessions (id_hash, identity, csrf, created_at_us, expires_at_us)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            hash_of(session.cookie.reveal()),
            identity,
            session.csrf.reveal(),
            now_us,
            now_us.saturating_add(micros(SESSION_LIFETIME))
        ],
    )?;
    Ok(session)
}

/// A signed-in reviewer, as found from a cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewer {
    pub identity: String,
    /// The session's CSRF value (a form must carry it back).
    pub csrf: String,
}

/// The reviewer of the live browser session `cookie`, if any.
pub fn browser_session(
    conn: &Connection,
    cookie: &str,
    now_us: i64,
) -> rusqlite::Result<Option<Reviewer>> {
    conn.query_row(
        "SELECT identity, csrf FROM review_sessions
         WHERE id_hash = ?1 AND ended = 0 AND expires_at_us > ?2",
        params![hash_of(cookie), now_us],
        |row| {
            Ok(Reviewer {
                identity: row.get(0)?,
                csrf: row.get(1)?,
            })
        },
    )
    .optional()
}

/// Ends the browser session `cookie` (sign-out).
pub fn end_browser_session(conn: &Connection, cookie: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE review_sessions SET ended = 1 WHERE id_hash = ?1",
        params![hash_of(cookie)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
