//! Replay of user-owned OHLCV history from CSV files.
//!
//! `sim.csv_dir` holds one `SYMBOL.csv` per symbol (e.g. `SPY.csv`, `BRK.B.csv`) with a header
//! row naming the columns, in any order and case:
//! `timestamp` (or `time`, `date`, `t`), `open`, `high`, `low`, `close`, `volume`, and
//! optionally `trade_count` (or `n`) and `vwap` (or `vw`). A timestamp is RFC 3339
//! (`2024-03-04T14:30:00Z`), epoch seconds, a New York local date-time
//! (`2024-03-04 09:30:00`), or a bare date (`2024-03-04`).
//!
//! A file is either intraday (every row has a time: each row is the bar starting then, ideally
//! one minute long) or daily (every row is a date). Daily rows are expanded into a synthetic
//! minute path per day that opens, closes, peaks and bottoms exactly at the row's values, so
//! intraday strategies and order matching still work.
//!
//! Invariants:
//! - Every file is validated when the simulator starts; an error names the file, the line and
//!   what is wrong, and the simulator does not start.
//! - Before a symbol's first row there are no bars; after its last row the symbol continues
//!   synthetically from its last close (see `Market`).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::America::New_York;

use super::bar::Bar;
use super::params::is_valid_symbol;
use super::synth::round_tick;
use crate::sim::calendar::{ny_date, ny_midnight};

/// A CSV directory or file that cannot be replayed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReplayError(pub String);

/// One symbol's replayed data.
#[derive(Debug, Clone)]
enum Series {
    /// Intraday rows by New York date, oldest first.
    Intraday(BTreeMap<NaiveDate, Vec<Bar>>),
    /// Daily rows by date.
    Daily(BTreeMap<NaiveDate, Bar>),
}

impl Series {
    fn first_last(&self) -> Option<(NaiveDate, NaiveDate)> {
        let keys: Vec<NaiveDate> = match self {
            Series::Intraday(m) => m.keys().copied().collect(),
            Series::Daily(m) => m.keys().copied().collect(),
        };
        Some((*keys.first()?, *keys.last()?))
    }
}

/// What replay says about one (symbol, day).
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayDay {
    /// Replayed minute bars.
    Minutes(Vec<Bar>),
    /// A replayed daily bar, to be expanded into minutes.
    Daily(Bar),
    /// Within (or before) the data but no row: no trading that day.
    Closed,
}

/// All replayed symbols.
#[derive(Debug, Default)]
pub struct Replay {
    series: HashMap<String, Series>,
}

impl Replay {
    /// Loads and validates every `*.csv` in `dir`.
    pub fn load(dir: &Path) -> Result<Self, ReplayError> {
        let entries = fs::read_dir(dir)
            .map_err(|e| ReplayError(format!("cannot read {}: {e}", dir.display())))?;
        let mut series = HashMap::new();
        for entry in entries {
            let path = entry
                .map_err(|e| ReplayError(format!("cannot read {}: {e}", dir.display())))?
                .path();
            if path.extension().and_then(|e| e.to_str()) != Some("csv") {
                continue;
            }
            let symbol = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            if !is_valid_symbol(&symbol) {
                return Err(ReplayError(format!(
                    "{}: the file name must be an upper-case ticker such as SPY.csv",
                    path.display()
                )));
            }
            let text = fs::read_to_string(&path)
                .map_err(|e| ReplayError(format!("cannot read {}: {e}", path.display())))?;
            let parsed =
                parse(&text).map_err(|e| ReplayError(format!("{}: {e}", path.display())))?;
            series.insert(symbol, parsed);
        }
        if series.is_empty() {
            return Err(ReplayError(format!(
                "{} holds no SYMBOL.csv files",
                dir.display()
            )));
        }
        Ok(Replay { series })
    }

    /// First and last bar time over all files.
    pub fn span(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let mut first: Option<DateTime<Utc>> = None;
        let mut last: Option<DateTime<Utc>> = None;
        for s in self.series.values() {
            let (a, b) = match s {
                Series::Intraday(m) => (
                    m.values().next().and_then(|v| v.first()).map(|b| b.t),
                    m.values().last().and_then(|v| v.last()).map(|b| b.t),
                ),
                Series::Daily(m) => (
                    m.keys().next().map(|d| ny_midnight(*d).timestamp()),
                    m.keys().last().map(|d| ny_midnight(*d).timestamp()),
                ),
            };
            let to_time = |t: Option<i64>| t.and_then(|t| DateTime::<Utc>::from_timestamp(t, 0));
            if let (Some(a), Some(b)) = (to_time(a), to_time(b)) {
                first = Some(first.map_or(a, |f| f.min(a)));
                last = Some(last.map_or(b, |l| l.max(b)));
            }
        }
        Some((first?, last?))
    }

    /// Last replayed day and close of `symbol`: where its synthetic continuation starts.
    pub fn continuation(&self, symbol: &str) -> Option<(NaiveDate, f64)> {
        match self.series.get(symbol)? {
            Series::Intraday(m) => {
                let (d, bars) = m.iter().next_back()?;
                Some((*d, bars.last()?.c))
            }
            Series::Daily(m) => m.iter().next_back().map(|(d, b)| (*d, b.c)),
        }
    }

    /// What replay holds for (`symbol`, `date`); None past the data or for other symbols.
    pub fn day(&self, symbol: &str, date: NaiveDate) -> Option<ReplayDay> {
        let series = self.series.get(symbol)?;
        let (_, last) = series.first_last()?;
        if date > last {
            return None;
        }
        Some(match series {
            Series::Intraday(m) => m
                .get(&date)
                .map_or(ReplayDay::Closed, |b| ReplayDay::Minutes(b.clone())),
            Series::Daily(m) => m
                .get(&date)
                .map_or(ReplayDay::Closed, |b| ReplayDay::Daily(*b)),
        })
    }
}

/// Column positions found in the header.
struct Columns {
    t: usize,
    o: usize,
    h: usize,
    l: usize,
    c: usize,
    v: usize,
    n: Option<usize>,
    vw: Option<usize>,
}

fn columns(header: &csv::StringRecord) -> Result<Columns, String> {
    let find = |names: &[&str]| {
        header
            .iter()
            .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
    };
    let need = |names: &[&str]| {
        find(names).ok_or_else(|| {
            format!(
                "header lacks a {:?} column (need timestamp, open, high, low, close, volume)",
                names[0]
            )
        })
    };
    Ok(Columns {
        t: need(&["timestamp", "time", "date", "t"])?,
        o: need(&["open", "o"])?,
        h: need(&["high", "h"])?,
        l: need(&["low", "l"])?,
        c: need(&["close", "c"])?,
        v: need(&["volume", "v"])?,
        n: find(&["trade_count", "n"]),
        vw: find(&["vwap", "vw"]),
    })
}

/// A parsed timestamp: a point in time, or a bare date.
enum Stamp {
    At(DateTime<Utc>),
    Date(NaiveDate),
}

fn stamp(text: &str) -> Option<Stamp> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(Stamp::At(d.with_timezone(&Utc)));
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Some(Stamp::Date(d));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, fmt) {
            return New_York
                .from_local_datetime(&n)
                .earliest()
                .map(|d| Stamp::At(d.with_timezone(&Utc)));
        }
    }
    t.parse::<i64>()
        .ok()
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
        .map(Stamp::At)
}

fn parse(text: &str) -> Result<Series, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| format!("cannot read the header: {e}"))?
        .clone();
    let cols = columns(&header)?;
    let mut intraday: BTreeMap<NaiveDate, Vec<Bar>> = BTreeMap::new();
    let mut daily: BTreeMap<NaiveDate, Bar> = BTreeMap::new();
    let mut last_t: Option<i64> = None;
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| format!("line {line}: {e}"))?;
        let field = |k: usize| record.get(k).unwrap_or("");
        let num = |k: usize, name: &str| -> Result<f64, String> {
            field(k)
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| {
                    format!(
                        "line {line}: {name} {:?} is not a non-negative number",
                        field(k)
                    )
                })
        };
        let (o, h, l, c) = (
            num(cols.o, "open")?,
            num(cols.h, "high")?,
            num(cols.l, "low")?,
            num(cols.c, "close")?,
        );
        let v = num(cols.v, "volume")?;
        if o <= 0.0 || c <= 0.0 || l <= 0.0 {
            return Err(format!("line {line}: prices must be positive"));
        }
        if h < o.max(c) || l > o.min(c) {
            return Err(format!(
                "line {line}: high {h} and low {l} must bracket open {o} and close {c}"
            ));
        }
        let n = match cols.n {
            Some(k) if !field(k).is_empty() => num(k, "trade_count")?,
            _ => (v / 100.0).max(1.0),
        };
        let vw = match cols.vw {
            Some(k) if !field(k).is_empty() => num(k, "vwap")?.clamp(l, h),
            _ => ((h + l + c) / 3.0 * 10_000.0).round() / 10_000.0,
        };
        let t_text = field(cols.t);
        let when = stamp(t_text)
            .ok_or_else(|| format!("line {line}: timestamp {t_text:?} is not RFC 3339, a date, a New York date-time or epoch seconds"))?;
        let (t, date, is_daily) = match when {
            Stamp::At(t) => (t.timestamp(), ny_date(t), false),
            Stamp::Date(d) => (ny_midnight(d).timestamp(), d, true),
        };
        if last_t.is_some_and(|p| t <= p) {
            return Err(format!("line {line}: timestamps must increase"));
        }
        last_t = Some(t);
        let bar = Bar {
            t,
            o,
            h,
            l,
            c,
            v: v.round() as u64,
            n: n.round().max(1.0) as u64,
            vw,
        };
        if is_daily {
            daily.insert(date, bar);
        } else {
            intraday.entry(date).or_default().push(bar);
        }
        if !daily.is_empty() && !intraday.is_empty() {
            return Err(format!(
                "line {line}: a file holds either dates (daily bars) or times (intraday bars), not both"
            ));
        }
    }
    match (intraday.is_empty(), daily.is_empty()) {
        (false, _) => Ok(Series::Intraday(intraday)),
        (true, false) => Ok(Series::Daily(daily)),
        (true, true) => Err("no rows".to_string()),
    }
}

/// Reshapes a synthetic minute path (already from the day's open to its close) so its highest
/// high is `h`, lowest low is `l` and volumes sum to `v`: prices beyond the open/close range
/// are stretched linearly toward the extremes, so endpoints stay put and bars stay well formed.
pub fn fit_to_day(minutes: &mut [Bar], day: &Bar) {
    let (lo_body, hi_body) = (day.o.min(day.c), day.o.max(day.c));
    let max_h = minutes.iter().map(|b| b.h).fold(f64::MIN, f64::max);
    let min_l = minutes.iter().map(|b| b.l).fold(f64::MAX, f64::min);
    let stretch = |x: f64| -> f64 {
        if x > hi_body && max_h > hi_body {
            hi_body + (x - hi_body) * (day.h - hi_body) / (max_h - hi_body)
        } else if x < lo_body && min_l < lo_body {
            lo_body - (lo_body - x) * (lo_body - day.l) / (lo_body - min_l)
        } else {
            x.clamp(day.l, day.h)
        }
    };
    let total: u64 = minutes.iter().map(|b| b.v).sum::<u64>().max(1);
    let last = minutes.len().saturating_sub(1);
    let mut assigned = 0u64;
    for (i, b) in minutes.iter_mut().enumerate() {
        // On the tick grid, except the day's own open and close, which are the user's data.
        b.o = if i == 0 {
            day.o
        } else {
            round_tick(stretch(b.o))
        };
        b.c = if i == last {
            day.c
        } else {
            round_tick(stretch(b.c))
        };
        b.h = round_tick(stretch(b.h)).min(day.h).max(b.o.max(b.c));
        b.l = round_tick(stretch(b.l)).max(day.l).min(b.o.min(b.c));
        b.vw = b.vw.clamp(b.l, b.h);
        b.v = if i == last {
            day.v.saturating_sub(assigned)
        } else {
            ((b.v as f64) * day.v as f64 / total as f64).round() as u64
        };
        assigned += b.v;
    }
    // Make the extremes exact even when the synthetic path never left the body.
    if let Some(b) = minutes.iter_mut().max_by(|a, b| a.h.total_cmp(&b.h)) {
        b.h = day.h;
    }
    if let Some(b) = minutes.iter_mut().min_by(|a, b| a.l.total_cmp(&b.l)) {
        b.l = day.l;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intraday_files_parse_in_every_timestamp_style() {
        let text = "Timestamp,Open,High,Low,Close,Volume,vwap\n\
                    2024-03-04T14:30:00Z,10,10.5,9.9,10.2,1000,10.1\n\
                    2024-03-04 09:31:00,10.2,10.4,10.1,10.3,800,\n\
                    1709562720,10.3,10.3,10.0,10.1,500,10.2\n";
        let Series::Intraday(days) = parse(text).expect("parses") else {
            panic!("intraday expected");
        };
        let bars = &days[&NaiveDate::from_ymd_opt(2024, 3, 4).expect("date")];
        assert_eq!(bars.len(), 3);
        assert_eq!(bars[1].t - bars[0].t, 60, "New York local time");
        assert_eq!(bars[2].t - bars[1].t, 60, "epoch seconds");
        assert_eq!(bars[0].vw, 10.1);
    }

    #[test]
    fn daily_files_parse_and_mixed_files_fail() {
        let text = "date,open,high,low,close,volume\n2024-03-04,10,11,9,10.5,100000\n";
        assert!(matches!(parse(text), Ok(Series::Daily(_))));
        let mixed = "date,open,high,low,close,volume\n2024-03-04,10,11,9,10.5,1\n2024-03-05T14:30:00Z,10,11,9,10.5,1\n";
        assert!(parse(mixed).unwrap_err().contains("either dates"));
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let bad_hl = "timestamp,open,high,low,close,volume\n2024-03-04,10,9,8,10,1\n";
        assert_eq!(
            parse(bad_hl).unwrap_err(),
            "line 2: high 9 and low 8 must bracket open 10 and close 10"
        );
        let unordered = "timestamp,open,high,low,close,volume\n2024-03-05,10,11,9,10,1\n2024-03-04,10,11,9,10,1\n";
        assert!(
            parse(unordered)
                .unwrap_err()
                .starts_with("line 3: timestamps must increase")
        );
        assert!(parse("open,high\n1,2\n").unwrap_err().contains("timestamp"));
        let neg = "timestamp,open,high,low,close,volume\n2024-03-04,10,11,9,10,-1\n";
        assert!(parse(neg).unwrap_err().contains("volume"));
    }

    #[test]
    fn fitting_hits_the_daily_extremes_and_volume() {
        let day = Bar {
            t: 0,
            o: 100.0,
            h: 110.0,
            l: 95.0,
            c: 104.0,
            v: 10_000,
            n: 10,
            vw: 102.0,
        };
        let mut minutes: Vec<Bar> = (0..10)
            .map(|i| {
                let o = 100.0 + f64::from(i) * 0.4;
                let c = o + 0.4;
                Bar {
                    t: i64::from(i) * 60,
                    o,
                    h: c + 0.3,
                    l: o - 0.3,
                    c,
                    v: 7,
                    n: 1,
                    vw: o,
                }
            })
            .collect();
        fit_to_day(&mut minutes, &day);
        let h = minutes.iter().map(|b| b.h).fold(f64::MIN, f64::max);
        let l = minutes.iter().map(|b| b.l).fold(f64::MAX, f64::min);
        assert_eq!((h, l), (110.0, 95.0));
        assert_eq!(minutes.iter().map(|b| b.v).sum::<u64>(), 10_000);
        assert_eq!(minutes[0].o, 100.0);
        assert_eq!(minutes[9].c, 104.0);
        for b in &minutes {
            assert!(b.l <= b.o.min(b.c) && b.h >= b.o.max(b.c));
        }
    }
}
