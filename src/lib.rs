//! herd: many trading strategies in one process, as supervised actix actors, trading through
//! the Alpaca API or the embedded Alpaca-compatible simulator.

pub mod sim;
