//! Bars, timeframes and aggregation of minute bars into longer bars.
//!
//! Invariants:
//! - A bar's `t` is its start (epoch seconds, UTC), as Alpaca's `t`.
//! - Intraday buckets are aligned to multiples of their length from New York midnight and never
//!   span two New York days (a bucket that does not divide the day is cut at midnight). For
//!   every length dividing an hour this equals Alpaca's clock alignment.
//! - Aggregation: `o` of the first minute, `c` of the last, `h`/`l` extremes, `v` and `n` sums,
//!   `vw` the volume-weighted mean of the minutes' `vw`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// One OHLCV bar, serialised with Alpaca's keys (`t,o,h,l,c,v,n,vw`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Start of the bar, epoch seconds.
    pub t: i64,
    pub o: f64,
    pub h: f64,
    pub l: f64,
    pub c: f64,
    pub v: u64,
    pub n: u64,
    pub vw: f64,
}

/// Wire form of a bar: prices and sizes are JSON numbers, `t` RFC 3339 in UTC.
#[derive(Debug, Serialize)]
pub struct BarJson {
    pub t: String,
    pub o: f64,
    pub h: f64,
    pub l: f64,
    pub c: f64,
    pub v: u64,
    pub n: u64,
    pub vw: f64,
}

impl Bar {
    pub fn to_json(self) -> BarJson {
        BarJson {
            t: ts_string(self.t),
            o: self.o,
            h: self.h,
            l: self.l,
            c: self.c,
            v: self.v,
            n: self.n,
            vw: self.vw,
        }
    }
}

/// RFC 3339 in UTC with a `Z`, whole seconds (how Alpaca stamps bars).
pub fn ts_string(t: i64) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Folds bars (oldest first) into one.
pub fn aggregate(t: i64, minutes: &[Bar]) -> Option<Bar> {
    let first = minutes.first()?;
    let last = minutes.last()?;
    let mut bar = Bar {
        t,
        o: first.o,
        h: first.h,
        l: first.l,
        c: last.c,
        v: 0,
        n: 0,
        vw: 0.0,
    };
    let mut pv = 0.0;
    for m in minutes {
        bar.h = bar.h.max(m.h);
        bar.l = bar.l.min(m.l);
        bar.v += m.v;
        bar.n += m.n;
        pv += m.vw * m.v as f64;
    }
    bar.vw = if bar.v > 0 {
        ((pv / bar.v as f64) * 10_000.0).round() / 10_000.0
    } else {
        bar.c
    };
    bar.vw = bar.vw.clamp(bar.l, bar.h);
    Some(bar)
}

/// A bar length Alpaca accepts: `{N}Min` (1–59), `{N}Hour` (1–23), `1Day`; also the short forms
/// `{N}T`, `{N}H`, `1D`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeframe {
    /// Intraday bars of this many minutes.
    Minutes(u32),
    Day,
}

impl Timeframe {
    pub fn parse(text: &str) -> Result<Self, String> {
        let err =
            || format!("invalid timeframe {text:?}: use {{N}}Min (1-59), {{N}}Hour (1-23) or 1Day");
        let digits: String = text.chars().take_while(|c| c.is_ascii_digit()).collect();
        let unit = &text[digits.len()..];
        let n: u32 = digits.parse().map_err(|_| err())?;
        match unit {
            "Min" | "T" if (1..=59).contains(&n) => Ok(Timeframe::Minutes(n)),
            "Hour" | "H" if (1..=23).contains(&n) => Ok(Timeframe::Minutes(n * 60)),
            "Day" | "D" if n == 1 => Ok(Timeframe::Day),
            "Week" | "W" | "Month" | "M" => Err(format!(
                "timeframe {text:?} is not supported by the simulator: use {{N}}Min, {{N}}Hour or 1Day"
            )),
            _ => Err(err()),
        }
    }

    /// Bucket length in seconds for intraday timeframes.
    pub fn seconds(self) -> Option<i64> {
        match self {
            Timeframe::Minutes(m) => Some(i64::from(m) * 60),
            Timeframe::Day => None,
        }
    }
}

/// Groups one day's minute bars (oldest first) into buckets of `len` seconds aligned from
/// `day_start` (New York midnight). Buckets are cut at `day_end`.
pub fn bucket_day(minutes: &[Bar], day_start: i64, len: i64) -> Vec<(Bar, i64)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < minutes.len() {
        let start = day_start + (minutes[i].t - day_start).div_euclid(len) * len;
        let end = start + len;
        let mut j = i;
        while j < minutes.len() && minutes[j].t < end {
            j += 1;
        }
        if let Some(bar) = aggregate(start, &minutes[i..j]) {
            out.push((bar, end));
        }
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(t: i64, o: f64, c: f64, v: u64) -> Bar {
        Bar {
            t,
            o,
            h: o.max(c) + 0.1,
            l: o.min(c) - 0.1,
            c,
            v,
            n: 1,
            vw: (o + c) / 2.0,
        }
    }

    #[test]
    fn timeframes_parse_like_alpaca() {
        assert_eq!(Timeframe::parse("1Min"), Ok(Timeframe::Minutes(1)));
        assert_eq!(Timeframe::parse("5Min"), Ok(Timeframe::Minutes(5)));
        assert_eq!(Timeframe::parse("15T"), Ok(Timeframe::Minutes(15)));
        assert_eq!(Timeframe::parse("1Hour"), Ok(Timeframe::Minutes(60)));
        assert_eq!(Timeframe::parse("4H"), Ok(Timeframe::Minutes(240)));
        assert_eq!(Timeframe::parse("1Day"), Ok(Timeframe::Day));
        assert!(Timeframe::parse("60Min").is_err());
        assert!(Timeframe::parse("24Hour").is_err());
        assert!(Timeframe::parse("2Day").is_err());
        assert!(Timeframe::parse("Min").is_err());
        assert!(
            Timeframe::parse("1Week")
                .unwrap_err()
                .contains("not supported")
        );
    }

    #[test]
    fn aggregation_takes_first_open_last_close_extremes_and_sums() {
        let ms = vec![
            minute(0, 10.0, 11.0, 100),
            minute(60, 11.0, 9.0, 300),
            minute(120, 9.0, 10.5, 100),
        ];
        let bar = aggregate(0, &ms).expect("bars");
        assert_eq!(bar.o, 10.0);
        assert_eq!(bar.c, 10.5);
        assert_eq!(bar.h, 11.1);
        assert_eq!(bar.l, 8.9);
        assert_eq!(bar.v, 500);
        assert_eq!(bar.n, 3);
        let expected_vw = (10.5 * 100.0 + 10.0 * 300.0 + 9.75 * 100.0) / 500.0;
        assert!((bar.vw - expected_vw).abs() < 1e-4);
    }

    #[test]
    fn buckets_align_to_day_start_and_close_at_their_end() {
        // A session starting 09:30 (570 min after midnight) bucketed by hours: first bucket is
        // 09:00-10:00 holding 30 minutes.
        let ms: Vec<Bar> = (0..90)
            .map(|i| minute(570 * 60 + i * 60, 10.0, 10.0, 1))
            .collect();
        let buckets = bucket_day(&ms, 0, 3600);
        assert_eq!(buckets.len(), 2);
        assert_eq!(buckets[0].0.t, 540 * 60);
        assert_eq!(buckets[0].0.v, 30);
        assert_eq!(buckets[0].1, 600 * 60);
        assert_eq!(buckets[1].0.v, 60);
    }

    #[test]
    fn bar_timestamps_are_utc_seconds() {
        assert_eq!(ts_string(1_704_205_800), "2024-01-02T14:30:00Z");
    }
}
