//! The standard `process_*` metrics (CPU seconds, resident and virtual memory, open and
//! maximum file descriptors, start time), read from `/proc` at each scrape (`procfs`), under
//! the names every Prometheus dashboard expects (no `herd_` prefix).
//!
//! Invariant: a value that cannot be read is left out of the scrape, never reported as 0; on
//! a system without `/proc` the collector reports nothing.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

#[derive(Debug, Default)]
pub struct ProcessCollector;

/// One reading of this process.
struct Reading {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<i64>,
    virtual_bytes: Option<i64>,
    open_fds: Option<i64>,
    max_fds: Option<i64>,
    start_time: Option<f64>,
}

#[cfg(target_os = "linux")]
fn read() -> Reading {
    use procfs::process::{LimitValue, Process};
    let me = Process::myself().ok();
    let stat = me.as_ref().and_then(|p| p.stat().ok());
    let ticks = procfs::ticks_per_second() as f64;
    let page = procfs::page_size() as i64;
    let boot = procfs::boot_time_secs().ok().map(|b| b as f64);
    Reading {
        cpu_seconds: stat.as_ref().map(|s| (s.utime + s.stime) as f64 / ticks),
        resident_bytes: stat.as_ref().map(|s| s.rss as i64 * page),
        virtual_bytes: stat.as_ref().map(|s| s.vsize as i64),
        open_fds: me
            .as_ref()
            .and_then(|p| p.fd_count().ok())
            .map(|n| n as i64),
        max_fds: me.as_ref().and_then(|p| p.limits().ok()).and_then(|l| {
            match l.max_open_files.soft_limit {
                LimitValue::Value(n) => Some(n as i64),
                LimitValue::Unlimited => None,
            }
        }),
        // Ticks after boot, as the kernel counts it.
        start_time: stat
            .as_ref()
            .zip(boot)
            .map(|(s, boot)| boot + s.starttime as f64 / ticks),
    }
}

#[cfg(not(target_os = "linux"))]
fn read() -> Reading {
    Reading {
        cpu_seconds: None,
        resident_bytes: None,
        virtual_bytes: None,
        open_fds: None,
        max_fds: None,
        start_time: None,
    }
}

fn gauge<T>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: Option<T>,
) -> Result<(), std::fmt::Error>
where
    ConstGauge<T>: EncodeMetric,
{
    let Some(value) = value else {
        return Ok(());
    };
    let metric = ConstGauge::new(value);
    let descriptor = encoder.encode_descriptor(name, help, unit, metric.metric_type())?;
    metric.encode(descriptor)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let r = read();
        if let Some(seconds) = r.cpu_seconds {
            let cpu = ConstCounter::new(seconds);
            let descriptor = encoder.encode_descriptor(
                "process_cpu",
                "User and system CPU time spent",
                Some(&Unit::Seconds),
                cpu.metric_type(),
            )?;
            cpu.encode(descriptor)?;
        }
        gauge(
            &mut encoder,
            "process_resident_memory",
            "Resident memory size",
            Some(&Unit::Bytes),
            r.resident_bytes,
        )?;
        gauge(
            &mut encoder,
            "process_virtual_memory",
            "Virtual memory size",
            Some(&Unit::Bytes),
            r.virtual_bytes,
        )?;
        gauge(
            &mut encoder,
            "process_open_fds",
            "Open file descriptors",
            None,
            r.open_fds,
        )?;
        gauge(
            &mut encoder,
            "process_max_fds",
            "Maximum number of open file descriptors",
            None,
            r.max_fds,
        )?;
        gauge(
            &mut encoder,
            "process_start_time",
            "Start time of the process since the Unix epoch",
            Some(&Unit::Seconds),
            r.start_time,
        )
    }
}
