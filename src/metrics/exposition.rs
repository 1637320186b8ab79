//! The two text formats `/metrics` speaks, and the choice between them by the client's `Accept`.
//!
//! prometheus-client renders OpenMetrics 1.0 only. Prometheus asks for OpenMetrics in its
//! `Accept` header and gets it verbatim; every other client (curl, promtool, older scrapers)
//! gets the classic text format 0.0.4, as the reference Go client does. The conversion is a
//! line-by-line rewrite of the OpenMetrics text, not a second encoder, so both formats always
//! carry the same samples.
//!
//! Invariants of [`to_classic`], relied on from prometheus-client's encoder: a family's metadata
//! lines come before its samples, which come together, before the next family's metadata; and
//! samples carry no timestamps.

/// The content type of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the classic Prometheus text format.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A text exposition format of `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposition {
    OpenMetrics,
    Classic,
}

impl Exposition {
    /// OpenMetrics when the client lists `application/openmetrics-text` with a non-zero
    /// quality, the classic format otherwise (no header, `*/*`, `text/plain`).
    pub fn negotiate(accept: Option<&str>) -> Self {
        let wants_openmetrics = accept.is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or_default();
                let refused = parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            })
        });
        if wants_openmetrics {
            Self::OpenMetrics
        } else {
            Self::Classic
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Self::Classic => CLASSIC_CONTENT_TYPE,
        }
    }

    /// The exposition in this format, from prometheus-client's OpenMetrics text.
    pub fn render(self, openmetrics: String) -> String {
        match self {
            Self::OpenMetrics => openmetrics,
            Self::Classic => to_classic(&openmetrics),
        }
    }
}

/// Rewrites OpenMetrics text as the classic 0.0.4 format:
/// - a counter family `x` is named `x_total` in HELP and TYPE, as its samples are;
/// - an info family `x` becomes the gauge `x_info`; types without a classic equivalent
///   (stateset, gaugehistogram, unknown) become `untyped`;
/// - `_created` samples, exemplars, `# UNIT` and `# EOF` are dropped (classic has none);
/// - HELP text loses OpenMetrics' `\"` escape, which the classic format does not allow.
pub fn to_classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // A family's HELP precedes its TYPE, and its classic name depends on the type.
    let mut pending_help: Option<(&str, String)> = None;
    // `<family>_created` while the samples are those of a family that has them: a family's
    // samples follow its TYPE line, so one comparison per sample finds them (a set of every
    // family's name, hashed per sample, was half of the rewrite).
    let mut created: Option<String> = None;
    for line in openmetrics.lines() {
        if let Some(meta) = line.strip_prefix("# ") {
            let mut words = meta.splitn(3, ' ');
            let (keyword, name, rest) = (
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default(),
            );
            match keyword {
                "HELP" => {
                    flush_help(&mut out, pending_help.take(), None);
                    pending_help = Some((name, rest.replace("\\\"", "\"")));
                }
                "TYPE" => {
                    let (classic_name, classic_type) = classic_family(name, rest);
                    let help = pending_help.take().filter(|(n, _)| *n == name);
                    flush_help(&mut out, help, Some(&classic_name));
                    push_line(&mut out, &format!("# TYPE {classic_name} {classic_type}"));
                    created = matches!(rest, "counter" | "histogram" | "summary")
                        .then(|| format!("{name}_created"));
                }
                // UNIT and EOF have no classic form; other comments pass through.
                "UNIT" | "EOF" => {}
                _ => push_line(&mut out, line),
            }
            continue;
        }
        flush_help(&mut out, pending_help.take(), None);
        if line.is_empty() {
            continue;
        }
        let sample = without_exemplar(line);
        if created
            .as_deref()
            .is_some_and(|name| is_sample_of(sample, name))
        {
            continue;
        }
        push_line(&mut out, sample);
    }
    flush_help(&mut out, pending_help, None);
    out
}

/// The classic name and type of an OpenMetrics family.
fn classic_family(name: &str, openmetrics_type: &str) -> (String, &'static str) {
    match openmetrics_type {
        "counter" => (format!("{name}_total"), "counter"),
        "gauge" => (name.to_owned(), "gauge"),
        "histogram" => (name.to_owned(), "histogram"),
        "summary" => (name.to_owned(), "summary"),
        "info" => (format!("{name}_info"), "gauge"),
        _ => (name.to_owned(), "untyped"),
    }
}

fn flush_help(out: &mut String, help: Option<(&str, String)>, renamed: Option<&str>) {
    if let Some((name, text)) = help {
        push_line(out, &format!("# HELP {} {text}", renamed.unwrap_or(name)));
    }
}

/// Whether `sample` is a sample of the series named `name` (not of one whose name starts so).
fn is_sample_of(sample: &str, name: &str) -> bool {
    sample
        .strip_prefix(name)
        .is_some_and(|rest| rest.starts_with(['{', ' ']))
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push('\n');
}

/// The sample without its exemplar (` # {…} value`), which may follow the value. A `#` inside
/// a quoted label value is not an exemplar.
fn without_exemplar(line: &str) -> &str {
    // Almost no line has a `#` at all: skip the scan for those.
    if !line.contains('#') {
        return line;
    }
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '#' if !quoted && line[..i].ends_with(' ') => return line[..i].trim_end(),
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::metrics::info::Info;
    use prometheus_client::registry::{Registry, Unit};

    fn sample_registry() -> String {
        let mut registry = Registry::with_prefix("herd");
        let orders = Family::<Vec<(String, String)>, Counter>::default();
        orders
            .get_or_create(&vec![("side".into(), "buy \"#1\"".into())])
            .inc_by(3);
        registry.register("orders", "Orders \"sent\" to the venue", orders);
        let gauge = Gauge::<i64>::default();
        gauge.set(7);
        registry.register("in_flight", "Orders in flight", gauge);
        let histogram = Histogram::new([0.1, 1.0]);
        histogram.observe(0.5);
        registry.register_with_unit("tick_duration", "Tick time", Unit::Seconds, histogram);
        registry.register(
            "build",
            "Build of this binary",
            Info::new(vec![("version".to_owned(), "1".to_owned())]),
        );
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn counters_are_named_by_their_samples_and_help_loses_the_quote_escape() {
        let classic = to_classic(&sample_registry());
        assert!(
            classic.contains("# HELP herd_orders_total Orders \"sent\" to the venue.\n"),
            "{classic}"
        );
        assert!(
            classic.contains("# TYPE herd_orders_total counter\n"),
            "{classic}"
        );
        assert!(
            classic.contains("herd_orders_total{side=\"buy \\\"#1\\\"\"} 3\n"),
            "{classic}"
        );
    }

    #[test]
    fn gauges_and_histograms_keep_their_names_and_info_becomes_a_gauge() {
        let classic = to_classic(&sample_registry());
        assert!(
            classic.contains("# TYPE herd_in_flight gauge\nherd_in_flight 7\n"),
            "{classic}"
        );
        assert!(
            classic.contains("# TYPE herd_tick_duration_seconds histogram\n"),
            "{classic}"
        );
        assert!(
            classic.contains("herd_tick_duration_seconds_count 1\n"),
            "{classic}"
        );
        assert!(
            classic.contains("# TYPE herd_build_info gauge\n"),
            "{classic}"
        );
        assert!(
            classic.contains("herd_build_info{version=\"1\"} 1\n"),
            "{classic}"
        );
    }

    #[test]
    fn openmetrics_only_lines_are_dropped() {
        let classic = to_classic(
            "# HELP x X.\n# TYPE x counter\n# UNIT x seconds\nx_total 1 # {trace_id=\"a\"} 1\n\
             x_created 1.7e9\n# EOF\n",
        );
        assert_eq!(
            classic,
            "# HELP x_total X.\n# TYPE x_total counter\nx_total 1\n"
        );
    }

    #[test]
    fn only_the_created_samples_of_a_family_that_has_them_are_dropped() {
        let classic = to_classic(
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 2\n\
             h_created{a=\"b\"} 1.7e9\n# TYPE g_created gauge\ng_created 3\n# TYPE c counter\n\
             c_total 4\nc_created_by 5\n# EOF\n",
        );
        assert_eq!(
            classic,
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 2\n\
             # TYPE g_created gauge\ng_created 3\n# TYPE c_total counter\nc_total 4\n\
             c_created_by 5\n"
        );
    }

    #[test]
    fn a_hash_inside_a_label_value_is_not_an_exemplar() {
        assert_eq!(without_exemplar("x{a=\"b # c\"} 1"), "x{a=\"b # c\"} 1");
        assert_eq!(
            without_exemplar("x{a=\"\\\" # \"} 1 # {} 2"),
            "x{a=\"\\\" # \"} 1"
        );
    }

    #[test]
    fn openmetrics_is_served_only_to_clients_that_ask_for_it() {
        let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,\
                          text/plain;version=0.0.4;q=0.3,*/*;q=0.1";
        assert_eq!(
            Exposition::negotiate(Some(prometheus)),
            Exposition::OpenMetrics
        );
        assert_eq!(Exposition::negotiate(None), Exposition::Classic);
        assert_eq!(Exposition::negotiate(Some("*/*")), Exposition::Classic);
        assert_eq!(
            Exposition::negotiate(Some("text/plain")),
            Exposition::Classic
        );
        assert_eq!(
            Exposition::negotiate(Some("application/openmetrics-text; q=0, text/plain")),
            Exposition::Classic
        );
    }
}
