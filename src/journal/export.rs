//! `herd journal export`: decisions, orders or fills of a time range, as CSV or JSON lines.
//!
//! Invariant: a time column is written as RFC 3339 UTC; every other value exactly as stored
//! (decimal text stays text, so no quantity or price passes through floating point).

use std::io::Write;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::entry::{rebuilt_detail, unpack_holds};
use super::read::from_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportKind {
    Decisions,
    Orders,
    Fills,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot read the journal: {0}")]
    Read(#[from] sqlx::Error),
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
    #[error("cannot write the export: {0}")]
    Csv(#[from] csv::Error),
    #[error(
        "the journal's hold_ticks row of {instance} at {at} ms is not a list of holds ({source}); \
         restore the journal from a backup"
    )]
    Holds {
        instance: String,
        at: i64,
        source: serde_json::Error,
    },
}

/// A column's stored type.
#[derive(Clone, Copy)]
enum Column {
    Text(&'static str),
    Int(&'static str),
    Real(&'static str),
    /// Milliseconds since the epoch, exported as RFC 3339.
    Time(&'static str),
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Self::Text(n) | Self::Int(n) | Self::Real(n) | Self::Time(n) => n,
        }
    }

    fn value(self, row: &AnyRow) -> Result<serde_json::Value, sqlx::Error> {
        use serde_json::Value;
        Ok(match self {
            Self::Text(n) => row
                .try_get::<Option<String>, _>(n)?
                .map_or(Value::Null, Value::String),
            Self::Int(n) => row
                .try_get::<Option<i64>, _>(n)?
                .map_or(Value::Null, Value::from),
            Self::Real(n) => row
                .try_get::<Option<f64>, _>(n)?
                .map_or(Value::Null, Value::from),
            Self::Time(n) => row
                .try_get::<Option<i64>, _>(n)?
                .and_then(from_ms)
                .map_or(Value::Null, |t| {
                    Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                }),
        })
    }
}

use Column::{Int, Real, Text, Time};

const DECISIONS: &[Column] = &[
    Time("at"),
    Text("instance"),
    Text("symbol"),
    Text("action"),
    Text("side"),
    Text("qty"),
    Real("signal"),
    Time("decided_on"),
    Text("reason"),
    Text("detail"),
];
const ORDERS: &[Column] = &[
    Time("created_at"),
    Text("client_order_id"),
    Text("instance"),
    Text("symbol"),
    Text("side"),
    Text("qty"),
    Text("state"),
    Text("venue_status"),
    Text("order_id"),
    Time("submitted_at"),
    Text("filled_qty"),
    Text("filled_avg_price"),
    Time("decided_on"),
    Text("reason"),
    Text("error"),
    Time("updated_at"),
    Int("seq"),
];
const FILLS: &[Column] = &[
    Time("at"),
    Text("client_order_id"),
    Text("instance"),
    Text("symbol"),
    Text("qty"),
    Text("price"),
    Text("filled_total"),
];

/// A hold's `detail` is stored empty (its columns hold all of it, `entry::decision_detail`):
/// the export writes the whole decision, as it always has.
fn fill_in_detail(values: &mut [serde_json::Value]) {
    use serde_json::Value;
    let at = |name: &str| DECISIONS.iter().position(|c| c.name() == name);
    let (Some(symbol), Some(signal), Some(reason), Some(detail)) =
        (at("symbol"), at("signal"), at("reason"), at("detail"))
    else {
        return;
    };
    if values[detail].as_str() != Some("") {
        return;
    }
    let rebuilt = rebuilt_detail(
        values[symbol].as_str().unwrap_or_default(),
        values[signal].as_f64(),
        values[reason].as_str().unwrap_or_default(),
    );
    values[detail] = Value::String(rebuilt);
}

/// The holds journaled a tick to a row (`hold_ticks`) in `[from, to)`, each as the decision
/// record the `decisions` table would have held, oldest first.
async fn hold_records(
    pool: &AnyPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(i64, Vec<serde_json::Value>)>, ExportError> {
    use serde_json::Value;
    let rows = sqlx::query(
        "SELECT at, instance, holds FROM hold_ticks WHERE at >= $1 AND at < $2 ORDER BY at",
    )
    .bind(from.timestamp_millis())
    .bind(to.timestamp_millis())
    .fetch_all(pool)
    .await?;
    let mut records = Vec::with_capacity(rows.len() * 5);
    for row in &rows {
        let at: i64 = row.try_get("at")?;
        let instance: String = row.try_get("instance")?;
        let packed: String = row.try_get("holds")?;
        let holds = unpack_holds(&packed).map_err(|source| ExportError::Holds {
            instance: instance.clone(),
            at,
            source,
        })?;
        let time = Time("at").value(row)?;
        for (symbol, signal, reason) in holds {
            let values: Vec<Value> = DECISIONS
                .iter()
                .map(|c| match c.name() {
                    "at" => time.clone(),
                    "instance" => Value::String(instance.clone()),
                    "symbol" => Value::String(symbol.clone()),
                    "action" => Value::String("hold".into()),
                    "signal" => signal.map_or(Value::Null, Value::from),
                    "reason" => Value::String(reason.clone()),
                    "detail" => Value::String(rebuilt_detail(&symbol, signal, &reason)),
                    _ => Value::Null,
                })
                .collect();
            records.push((at, values));
        }
    }
    Ok(records)
}

/// Writes the records of `kind` whose time is in `[from, to)` to `out`, oldest first; returns
/// how many.
pub async fn export(
    pool: &AnyPool,
    kind: ExportKind,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let (table, columns, time) = match kind {
        ExportKind::Decisions => ("decisions", DECISIONS, "at"),
        ExportKind::Orders => ("orders", ORDERS, "created_at"),
        ExportKind::Fills => ("fills", FILLS, "at"),
    };
    let names: Vec<&str> = columns.iter().map(|c| c.name()).collect();
    let sql = format!(
        "SELECT {} FROM {table} WHERE {time} >= $1 AND {time} < $2 ORDER BY {time}",
        names.join(", ")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(from.timestamp_millis())
        .bind(to.timestamp_millis())
        .fetch_all(pool)
        .await?;
    // Each record with its time in milliseconds, to merge decisions with the ticks' holds.
    let mut records = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut values = columns
            .iter()
            .map(|c| c.value(row))
            .collect::<Result<Vec<_>, _>>()?;
        if kind == ExportKind::Decisions {
            fill_in_detail(&mut values);
        }
        records.push((
            row.try_get::<Option<i64>, _>(time)?.unwrap_or_default(),
            values,
        ));
    }
    if kind == ExportKind::Decisions {
        let holds = hold_records(pool, from, to).await?;
        // Both are in time order: a stable sort of the two runs keeps decisions first at
        // equal times, and runs in linear time on two sorted runs.
        records.extend(holds);
        records.sort_by_key(|(at, _)| *at);
    }
    let records: Vec<Vec<serde_json::Value>> = records.into_iter().map(|(_, v)| v).collect();
    match format {
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(&names)?;
            for values in &records {
                w.write_record(values.iter().map(|v| match v {
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                }))?;
            }
            w.flush()?;
        }
        ExportFormat::Jsonl => {
            for values in records.iter() {
                let object: serde_json::Map<String, serde_json::Value> = names
                    .iter()
                    .map(|n| (*n).to_owned())
                    .zip(values.iter().cloned())
                    .collect();
                serde_json::to_writer(&mut *out, &object).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
            }
        }
    }
    let written = records.len() as u64;
    Ok(written)
}
