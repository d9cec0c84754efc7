//! The server's Prometheus metrics: one registry per process, counted where
//! things happen (the store's writer for what is committed, the SSH front
//! for refusals and limits) and read at scrape time for the gauges.
//!
//! Invariant: labels come from small fixed sets (event kinds, refusal
//! classes, limit names), never from what a client sent, so neither the
//! registry's size nor a scrape can be driven by a peer; no label carries
//! an identity, a command or a key.

use std::sync::atomic::AtomicI64;
use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    pub limit: &'static str,
}

pub struct Metrics {
    registry: Registry,
    /// Every event committed by this process's writer, by kind
    /// (`auth.accepted`, `exec.refused`, `forward.opened`, ...).
    pub events: Family<KindLabel, Counter>,
    pub auth_refused: Family<ReasonLabel, Counter>,
    pub limit_hits: Family<LimitLabel, Counter>,
    pub recorded_bytes: Counter,
    /// From handing a write-ahead row to the writer to its commit.
    pub commit_seconds: Histogram,
    pub live_sessions: Gauge<i64, AtomicI64>,
    pub live_channels: Gauge<i64, AtomicI64>,
    pub writer_queue: Gauge<i64, AtomicI64>,
    pub store_healthy: Gauge<i64, AtomicI64>,
}

/// The process's metrics (made on first use).
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("portcullis");
        let m = Metrics {
            events: Family::default(),
            auth_refused: Family::default(),
            limit_hits: Family::default(),
            recorded_bytes: Counter::default(),
            // 100 µs to about 3 s.
            commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            live_sessions: Gauge::default(),
            live_channels: Gauge::default(),
            writer_queue: Gauge::default(),
            store_healthy: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "events",
            "Audit events committed, by kind",
            m.events.clone(),
        );
        registry.register(
            "auth_refused",
            "Authentications refused, by reason",
            m.auth_refused.clone(),
        );
        registry.register(
            "limit_hits",
            "Connections or requests refused by a limit",
            m.limit_hits.clone(),
        );
        registry.register(
            "recorded_bytes",
            "Stream bytes committed to the audit store",
            m.recorded_bytes.clone(),
        );
        registry.register(
            "commit_seconds",
            "Write-ahead commit latency, from queueing the row to its commit",
            m.commit_seconds.clone(),
        );
        registry.register(
            "live_sessions",
            "Sessions open now",
            m.live_sessions.clone(),
        );
        registry.register(
            "live_channels",
            "Channels open now, over all sessions",
            m.live_channels.clone(),
        );
        registry.register(
            "writer_queue_depth",
            "Messages waiting for the audit store's writer",
            m.writer_queue.clone(),
        );
        registry.register(
            "store_healthy",
            "1 while the audit store can write, 0 while it fails closed",
            m.store_healthy.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text exposition format (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
