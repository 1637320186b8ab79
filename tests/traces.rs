//! Traces end to end: herd exports its spans over OTLP to a receiver inside the test (gRPC and
//! HTTP/protobuf), the span tree of a tick that traded is linked as it should be, the trace
//! context reaches the venue, log lines carry the ids, and a collector that is down costs
//! spans (counted), never the process.
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;

use common::{Herd, eventually, get_json, metric};

fn trading() -> String {
    common::fast_eager_momentum("traced")
}

/// One received span with the `service.name` of its resource.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    span: Span,
}

type Inbox = Arc<Mutex<Vec<Received>>>;

fn collect(inbox: &Inbox, request: ExportTraceServiceRequest) {
    let mut inbox = inbox.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| string_attr(&r.attributes, "service.name"))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                inbox.push(Received {
                    service: service.clone(),
                    span,
                });
            }
        }
    }
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(i) => Some(i.to_string()),
            _ => None,
        }
    })
}

struct GrpcReceiver(Inbox);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        collect(&self.0, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC receiver on a free loopback port; returns its endpoint.
async fn grpc_receiver(inbox: Inbox) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(GrpcReceiver(inbox)))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    format!("http://{addr}")
}

/// An OTLP/HTTP (protobuf) receiver on a free loopback port; returns its endpoint.
fn http_receiver(inbox: Inbox) -> String {
    let inbox = web::Data::new(inbox);
    let server = HttpServer::new(move || {
        App::new().app_data(inbox.clone()).route(
            "/v1/traces",
            web::post().to(|inbox: web::Data<Inbox>, body: web::Bytes| async move {
                match ExportTraceServiceRequest::decode(body) {
                    Ok(request) => {
                        collect(&inbox, request);
                        HttpResponse::Ok()
                            .content_type("application/x-protobuf")
                            .body(ExportTraceServiceResponse::default().encode_to_vec())
                    }
                    Err(e) => HttpResponse::BadRequest().body(e.to_string()),
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    tokio::spawn(server.run());
    format!("http://{addr}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn named<'a>(spans: &'a [Received], name: &str) -> Vec<&'a Received> {
    spans.iter().filter(|r| r.span.name == name).collect()
}

fn by_id(spans: &[Received]) -> HashMap<Vec<u8>, &Received> {
    spans.iter().map(|r| (r.span.span_id.clone(), r)).collect()
}

/// The spans received so far, once one named `name` satisfies `pred`.
async fn wait_for_span(
    herd: &Herd,
    inbox: &Inbox,
    what: &str,
    pred: impl Fn(&[Received], &Received) -> bool,
) -> (Vec<Received>, Received) {
    eventually(what, herd, || async {
        let spans = inbox.lock().unwrap().clone();
        let found = spans.iter().find(|r| pred(&spans, r)).cloned()?;
        Some((spans, found))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_traded_tick_is_one_trace_from_tick_to_the_venue_over_grpc() {
    let inbox = Inbox::default();
    let endpoint = grpc_receiver(Arc::clone(&inbox)).await;
    let mut herd = Herd::start(
        &trading(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("HERD__SIM__START", common::BUYING_MINUTE),
        ],
    );
    let sim = herd.sim.clone().unwrap();

    // The order's client span, once the whole chain above it has arrived too.
    let (spans, post) = wait_for_span(&herd, &inbox, "an order's span chain", |spans, r| {
        r.span.name == "POST /v2/orders" && {
            let ids = by_id(spans);
            let mut at = r;
            let mut depth = 0;
            while let Some(parent) = ids.get(&at.span.parent_span_id) {
                at = parent;
                depth += 1;
            }
            depth == 3 && at.span.name == "strategy tick"
        }
    })
    .await;
    let ids = by_id(&spans);
    let submit = ids[&post.span.parent_span_id];
    let decision = ids[&submit.span.parent_span_id];
    let tick = ids[&decision.span.parent_span_id];
    assert_eq!(submit.span.name, "broker submit_order");
    assert_eq!(decision.span.name, "strategy decision");
    assert_eq!(tick.span.name, "strategy tick");
    assert!(
        tick.span.parent_span_id.is_empty(),
        "a tick starts its trace"
    );
    for span in [&post, submit, decision, tick] {
        assert_eq!(span.span.trace_id, tick.span.trace_id, "{}", span.span.name);
        assert_eq!(span.service, "herd", "service.name defaults to herd");
    }
    assert_eq!(post.span.kind, SpanKind::Client as i32);
    assert_eq!(
        string_attr(&post.span.attributes, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        string_attr(&tick.span.attributes, "instance").as_deref(),
        Some("traced")
    );
    let client_order_id = string_attr(&submit.span.attributes, "client_order_id").unwrap();
    assert!(client_order_id.starts_with("traced-"), "{client_order_id}");

    // The tick read its market view as a child span, and the bars batch that served it links
    // back to it.
    let tick_id = tick.span.span_id.clone();
    assert!(
        named(&spans, "broker market_view")
            .iter()
            .any(|v| v.span.parent_span_id == tick_id),
        "no market view under the tick"
    );
    let (_, batch) = wait_for_span(&herd, &inbox, "a bars batch linked to the tick", |_, r| {
        r.span.name == "broker bars batch" && r.span.links.iter().any(|l| l.span_id == tick_id)
    })
    .await;
    assert!(batch.span.parent_span_id.is_empty());

    // The venue saw the order's trace context: this very client span as the parent.
    let stats = get_json(&format!("{sim}/__sim/stats")).await.unwrap();
    let traceparent = stats["routes"]["POST /v2/orders"]["last_traceparent"]
        .as_str()
        .unwrap()
        .to_owned();
    let sent: Vec<Vec<u8>> = named(&spans, "POST /v2/orders")
        .iter()
        .map(|r| [r.span.trace_id.clone(), r.span.span_id.clone()].concat())
        .collect();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[3], "01", "sampled");
    assert!(
        sent.iter()
            .any(|ids| hex(ids) == format!("{}{}", parts[1], parts[2])),
        "{traceparent} is not one of herd's order spans"
    );

    // Log lines written inside the tick carry its ids.
    let trace_id = hex(&tick.span.trace_id);
    herd.wait_log(|v| v["trace_id"] == trace_id.as_str() && v["span_id"].is_string());

    // A request that sends a traceparent is continued: the server span is its child.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let answer = reqwest::Client::new()
        .get(format!("{}/strategies/traced", herd.http))
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let (_, server) = wait_for_span(&herd, &inbox, "the server span", |_, r| {
        r.span.name == "GET /strategies/{id}"
    })
    .await;
    assert_eq!(server.span.kind, SpanKind::Server as i32);
    assert_eq!(hex(&server.span.trace_id), caller_trace);
    assert_eq!(hex(&server.span.parent_span_id), caller_span);
    assert_eq!(
        string_attr(&server.span.attributes, "http.route").as_deref(),
        Some("/strategies/{id}")
    );
    assert!(metric(&herd, "herd_trace_spans_exported_total").await > 0.0);

    herd.signal("TERM");
    assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn http_protobuf_delivers_under_the_configured_service_name() {
    let inbox = Inbox::default();
    let endpoint = http_receiver(Arc::clone(&inbox));
    let mut herd = Herd::start(
        &trading(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "desk-7"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("HERD__SIM__START", common::BUYING_MINUTE),
        ],
    );
    let (_, tick) = wait_for_span(&herd, &inbox, "a tick span", |_, r| {
        r.span.name == "strategy tick"
    })
    .await;
    assert_eq!(tick.service, "desk-7");
    herd.signal("TERM");
    assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());
    let summary = herd.wait_log(|v| v["event"] == "shutdown_summary");
    assert!(summary["traces_ms"].is_u64(), "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_is_down_costs_spans_counted_never_the_process() {
    // A port that was free a moment ago: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let endpoint = format!("http://{closed}");
    let mut herd = Herd::start(
        &trading(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4"),
            ("HERD__SIM__START", common::BUYING_MINUTE),
        ],
    );
    let base = herd.http.clone();
    eventually("spans dropped for both reasons", &herd, || async {
        let full = metric(
            &herd,
            "herd_trace_spans_dropped_total{reason=\"queue_full\"}",
        )
        .await;
        let failed = metric(
            &herd,
            "herd_trace_spans_dropped_total{reason=\"export_failed\"}",
        )
        .await;
        (full > 0.0 && failed > 0.0).then_some(())
    })
    .await;
    // Meanwhile herd works: it answers, and its instance trades.
    eventually("an order", &herd, || async {
        let body = get_json(&format!("{base}/orders")).await?;
        (!body["orders"].as_array()?.is_empty()).then_some(())
    })
    .await;
    assert_eq!(metric(&herd, "herd_trace_spans_exported_total").await, 0.0);
    herd.signal("TERM");
    assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());
}

#[test]
fn a_misspelt_otel_variable_is_a_configuration_error_naming_it() {
    let mut herd = Herd::launch(
        &["run"],
        "",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grcp"),
        ],
    );
    let status = herd.wait_exit();
    assert_eq!(status.code(), Some(2), "{}", herd.dump());
    let output = herd.dump();
    assert!(
        output.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && output.contains("grpc or http/protobuf"),
        "{output}"
    );
}
