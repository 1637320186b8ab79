//! The embedded Alpaca-compatible simulator (placeholder until the simulator lands).
