//! The measurements, one module per question of issue 6.

pub mod audit;
pub mod backpressure;
pub mod cluster;
pub mod codecs;
pub mod concurrency;
pub mod connect;
pub mod forward;
pub mod throughput;
