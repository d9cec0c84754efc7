//! The operator's commands that are more than a call into a lower layer:
//! signing a grant, listing the request queue, checking a setup, asking
//! the server to reload.
//!
//! Invariant: these run as their own processes beside a server; every
//! write they make goes through the store's transactions (`audit::Txn`),
//! so the server sees it as it would its own.

pub mod check;
pub mod cluster;
pub mod control_chain;
pub mod grant;
pub mod krl;
pub mod reload;
pub mod requests;
