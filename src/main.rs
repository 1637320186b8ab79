//! The `herd` binary: `run` (the default), `sim`, `check-config`, `healthcheck`, `journal export`.
//!
//! Exit codes: 0 success; 1 start-up failure or a drain that missed its deadline; 2 invalid
//! configuration; 130 forced by a second signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use clap::{Parser, Subcommand};

use herd::journal::{ExportFormat, ExportKind};
use herd::metrics::Metrics;
use herd::settings::{LoadOptions, Settings};
use herd::telemetry::Traces;

/// mimalloc instead of glibc's malloc: see Cargo.toml and BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Probe a running herd's liveness (`/livez`), for a container's HEALTHCHECK: exit 0 when
    /// it answers 200 within the timeout, 1 otherwise. Needs no curl in the image.
    Healthcheck {
        /// What to probe; default `http://127.0.0.1:<http.port>/livez` from the configuration.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Give up after this long.
        #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Read the journal (the one the configuration names).
    Journal {
        #[command(subcommand)]
        command: JournalCommand,
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum JournalCommand {
    /// Write the decisions, orders or fills of a time range, oldest first, as CSV or JSON lines.
    Export {
        /// What to export.
        #[arg(long, value_enum)]
        kind: ExportKind,
        /// Start of the range (inclusive): a date (UTC midnight) or an RFC 3339 time.
        #[arg(long, value_name = "TIME")]
        from: String,
        /// End of the range (exclusive); default: now.
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// Write here instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// A current-thread runtime for the one-shot subcommands (healthcheck, journal export).
fn one_shot_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("herd: cannot start a runtime: {e}");
            ExitCode::FAILURE
        })
}

/// `herd healthcheck`: one GET, 200 → exit 0; anything else (refused, timed out, 503) → 1 with
/// the reason on stderr.
fn healthcheck(url: &str, timeout: std::time::Duration) -> ExitCode {
    let runtime = match one_shot_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let answer = runtime.block_on(async {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        client.get(url).send().await
    });
    match answer {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("herd: {url} answered {}", r.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("herd: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A time given on the command line: `2026-03-02` (UTC midnight) or RFC 3339.
fn parse_time(flag: &str, text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_time(NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("--{flag} {text:?}: use a date (2026-03-02) or an RFC 3339 time (2026-03-02T14:30:00Z)"))
}

/// `herd journal export`: exit 0 with the records written, 2 on a bad flag or an unusable
/// journal, 1 when reading or writing fails.
fn export_journal(settings: &Settings, command: JournalCommand) -> ExitCode {
    let JournalCommand::Export {
        kind,
        from,
        to,
        format,
        output,
    } = command;
    let range = parse_time("from", &from).and_then(|from| {
        let to = to
            .as_deref()
            .map_or_else(|| Ok(Utc::now()), |t| parse_time("to", t))?;
        if to <= from {
            return Err(format!("--to {to} must be after --from {from}"));
        }
        Ok((from, to))
    });
    let (from, to) = match range {
        Ok(r) => r,
        Err(e) => {
            eprintln!("herd: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match one_shot_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let pool =
            match herd::journal::open_for_reading(&settings.journal, &settings.data.dir).await {
                Ok(pool) => pool,
                Err(e) => {
                    eprintln!("herd: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
        let mut out: Box<dyn std::io::Write> = match &output {
            Some(path) => match std::fs::File::create(path) {
                Ok(f) => Box::new(std::io::BufWriter::new(f)),
                Err(e) => {
                    eprintln!("herd: cannot create {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            },
            None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        };
        let written = herd::journal::export(&pool, kind, from, to, format, &mut out).await;
        match written.and_then(|n| out.flush().map(|()| n).map_err(Into::into)) {
            Ok(n) => {
                eprintln!("herd: exported {n} records");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("herd: {e}");
                ExitCode::FAILURE
            }
        }
    })
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
        Command::Healthcheck {
            url,
            timeout,
            config,
        } => {
            let url = match url {
                Some(url) => url,
                None => match load(config) {
                    Ok(settings) => format!("http://127.0.0.1:{}/livez", settings.http.port),
                    Err(code) => return code,
                },
            };
            healthcheck(&url, timeout)
        }
        Command::Journal { command, config } => match load(config) {
            Ok(settings) => export_journal(&settings, command),
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
                    e.exit_code()
                }
            };
            // Exit here rather than by dropping the runtime: the drop would wait for every
            // blocking-pool thread, e.g. a strategy core still deciding past the drain
            // deadline. The drain has already settled what matters; `exit_process` says why
            // not `std::process::exit` either.
            herd::shutdown::exit_process(code);
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
