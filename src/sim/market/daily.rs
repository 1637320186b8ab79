//! The daily path of one symbol: open and close of every trading day, extended lazily in
//! either direction from an anchor day.
//!
//! The anchor day opens at the symbol's start price. Each later day opens at the previous
//! close times the overnight gap and closes at `open × exp(R)`, where
//! `R = base_return − κ·(ln open − ln anchor)`. Each earlier day closes at the next open over
//! that day's gap and opens at `close / exp(R)` with `R = base_return + κ·(ln close − ln anchor)`.
//! Each day's rule depends only on which side of the anchor it lies, so the path is identical
//! whichever direction (and in whichever order) it is extended, and bounded both ways.
//!
//! Invariants:
//! - `days` holds consecutive trading days, oldest first, without holes.
//! - A day's entry never changes once computed (a closed bar never changes).

use std::collections::VecDeque;

use chrono::NaiveDate;

use super::synth::{DayPlan, GenCtx, REVERSION_PER_DAY};
use crate::sim::calendar::MarketHours;

/// Open and close of one trading day, and the reversion folded into its return.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DayAnchor {
    pub date: NaiveDate,
    pub open: f64,
    pub close: f64,
    /// Log pull toward the anchor price included in this day's return.
    pub reversion: f64,
    /// Overnight log gap before this day's open.
    pub gap: f64,
}

/// Lazily extended daily path.
pub struct DailyPath {
    /// Log of the anchor price: the level reversion pulls toward.
    ln_anchor: f64,
    /// Pull strength; 0 when regimes are off (plain GBM).
    kappa: f64,
    /// Consecutive trading days, oldest first.
    days: VecDeque<DayAnchor>,
}

impl DailyPath {
    /// A path whose `anchor` day (a trading day) opens at `price`.
    pub fn new(ctx: &GenCtx, hours: MarketHours, anchor: NaiveDate, price: f64) -> Self {
        let kappa = if ctx.regimes { REVERSION_PER_DAY } else { 0.0 };
        let plan = plan(ctx, hours, anchor);
        let close = price * plan.base_return().exp();
        let mut days = VecDeque::new();
        days.push_back(DayAnchor {
            date: anchor,
            open: price,
            close,
            reversion: 0.0,
            gap: plan.gap,
        });
        Self {
            ln_anchor: price.ln(),
            kappa,
            days,
        }
    }

    /// The day `date` (a trading day), extending the path as needed.
    pub fn day(&mut self, ctx: &GenCtx, hours: MarketHours, date: NaiveDate) -> DayAnchor {
        loop {
            let (first, last) = match (self.days.front(), self.days.back()) {
                (Some(f), Some(l)) => (*f, *l),
                // `new` pushes the anchor and nothing pops: unreachable, but never panic.
                _ => return self.fallback(date),
            };
            if date < first.date {
                self.extend_back(ctx, hours, first);
            } else if date > last.date {
                self.extend_forward(ctx, hours, last);
            } else {
                return match self.days.binary_search_by(|d| d.date.cmp(&date)) {
                    Ok(i) => self.days[i],
                    Err(_) => self.fallback(date),
                };
            }
        }
    }

    fn fallback(&self, date: NaiveDate) -> DayAnchor {
        let p = self.ln_anchor.exp();
        DayAnchor {
            date,
            open: p,
            close: p,
            reversion: 0.0,
            gap: 0.0,
        }
    }

    fn extend_forward(&mut self, ctx: &GenCtx, hours: MarketHours, last: DayAnchor) {
        let date = hours.next_trading_day(last.date);
        let plan = plan(ctx, hours, date);
        let open = last.close * plan.gap.exp();
        let reversion = -self.kappa * (open.ln() - self.ln_anchor);
        let close = open * (plan.base_return() + reversion).exp();
        self.days.push_back(DayAnchor {
            date,
            open,
            close,
            reversion,
            gap: plan.gap,
        });
    }

    fn extend_back(&mut self, ctx: &GenCtx, hours: MarketHours, first: DayAnchor) {
        let date = hours.prev_trading_day(first.date);
        let plan = plan(ctx, hours, date);
        let close = first.open / first.gap.exp();
        // Before the anchor the pull acts on the close: seen backwards in time the open is
        // drawn toward the anchor, so extending backwards is as stable as forwards (solving the
        // forward rule for the open would amplify deviations by 1/(1−κ) a day).
        let reversion = self.kappa * (close.ln() - self.ln_anchor);
        let open = close / (plan.base_return() + reversion).exp();
        self.days.push_front(DayAnchor {
            date,
            open,
            close,
            reversion,
            gap: plan.gap,
        });
    }
}

/// The plan of a trading day.
pub fn plan(ctx: &GenCtx, hours: MarketHours, date: NaiveDate) -> DayPlan {
    let minutes = hours.session_minutes(date).max(0) as usize;
    ctx.plan(date, minutes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::market::SymbolParams;
    use crate::sim::market::params::resolve;

    fn ctx() -> GenCtx {
        GenCtx {
            seed: 7,
            symbol: "QQQ".into(),
            params: resolve("QQQ", 7, &SymbolParams::default(), None),
            regimes: true,
            gaps: true,
        }
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    #[test]
    fn path_is_the_same_whatever_the_extension_order() {
        let c = ctx();
        let h = MarketHours::Regular;
        let anchor = d(2024, 6, 3);
        let mut a = DailyPath::new(&c, h, anchor, 100.0);
        let mut b = DailyPath::new(&c, h, anchor, 100.0);
        let early = a.day(&c, h, d(2024, 1, 2));
        let late = a.day(&c, h, d(2024, 12, 2));
        let late_b = b.day(&c, h, d(2024, 12, 2));
        let early_b = b.day(&c, h, d(2024, 1, 2));
        assert_eq!(early, early_b);
        assert_eq!(late, late_b);
        assert_eq!(a.day(&c, h, anchor).open, 100.0);
    }

    #[test]
    fn days_chain_through_gaps() {
        let c = ctx();
        let h = MarketHours::Regular;
        let anchor = d(2024, 6, 3);
        let mut p = DailyPath::new(&c, h, anchor, 100.0);
        let fri = p.day(&c, h, d(2024, 5, 31));
        let mon = p.day(&c, h, anchor);
        assert!((mon.open - fri.close * mon.gap.exp()).abs() < 1e-9);
        let tue = p.day(&c, h, d(2024, 6, 4));
        assert!((tue.open - mon.close * tue.gap.exp()).abs() < 1e-9);
    }

    #[test]
    fn prices_stay_positive_and_plausible_over_years() {
        let c = ctx();
        let h = MarketHours::Always;
        let anchor = d(2024, 6, 3);
        let mut p = DailyPath::new(&c, h, anchor, 100.0);
        let mut date = d(2022, 6, 3);
        while date < d(2026, 6, 3) {
            let day = p.day(&c, h, date);
            assert!(
                day.close > 40.0 && day.close < 250.0,
                "{date}: {}",
                day.close
            );
            date = date.succ_opt().expect("date");
        }
    }
}
