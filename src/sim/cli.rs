//! Command-line options of `herd sim` (the simulator on its own), for herd's CLI to flatten
//! into its `sim` subcommand:
//!
//! ```ignore
//! #[derive(clap::Subcommand)]
//! enum Command { Sim(herd::sim::SimArgs), /* ... */ }
//! // ...
//! let (config, addr) = args.apply(settings.sim)?;
//! let server = SimServer::start(config, addr).await?;
//! ```
//!
//! Flags override the `[sim]` table; unset flags leave it alone.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::calendar::MarketHours;
use super::config::SimConfig;
use super::value::SimConfigError;

/// Options of `herd sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
    /// Address to bind. The simulator has no access control beyond API keys and its control
    /// endpoints have none: keep it on loopback unless you mean it.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// Sim seconds per real second (sim.speed).
    #[arg(long)]
    pub speed: Option<f64>,
    /// Seed of the synthetic market (sim.seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Sim time at startup, RFC 3339 (sim.start).
    #[arg(long)]
    pub start: Option<String>,
    /// "always" or "regular" (sim.market_hours).
    #[arg(long)]
    pub market_hours: Option<MarketHours>,
    /// Directory of SYMBOL.csv files to replay (sim.csv_dir).
    #[arg(long)]
    pub csv_dir: Option<std::path::PathBuf>,
}

impl SimArgs {
    /// `config` with the flags applied, validated, and the address to bind.
    pub fn apply(&self, mut config: SimConfig) -> Result<(SimConfig, SocketAddr), SimConfigError> {
        if let Some(s) = self.speed {
            config.speed = s;
        }
        if let Some(s) = self.seed {
            config.seed = s;
        }
        if let Some(s) = &self.start {
            config.start = Some(s.clone());
        }
        if let Some(h) = self.market_hours {
            config.market_hours = h;
        }
        if let Some(d) = &self.csv_dir {
            config.csv_dir = Some(d.clone());
        }
        config.validate()?;
        Ok((config, SocketAddr::new(self.host, self.port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn flags_override_the_config() {
        let cli = Cli::try_parse_from(["herd", "--port", "9000", "--speed", "500", "--seed", "7"])
            .expect("parses");
        let (cfg, addr) = cli.sim.apply(SimConfig::default()).expect("valid");
        assert_eq!(addr.to_string(), "127.0.0.1:9000");
        assert_eq!(cfg.speed, 500.0);
        assert_eq!(cfg.seed, 7);
        let cli = Cli::try_parse_from(["herd", "--speed=-3"]).expect("parses");
        assert!(cli.sim.apply(SimConfig::default()).is_err());
        assert!(Cli::try_parse_from(["herd", "--market-hours", "sometimes"]).is_err());
    }
}
