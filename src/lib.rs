//! herd: many trading strategies in one process, as supervised actix actors, trading through
//! the Alpaca API or the embedded Alpaca-compatible simulator.
//!
//! Crate map (ARCHITECTURE.md has the invariants of each part):
//! - [`settings`]: typed, validated configuration; the one place every key is defined.
//! - [`supervisor`]: child specs, restart intensity and backoff, the drain.
//! - [`strategy`]: the pure `Strategy` cores and the StrategyActor that runs each instance.
//! - [`broker`]: the BrokerActor, the only owner of broker I/O, and the Alpaca REST client.
//! - [`cache`]: the DashMap cache and the CacheActor; [`metrics`]: every metric, the MetricsActor.
//! - [`http`]: the ops endpoints; [`telemetry`]: logs; [`shutdown`]: signals and the drain.
//! - [`sim`]: the embedded Alpaca-compatible simulator.
//! - [`app`]: wiring; [`process`]: process phase and readiness; [`domain`]: shared value types.

pub mod app;
pub mod broker;
pub mod cache;
pub mod domain;
pub mod http;
pub mod journal;
pub mod metrics;
pub mod process;
pub mod settings;
pub mod shutdown;
pub mod sim;
pub mod strategy;
pub mod supervisor;
pub mod telemetry;
