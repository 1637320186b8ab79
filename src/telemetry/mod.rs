//! Logging and traces. Logs: one JSON object per line on stdout (timestamp, level, target,
//! message, fields, and the trace and span ids when traced), or readable text for a terminal;
//! `RUST_LOG` overrides the configured level. Traces: herd's spans over OTLP, configured by the
//! standard OpenTelemetry environment (`traces.rs`).
//!
//! Invariant: a panic is written as one plain line to stderr first, then logged as a structured
//! event (log pipelines cannot parse the plain line). The plain line comes first because the
//! structured log can itself panic on a thread whose thread-locals are being destroyed (the log
//! layer keeps per-thread state), and a panic inside the hook aborts the process: the line says
//! what happened before that can.

mod filter;
mod log_ids;
mod traces;

use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracer;
use tracing::Level;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::{Targets, filter_fn};
use tracing_subscriber::fmt;
use tracing_subscriber::fmt::format::{FormatFields, Writer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

pub use traces::{OtlpProtocol, TraceConfig, TraceError, Traces};

use serde::{Deserialize, Serialize};

use crate::domain::{InvalidSetting, panic_message};
use crate::metrics::TraceMetrics;
use filter::{EitherFilter, LogFilter};
use log_ids::WithTraceIds;

/// `[log]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter (`info`, `herd=debug,info`); `RUST_LOG` overrides it.
    pub level: String,
    pub format: LogFormat,
}

impl LogSettings {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        EnvFilter::try_new(&self.level).map(|_| ()).map_err(|e| {
            InvalidSetting::new(
                "log.level",
                format!("{:?}", self.level),
                format!("not a log filter ({e}); use e.g. \"info\" or \"herd=debug,info\""),
            )
        })
    }
}

/// How log lines are written. Parsed from text so that a wrong value is answered with the
/// allowed ones (serde's enum error from the config crate names neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum LogFormat {
    /// One JSON object per line: for log pipelines.
    Json,
    /// Human-readable lines: for a terminal.
    Text,
}

impl TryFrom<String> for LogFormat {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        match raw.trim() {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            _ => Err(format!("{raw:?} is not a log format; allowed: json, text")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log filter {filter:?} is invalid: {reason}")]
    Filter { filter: String, reason: String },
    #[error("a global logger is already installed")]
    AlreadyInstalled,
    #[error(transparent)]
    Traces(#[from] TraceError),
}

/// Installs the global subscriber: log lines filtered by the log level, and, when `traces`
/// is given, herd's spans exported over OTLP (filtered by their own level, so a quiet log
/// level keeps the traces). `rust_log` is the value of `RUST_LOG`, if set. The returned
/// [`Traces`] is flushed by the drain.
pub fn init(
    settings: &LogSettings,
    rust_log: Option<&str>,
    traces: Option<&TraceConfig>,
    metrics: TraceMetrics,
) -> Result<Option<Traces>, TelemetryError> {
    let filter = rust_log
        .filter(|f| !f.trim().is_empty())
        .unwrap_or(&settings.level);
    let filter = LogFilter::parse(filter)?;
    let pipeline = traces
        .map(|config| Traces::start(config, metrics))
        .transpose()?;
    let (traces, installed) = match pipeline {
        Some((traces, tracer)) => {
            let subscriber = traced(settings.format, &filter, tracer, std::io::stdout)?;
            (Some(traces), subscriber.try_init())
        }
        None => {
            let subscriber = untraced(settings.format, &filter, std::io::stdout)?;
            (None, subscriber.try_init())
        }
    };
    installed.map_err(|_| TelemetryError::AlreadyInstalled)?;
    install_panic_hook();
    Ok(traces)
}

/// The subscriber when traces are exported: the exporter's layer and the log layer, each
/// with its own filter, under a global filter that refuses what both refuse (see
/// [`filter`]).
fn traced<W>(
    format: LogFormat,
    filter: &LogFilter<'_>,
    tracer: SdkTracer,
    writer: W,
) -> Result<impl tracing::Subscriber + Send + Sync + use<W>, TelemetryError>
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // Only herd's own spans: the exporter's HTTP/gRPC stack traces through `tracing` too, and
    // exporting its spans would feed the exporter its own work.
    let exported = || Targets::new().with_target("herd", Level::INFO);
    let exporter = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(exported());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(tracing_subscriber::registry()
        .with(exporter)
        .with(log_layer(format, true, writer).with_filter(filter.env()?))
        .with(EitherFilter {
            exported: exported(),
            logged: filter.env()?,
        }))
}

/// The subscriber when no trace is exported: the log layer alone, writing to `writer`,
/// filtered globally (see [`filter`]). Not beside an absent (`Option::None`) exporter layer:
/// that enables every span for the layers beside it.
///
/// A JSON line prints no span, so for JSON no span is built at all, unless the filter names
/// spans (it needs them to apply): three spans or more an instance-tick (the tick, its view,
/// its decide step, one per order), a thousand instances at once. Text lines print the spans
/// they are in.
fn untraced<W>(
    format: LogFormat,
    filter: &LogFilter<'_>,
    writer: W,
) -> Result<impl tracing::Subscriber + Send + Sync + for<'a> LookupSpan<'a> + use<W>, TelemetryError>
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let spans = format == LogFormat::Text || filter.selects_by_span();
    Ok(tracing_subscriber::registry()
        .with(log_layer(format, false, writer))
        .with(filter.env()?)
        .with(filter_fn(move |meta| spans || meta.is_event())))
}

/// The log layer: JSON lines (opening with the trace and span ids when `traced`) or text.
fn log_layer<S, W>(format: LogFormat, traced: bool, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Json => {
            let json = fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false);
            let layer = fmt::layer().fmt_fields(NoSpanFields).with_writer(writer);
            if traced {
                layer.event_format(WithTraceIds(json)).boxed()
            } else {
                layer.event_format(json).boxed()
            }
        }
        LogFormat::Text => fmt::layer().with_writer(writer).boxed(),
    }
}

/// A JSON line's span fields, formatted when each span opens: none. A JSON line carries no
/// span fields (`with_current_span(false)`, `with_span_list(false)`), yet where spans are built
/// (with traces, or a filter that names spans) the log layer formats every span's fields (to
/// JSON text) as it opens, with this type, for lines that never print them. An event's own
/// fields are written by the JSON format itself, not by this type.
struct NoSpanFields;

impl<'w> FormatFields<'w> for NoSpanFields {
    fn format_fields<R: RecordFields>(&self, _: Writer<'w>, _: R) -> std::fmt::Result {
        Ok(())
    }
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = panic_message(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        let at = location.as_deref().unwrap_or("an unknown location");
        // One write of one line, with no thread-local state of its own: the line is whole even
        // when other threads write to stderr.
        let line = format!("herd: thread '{thread}' panicked at {at}: {payload}\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        tracing::error!(event = "panic", panic = %payload, location = ?location, thread = %thread, "panic");
    }));
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    /// The subscriber `init` installs with no trace exporter, writing into `lines`.
    fn logging_into(
        format: LogFormat,
        filter: &str,
        lines: Arc<Mutex<Vec<u8>>>,
    ) -> impl tracing::Subscriber + Send + Sync {
        let writer = move || LockedBuffer(Arc::clone(&lines));
        untraced(format, &LogFilter::parse(filter).unwrap(), writer).unwrap()
    }

    /// The subscriber `init` installs with traces (their spans go nowhere), writing JSON
    /// lines into `lines`.
    fn traced_into(
        filter: &str,
        lines: Arc<Mutex<Vec<u8>>>,
    ) -> impl tracing::Subscriber + Send + Sync {
        use opentelemetry::trace::TracerProvider as _;

        let writer = move || LockedBuffer(Arc::clone(&lines));
        let tracer = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .build()
            .tracer("test");
        traced(
            LogFormat::Json,
            &LogFilter::parse(filter).unwrap(),
            tracer,
            writer,
        )
        .unwrap()
    }

    struct LockedBuffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for LockedBuffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A span field that counts how often it is formatted.
    struct Counted(Arc<AtomicUsize>);

    impl std::fmt::Display for Counted {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fetch_add(1, Ordering::SeqCst);
            f.write_str("m-1")
        }
    }

    /// Opens a span, logs inside it; returns how often the span's field was formatted and what
    /// was logged.
    fn span_and_line(format: LogFormat, filter: &str) -> (usize, String) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let formatted = Arc::new(AtomicUsize::new(0));
        tracing::subscriber::with_default(logging_into(format, filter, Arc::clone(&lines)), || {
            let span = tracing::info_span!("tick", instance = %Counted(Arc::clone(&formatted)));
            let _in = span.enter();
            tracing::info!(symbol = "SPY", qty = 3, "signal");
        });
        (formatted.load(Ordering::SeqCst), text_of(&lines))
    }

    #[test]
    fn json_logs_format_no_span_fields_and_keep_every_event_field() {
        // No span is built for JSON lines; one that names a span has them built, and still
        // formats none of their fields.
        for filter in ["info", "[tick]=debug,info"] {
            let (formatted, line) = span_and_line(LogFormat::Json, filter);
            assert_eq!(
                formatted, 0,
                "{filter}: a span field nothing prints was formatted"
            );
            let line: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
            assert_eq!(line["message"], "signal");
            assert_eq!(line["symbol"], "SPY");
            assert_eq!(line["qty"], 3);
        }
    }

    #[test]
    fn text_logs_print_the_span_fields() {
        let (formatted, line) = span_and_line(LogFormat::Text, "info");
        assert!(formatted > 0);
        assert!(line.contains("tick") && line.contains("m-1"), "{line}");
        assert!(line.contains("signal"), "{line}");
    }

    /// What sqlx does after each query: asks, through `tracing-log`'s bridge, whether its
    /// `log` record would be taken (here one the filter refuses), then logs by `tracing`, at a
    /// callsite the filter refuses, so nothing follows the question.
    fn ask_as_sqlx_does() {
        let query = tracing::debug_span!(target: "sqlx::query", "query");
        let meta = query
            .metadata()
            .expect("a disabled span keeps its metadata");
        let _ = tracing::dispatcher::get_default(|d| d.enabled(meta));
    }

    fn text_of(lines: &Mutex<Vec<u8>>) -> String {
        String::from_utf8(lines.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_line_after_a_refused_question_is_still_logged() {
        for format in [LogFormat::Json, LogFormat::Text] {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let subscriber = logging_into(format, "herd=debug,info", Arc::clone(&lines));
            tracing::subscriber::with_default(subscriber, || {
                ask_as_sqlx_does();
                tracing::info!(event = "journal_opened", "journal opened");
            });
            let text = text_of(&lines);
            assert!(
                text.contains("journal_opened"),
                "{format:?} lost it: {text:?}"
            );
        }
    }

    #[test]
    fn a_traced_span_after_a_refused_question_is_still_traced_and_logged() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = traced_into("herd=debug,info", Arc::clone(&lines));
        tracing::subscriber::with_default(subscriber, || {
            ask_as_sqlx_does();
            let tick = tracing::info_span!("tick", instance = "m-1");
            let _in = tick.enter();
            tracing::info!(symbol = "SPY", "signal");
        });
        let text = text_of(&lines);
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["message"], "signal", "{text}");
        // The ids come from the exporter's record of the span: it saw the span open.
        assert!(line["trace_id"].is_string(), "{text}");
    }

    /// Debug lines of one instance only: the filter must see the tick span to apply.
    const ONE_INSTANCE_AT_DEBUG: &str = "[tick{instance=m-1}]=debug,info";

    /// Logs a hold at debug inside each of two instances' tick spans; returns the lines.
    fn holds_logged(
        subscriber: impl tracing::Subscriber + Send + Sync,
        lines: &Mutex<Vec<u8>>,
    ) -> Vec<serde_json::Value> {
        tracing::subscriber::with_default(subscriber, || {
            for instance in ["m-1", "m-2"] {
                let span = tracing::info_span!("tick", instance);
                let _in = span.enter();
                tracing::debug!(instance, "hold");
            }
        });
        text_of(lines)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_filter_that_selects_by_span_still_applies_to_json_logs() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = logging_into(LogFormat::Json, ONE_INSTANCE_AT_DEBUG, Arc::clone(&lines));
        let holds = holds_logged(subscriber, &lines);
        assert_eq!(holds.len(), 1, "{holds:?}");
        assert_eq!(holds[0]["instance"], "m-1");
    }

    #[test]
    fn a_filter_that_selects_by_span_still_applies_with_traces() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = traced_into(ONE_INSTANCE_AT_DEBUG, Arc::clone(&lines));
        let holds = holds_logged(subscriber, &lines);
        assert_eq!(holds.len(), 1, "{holds:?}");
        assert_eq!(holds[0]["instance"], "m-1");
        assert!(holds[0]["trace_id"].is_string(), "{holds:?}");
    }
}
