//! The `herd` binary: `run` (the default), `sim`, `check-config`.
//!
//! Exit codes: 0 success; 1 start-up failure or a drain that missed its deadline; 2 invalid
//! configuration; 130 forced by a second signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use herd::metrics::Metrics;
use herd::settings::{LoadOptions, Settings};
use herd::telemetry::Traces;

const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "herd",
    version,
    about = "Many trading strategies in one process, supervised, against Alpaca or the embedded simulator"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run every configured strategy instance (the default). Without credentials, against the
    /// embedded simulator.
    Run {
        /// A TOML file layered over config/default.toml and config/$HERD_ENV.toml.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run only the Alpaca-compatible simulator, for development and SDK tests. Flags override
    /// the [sim] table of the configuration.
    Sim {
        #[command(flatten)]
        args: herd::sim::SimArgs,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print the effective configuration (secrets redacted); exit 2 if it is invalid.
    CheckConfig {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

fn load(config: Option<PathBuf>) -> Result<Settings, ExitCode> {
    Settings::load(&LoadOptions::from_process(config)).map_err(|e| {
        eprintln!("herd: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Installs logging and, when the OpenTelemetry environment asks for them, traces; then says
/// what configuration validation normalised.
fn init_telemetry(settings: &Settings, metrics: &Metrics) -> Result<Option<Traces>, ExitCode> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let traces = herd::telemetry::init(
        &settings.log,
        rust_log.as_deref(),
        settings.traces.as_ref(),
        metrics.traces.clone(),
    )
    .map_err(|e| {
        eprintln!("herd: {e}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    for notice in &settings.notices {
        tracing::warn!(event = "config_normalised", notice = %notice, "configuration value normalised");
    }
    if let Some(config) = &settings.traces {
        tracing::info!(
            event = "traces_exporting", endpoint = %config.endpoint, protocol = ?config.protocol,
            queue = config.queue, "exporting traces over OTLP"
        );
    }
    Ok(traces)
}

/// candle asks for its thread count on every tensor operation, and without `RAYON_NUM_THREADS`
/// it parses `/proc/cpuinfo` each time: a neural forecast took 7.4 ms instead of 0.9 ms, and a
/// training twice as long. herd runs one training per core itself (the workshop), so candle
/// gets one thread per job unless the operator says otherwise.
fn pin_tensor_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists, so nothing can
        // read the environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
}

fn main() -> ExitCode {
    pin_tensor_threads();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run { config: None }) {
        Command::CheckConfig { config } => match load(config) {
            Ok(settings) => {
                for notice in &settings.notices {
                    eprintln!("herd: note: {notice}");
                }
                print!("{}", settings.to_redacted_toml());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run { config } => {
            let settings = match load(config) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let metrics = Metrics::new();
            let traces = match init_telemetry(&settings, &metrics) {
                Ok(traces) => traces,
                Err(code) => return code,
            };
            // Bound to a name so that the runtime is not dropped before `exit` below.
            let system = actix::System::new();
            let code = match system.block_on(herd::app::run(settings, metrics, traces)) {
                Ok(code) => code,
                Err(e) => {
                    tracing::error!(error = %e, "herd could not start");
                    eprintln!("herd: {e}");
                    1
                }
            };
            // Exit here rather than by dropping the runtime: the drop would wait for every
            // blocking-pool thread, e.g. a strategy core still deciding past the drain
            // deadline. The drain has already settled what matters.
            std::process::exit(i32::from(code));
        }
        Command::Sim { args, config } => {
            let settings = match load(config) {
                Ok(s) => s,
                Err(code) => return code,
            };
            // The simulator has no metrics and no spans of its own: logs only.
            let mut settings = settings;
            settings.traces = None;
            if let Err(code) = init_telemetry(&settings, &Metrics::new()) {
                return code;
            }
            let (sim, addr) = match args.apply(settings.sim) {
                Ok(applied) => applied,
                Err(e) => {
                    eprintln!("herd: invalid configuration: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            actix::System::new().block_on(run_sim(sim, addr))
        }
    }
}

async fn run_sim(config: herd::sim::SimConfig, addr: SocketAddr) -> ExitCode {
    let mut signals = match herd::shutdown::Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("herd: cannot install the SIGTERM/SIGINT handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sim = match herd::sim::SimServer::start(config, addr).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("herd: cannot start the simulator on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let signal = signals.next().await;
    tracing::info!(signal, "simulator stopping");
    sim.stop().await;
    ExitCode::SUCCESS
}
