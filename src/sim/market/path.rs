//! The continuous price path inside minute bars, used for quotes and order matching.
//!
//! Within a minute the price moves in straight lines through four vertices: the open at 0 s,
//! the first extreme at 20 s, the second at 40 s and the close at 60 s. The low comes first in
//! a rising minute and the high first in a falling one. So every bar's high and low are really
//! traded, and a limit or stop order fills exactly when this path crosses its price.
//!
//! Invariants:
//! - Times are epoch microseconds; a point's `minute` is the start (epoch seconds) of the
//!   minute bar it lies in, the close vertex belonging to its own minute.
//! - A point marked `jump` is reached instantly from the previous point: the market was closed
//!   (or a replayed minute had no trades) in between, so prices in the gap never traded.

use super::bar::Bar;

/// One vertex of the price path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathPoint {
    /// Epoch microseconds.
    pub t: i64,
    pub price: f64,
    /// Start (epoch seconds) of the minute bar this point lies in.
    pub minute: i64,
    /// Volume of that minute bar (bounds fills; 0 outside trading).
    pub volume: u64,
    /// True when the segment ending here is a gap, crossed instantly.
    pub jump: bool,
}

const MICROS: i64 = 1_000_000;

/// The four vertices of a minute: (offset in seconds, price).
fn vertices(m: &Bar) -> [(i64, f64); 4] {
    let (first, second) = if m.c >= m.o { (m.l, m.h) } else { (m.h, m.l) };
    [(0, m.o), (20, first), (40, second), (60, m.c)]
}

/// Price on the path at `ts` (microseconds) inside minute `m`.
pub fn price_in_minute(m: &Bar, ts: i64) -> f64 {
    let offset = (ts - m.t * MICROS) as f64 / MICROS as f64;
    let v = vertices(m);
    for w in v.windows(2) {
        let (t0, p0) = w[0];
        let (t1, p1) = w[1];
        if offset <= t1 as f64 {
            let f = ((offset - t0 as f64) / (t1 - t0) as f64).clamp(0.0, 1.0);
            return p0 + (p1 - p0) * f;
        }
    }
    m.c
}

/// Start (epoch seconds) of the minute containing `ts` (microseconds).
pub fn minute_of(ts: i64) -> i64 {
    ts.div_euclid(MICROS * 60) * 60
}

/// Volume of the minute bar covering `ts`, 0 when no bar covers it.
pub fn volume_at(minutes: &[Bar], ts: i64) -> u64 {
    let i = minutes.partition_point(|m| m.t * MICROS <= ts);
    match i.checked_sub(1).map(|i| minutes[i]) {
        Some(m) if ts < (m.t + 60) * MICROS => m.v,
        _ => 0,
    }
}

/// Appends the vertices of `minutes` lying in (a, b] to `out`, marking gaps as jumps.
pub fn append_day(out: &mut Vec<PathPoint>, minutes: &[Bar], a: i64, b: i64) {
    let first = minutes.partition_point(|m| (m.t + 60) * MICROS <= a);
    for m in &minutes[first..] {
        if m.t * MICROS > b {
            break;
        }
        for (k, (offset, price)) in vertices(m).into_iter().enumerate() {
            let t = (m.t + offset) * MICROS;
            if t <= a || t > b {
                continue;
            }
            let jump = k == 0 && out.last().is_some_and(|p| p.t < t);
            out.push(PathPoint {
                t,
                price,
                minute: m.t,
                volume: m.v,
                jump,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(t: i64, o: f64, h: f64, l: f64, c: f64) -> Bar {
        Bar {
            t,
            o,
            h,
            l,
            c,
            v: 100,
            n: 1,
            vw: (h + l) / 2.0,
        }
    }

    #[test]
    fn rising_minute_visits_low_then_high() {
        let m = bar(600, 10.0, 12.0, 9.0, 11.0);
        assert_eq!(price_in_minute(&m, 600 * MICROS), 10.0);
        assert_eq!(price_in_minute(&m, 620 * MICROS), 9.0);
        assert_eq!(price_in_minute(&m, 640 * MICROS), 12.0);
        assert_eq!(price_in_minute(&m, 660 * MICROS), 11.0);
        assert!((price_in_minute(&m, 610 * MICROS) - 9.5).abs() < 1e-9);
    }

    #[test]
    fn gaps_between_minutes_are_jumps() {
        let minutes = vec![
            bar(0, 10.0, 10.5, 9.5, 10.0),
            bar(300, 11.0, 11.5, 10.5, 11.0),
        ];
        let mut out = vec![PathPoint {
            t: 0,
            price: 10.0,
            minute: 0,
            volume: 100,
            jump: false,
        }];
        append_day(&mut out, &minutes, 0, 400 * MICROS);
        let opens: Vec<&PathPoint> = out.iter().filter(|p| p.t == 300 * MICROS).collect();
        assert_eq!(opens.len(), 1);
        assert!(opens[0].jump);
        assert!(out.iter().filter(|p| p.jump).count() == 1);
        assert_eq!(out.last().map(|p| p.t), Some(360 * MICROS));
    }

    #[test]
    fn volume_lookup_respects_bar_bounds() {
        let minutes = vec![bar(0, 10.0, 10.5, 9.5, 10.0)];
        assert_eq!(volume_at(&minutes, 30 * MICROS), 100);
        assert_eq!(volume_at(&minutes, 60 * MICROS), 0);
    }
}
