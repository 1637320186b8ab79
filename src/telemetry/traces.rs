//! Traces: the OTLP pipeline, configured by the standard OpenTelemetry environment.
//!
//! - Enabled by `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); with
//!   neither, or with `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`, no span leaves
//!   the process and nothing is started.
//! - `OTEL_EXPORTER_OTLP_PROTOCOL` picks `grpc` or `http/protobuf` (the default, as the
//!   specification says). The SDK reads the rest itself: `OTEL_SERVICE_NAME`,
//!   `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_EXPORTER_OTLP_HEADERS`,
//!   `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`. herd checks the values the SDK would silently
//!   replace by a default, so a typo is a configuration error, not a missing trace.
//!
//! Invariants:
//! - herd never waits on the collector: spans queue in a bounded queue
//!   (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048 by default) exported from the SDK's own thread; a span
//!   that finds it full is dropped and counted, as is every span of a failed export.
//! - The gRPC channel runs on its own one-thread runtime, never on an actix thread: the batch
//!   thread's export and the final flush would otherwise wait on a thread that waits on them.
//! - [`Traces::shutdown`] blocks; the drain calls it on the blocking pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, Span, SpanData,
    SpanExporter, SpanProcessor,
};

use crate::domain::InvalidSetting;
use crate::metrics::{SpanDrop, TraceMetrics};

/// The service name when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` gives one.
const SERVICE_NAME: &str = "herd";
/// The SDK's default queue bound, which `OTEL_BSP_MAX_QUEUE_SIZE` overrides.
const DEFAULT_QUEUE: usize = 2048;
const SAMPLERS: &[&str] = &[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
];

/// How spans travel to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

/// The trace pipeline the environment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceConfig {
    pub protocol: OtlpProtocol,
    /// The endpoint, as given (the exporter reads it from the environment itself).
    pub endpoint: String,
    /// Spans that may wait for export; one more is dropped and counted.
    pub queue: usize,
    /// Whether the environment names the service; otherwise it is `herd`.
    named: bool,
}

impl TraceConfig {
    /// The pipeline `env` asks for, `None` when traces are off; a value the SDK would not
    /// understand is refused with the variable's name and what it allows.
    pub fn from_env(env: &impl Fn(&str) -> Option<String>) -> Result<Option<Self>, InvalidSetting> {
        let var = |name: &str| {
            env(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if let Some(disabled) = var("OTEL_SDK_DISABLED") {
            match disabled.to_ascii_lowercase().as_str() {
                "true" => return Ok(None),
                "false" => {}
                _ => return Err(invalid("OTEL_SDK_DISABLED", &disabled, "true or false")),
            }
        }
        if let Some(exporter) = var("OTEL_TRACES_EXPORTER") {
            match exporter.as_str() {
                "none" => return Ok(None),
                "otlp" => {}
                _ => {
                    return Err(invalid(
                        "OTEL_TRACES_EXPORTER",
                        &exporter,
                        "otlp or none (herd exports over OTLP only)",
                    ));
                }
            }
        }
        let Some(endpoint) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        else {
            return Ok(None);
        };
        let protocol_var = if var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").is_some() {
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
        } else {
            "OTEL_EXPORTER_OTLP_PROTOCOL"
        };
        let protocol = match var(protocol_var).as_deref() {
            None | Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
            Some("grpc") => OtlpProtocol::Grpc,
            Some(other) => {
                return Err(invalid(protocol_var, other, "grpc or http/protobuf"));
            }
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(invalid(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                &endpoint,
                "an http:// or https:// URL, e.g. http://jaeger:4317 (grpc) or http://jaeger:4318 (http/protobuf)",
            ));
        }
        if protocol == OtlpProtocol::Grpc && endpoint.starts_with("https://") {
            return Err(invalid(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                &endpoint,
                "grpc is plaintext in this build: use http:// (a collector or agent beside herd), \
                 or OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf for https",
            ));
        }
        if let Some(sampler) = var("OTEL_TRACES_SAMPLER") {
            if !SAMPLERS.contains(&sampler.as_str()) {
                return Err(invalid(
                    "OTEL_TRACES_SAMPLER",
                    &sampler,
                    &SAMPLERS.join(", "),
                ));
            }
            if sampler.ends_with("traceidratio") {
                let ratio = var("OTEL_TRACES_SAMPLER_ARG");
                let valid = ratio
                    .as_deref()
                    .and_then(|r| r.parse::<f64>().ok())
                    .is_some_and(|r| (0.0..=1.0).contains(&r));
                if !valid {
                    return Err(invalid(
                        "OTEL_TRACES_SAMPLER_ARG",
                        ratio.as_deref().unwrap_or("(unset)"),
                        "the ratio of traces to keep, from 0 to 1 (e.g. 0.1)",
                    ));
                }
            }
        }
        let queue = match var("OTEL_BSP_MAX_QUEUE_SIZE") {
            None => DEFAULT_QUEUE,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|q| *q > 0)
                .ok_or_else(|| {
                    invalid(
                        "OTEL_BSP_MAX_QUEUE_SIZE",
                        &raw,
                        "a positive number of spans",
                    )
                })?,
        };
        let named = var("OTEL_SERVICE_NAME").is_some()
            || var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attrs| {
                attrs
                    .split(',')
                    .any(|kv| kv.trim().starts_with("service.name="))
            });
        Ok(Some(Self {
            protocol,
            endpoint,
            queue,
            named,
        }))
    }
}

fn invalid(var: &str, value: &str, allowed: &str) -> InvalidSetting {
    InvalidSetting::new(var, format!("{value:?}"), allowed)
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot start the OTLP exporter's runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// The running pipeline; [`Traces::shutdown`] flushes it.
pub struct Traces {
    provider: SdkTracerProvider,
    /// The gRPC channel's runtime (none for HTTP, whose blocking client has its own thread).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Traces {
    /// Starts the exporter and returns the pipeline with the tracer spans go to.
    pub fn start(
        config: &TraceConfig,
        metrics: TraceMetrics,
    ) -> Result<(Self, SdkTracer), TraceError> {
        let (exporter, runtime) = match config.protocol {
            OtlpProtocol::Grpc => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("otlp-grpc")
                    .enable_all()
                    .build()?;
                let exporter = {
                    let _entered = runtime.enter();
                    opentelemetry_otlp::SpanExporter::builder()
                        .with_tonic()
                        .with_protocol(opentelemetry_otlp::Protocol::Grpc)
                        .build()?
                };
                (exporter, Some(runtime))
            }
            OtlpProtocol::HttpProtobuf => {
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .build()?;
                (exporter, None)
            }
        };
        let queued = Arc::new(AtomicUsize::new(0));
        let counting = CountingExporter {
            inner: exporter,
            queued: Arc::clone(&queued),
            metrics: metrics.clone(),
        };
        // The SDK's queue holds twice herd's bound, so it never drops a span itself: every
        // drop is herd's, and counted.
        let batch = BatchSpanProcessor::builder(counting)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(config.queue.saturating_mul(2))
                    .build(),
            )
            .build();
        let gate = QueueGate {
            inner: batch,
            queued,
            bound: config.queue,
            metrics,
        };
        let mut resource = Resource::builder()
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
        if !config.named {
            resource = resource.with_service_name(SERVICE_NAME);
        }
        let provider = SdkTracerProvider::builder()
            .with_span_processor(gate)
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer("herd");
        Ok((Self { provider, runtime }, tracer))
    }

    /// Exports what is queued (within `timeout`) and stops the exporter. Blocks: call it on a
    /// blocking thread.
    pub fn shutdown(self, timeout: Duration) -> OTelSdkResult {
        let result = self.provider.shutdown_with_timeout(timeout);
        if let Some(runtime) = self.runtime {
            runtime.shutdown_background();
        }
        result
    }
}

/// Bounds the spans waiting for export, and counts the ones it turns away.
#[derive(Debug)]
struct QueueGate {
    inner: BatchSpanProcessor,
    /// Spans handed to `inner` and not yet in an export (the exporter subtracts them).
    queued: Arc<AtomicUsize>,
    bound: usize,
    metrics: TraceMetrics,
}

impl SpanProcessor for QueueGate {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.bound {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.metrics.dropped(SpanDrop::QueueFull, 1);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting what each export delivered or lost.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
    metrics: TraceMetrics,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        self.queued.fetch_sub(spans, Ordering::AcqRel);
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => self.metrics.exported(spans as u64),
            Err(_) => self.metrics.dropped(SpanDrop::ExportFailed, spans as u64),
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Option<TraceConfig>, InvalidSetting> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TraceConfig::from_env(&|name| env.get(name).cloned())
    }

    #[test]
    fn traces_are_off_without_an_endpoint_or_when_disabled() {
        assert_eq!(config(&[]), Ok(None));
        assert_eq!(config(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]), Ok(None));
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318");
        assert_eq!(config(&[endpoint, ("OTEL_SDK_DISABLED", "true")]), Ok(None));
        assert_eq!(
            config(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]),
            Ok(None)
        );
    }

    #[test]
    fn the_protocol_defaults_to_http_protobuf_and_the_traces_variables_win() {
        let on = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318")])
            .unwrap()
            .unwrap();
        assert_eq!(on.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(on.queue, DEFAULT_QUEUE);
        assert!(!on.named);
        let grpc = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=paper,service.name=desk",
            ),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(grpc.protocol, OtlpProtocol::Grpc);
        assert_eq!(grpc.endpoint, "http://b:4317");
        assert!(grpc.named);
    }

    #[test]
    fn values_the_sdk_would_silently_replace_are_refused_by_name() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4317");
        for (vars, key) in [
            (
                vec![endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grcp")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                vec![endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                vec![endpoint, ("OTEL_TRACES_SAMPLER", "sometimes")],
                "OTEL_TRACES_SAMPLER",
            ),
            (
                vec![endpoint, ("OTEL_TRACES_SAMPLER", "traceidratio")],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (
                vec![
                    endpoint,
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "5"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (
                vec![endpoint, ("OTEL_BSP_MAX_QUEUE_SIZE", "0")],
                "OTEL_BSP_MAX_QUEUE_SIZE",
            ),
            (
                vec![endpoint, ("OTEL_TRACES_EXPORTER", "jaeger")],
                "OTEL_TRACES_EXPORTER",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "jaeger:4317")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
        ] {
            let refused = config(&vars).unwrap_err();
            assert_eq!(refused.key, key, "{vars:?}");
            assert!(!refused.allowed.is_empty());
        }
        let ratio = config(&[
            endpoint,
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ]);
        assert!(matches!(ratio, Ok(Some(_))));
    }
}
