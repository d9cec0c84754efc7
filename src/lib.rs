#![forbid(unsafe_code)]
//! portcullis: a just-in-time SSH bastion for AI coding agents.
//!
//! An agent presents a short-lived task certificate; the bastion checks it
//! against the policy ceiling, records every action before it reaches the
//! target, and proxies it with a per-session upstream credential.

// Layers, lowest first; a module imports only from layers below it
// (docs/ARCHITECTURE.md).
pub mod archive;
pub mod audit;
pub mod book;
pub mod cert;
pub mod cidr;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod gateway;
pub mod grants;
pub mod metrics;
pub mod operator;
pub mod packaging;
pub mod policy;
pub mod proxy;
pub mod replay;
pub mod session;
pub mod setup;
pub mod transport;
pub mod upstream;
pub mod web;
