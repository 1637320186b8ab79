//! Market data endpoints: historical bars (multi- and single-symbol, paged), latest trade,
//! quote and bar, and snapshots.
//!
//! Invariants:
//! - Prices and sizes are JSON numbers; every bar carries `t,o,h,l,c,v,n,vw`.
//! - The last page has `"next_page_token": null` (never `""`, which makes alpaca-py loop).
//! - Multi-symbol answers have exactly one payload key (`bars`, `trades`, ...), which is how
//!   alpaca-py finds the payload; snapshots are a bare map, as Alpaca sends them.

use actix_web::{HttpRequest, HttpResponse, web};
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::params::{Params, symbol};
use super::{ok_json, query};
use crate::sim::calendar::{ny_date, ny_midnight};
use crate::sim::clock::rfc3339_micros;
use crate::sim::exchange::quote;
use crate::sim::lock;
use crate::sim::market::{Bar, BarJson, BarsRequest, Market, PageToken, Timeframe, round_tick};
use crate::sim::state::SimState;

type Res = Result<HttpResponse, ApiError>;

const DEFAULT_LIMIT: u64 = 1000;

/// Validates the bar query parameters for `symbols`.
fn bars_request(
    state: &SimState,
    p: &Params,
    symbols: Vec<String>,
    now: DateTime<Utc>,
) -> Result<BarsRequest, ApiError> {
    let timeframe = p
        .get("timeframe")
        .ok_or_else(|| ApiError::invalid_data("timeframe is required"))
        .and_then(|t| Timeframe::parse(t).map_err(ApiError::invalid_data))?;
    let start = p
        .time("start", ApiError::invalid_data)?
        .unwrap_or_else(|| ny_midnight(ny_date(now)));
    let end = p.time("end", ApiError::invalid_data)?.unwrap_or(now);
    if end < start {
        return Err(ApiError::invalid_data("end should not be before start"));
    }
    let limit = p
        .int("limit", 1..=10_000, ApiError::invalid_data)?
        .unwrap_or(DEFAULT_LIMIT);
    let token = match p.get("page_token") {
        None | Some("null") => None,
        Some(t) => {
            Some(PageToken::decode(t).ok_or_else(|| ApiError::invalid_data("invalid page_token"))?)
        }
    };
    let split_adjusted = match p.get("adjustment") {
        None | Some("raw" | "dividend") => false,
        Some("split" | "all") => true,
        Some(other) => {
            return Err(ApiError::invalid_data(format!(
                "invalid adjustment: {other:?} (raw, split, dividend or all)"
            )));
        }
    };
    // Alpaca's default feed for an account without a subscription is `iex`.
    let empty_minutes = match p.get("feed") {
        None | Some("iex") => state.config.iex_empty_minutes,
        Some(_) => 0.0,
    };
    Ok(BarsRequest {
        symbols,
        timeframe,
        start,
        end,
        limit: limit.min(u64::from(state.config.max_page_size)) as usize,
        desc: p.direction("sort", false, ApiError::invalid_data)?,
        token,
        split_adjusted,
        empty_minutes,
    })
}

fn required_symbols(p: &Params) -> Result<Vec<String>, ApiError> {
    match p.symbols("symbols", ApiError::invalid_data)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(ApiError::invalid_data("missing symbols")),
    }
}

fn path_symbol(text: &str) -> Result<String, ApiError> {
    symbol(text).map_err(|_| ApiError::invalid_data(format!("invalid symbol: {text}")))
}

fn token_json(token: Option<PageToken>) -> Value {
    token.map_or(Value::Null, |t| Value::String(t.encode()))
}

fn bars_json(bars: &[Bar]) -> Value {
    json!(bars.iter().copied().map(Bar::to_json).collect::<Vec<_>>())
}

/// The multi-symbol bars answer, serialized as it is typed: building it as a `serde_json::Value`
/// first (a map of eight entries per bar) was most of the simulator's cost per bars request.
#[derive(Serialize)]
struct BarsBody<'a> {
    /// Sorted by symbol, as Alpaca's (and `serde_json::Map`'s) are.
    bars: BTreeMap<&'a str, Vec<BarJson>>,
    next_page_token: Option<String>,
}

/// Counts `n` bars sent in `/__sim/stats`.
fn served(state: &SimState, n: usize) {
    lock(&state.stats).bars_served += n as u64;
}

/// `GET /v2/stocks/bars?symbols=...`
pub async fn bars(state: web::Data<SimState>, req: HttpRequest) -> Res {
    let p = query(&req)?;
    let now = state.clock.now();
    let request = bars_request(&state, &p, required_symbols(&p)?, now)?;
    let page = state.venue().market.bars_page(&request, now);
    served(&state, page.bars.iter().map(|(_, b)| b.len()).sum());
    let body = BarsBody {
        bars: page
            .bars
            .iter()
            .map(|(sym, bars)| {
                (
                    sym.as_str(),
                    bars.iter().copied().map(Bar::to_json).collect(),
                )
            })
            .collect(),
        next_page_token: page.next.map(|t| t.encode()),
    };
    Ok(ok_json(&body))
}

/// `GET /v2/stocks/{symbol}/bars`
pub async fn symbol_bars(
    state: web::Data<SimState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Res {
    let sym = path_symbol(&path)?;
    let p = query(&req)?;
    let now = state.clock.now();
    let request = bars_request(&state, &p, vec![sym.clone()], now)?;
    if request.token.as_ref().is_some_and(|t| t.symbol != sym) {
        return Err(ApiError::invalid_data("invalid page_token"));
    }
    let page = state.venue().market.bars_page(&request, now);
    served(&state, page.bars.first().map_or(0, |(_, b)| b.len()));
    let bars = page
        .bars
        .first()
        .map(|(_, b)| bars_json(b))
        .unwrap_or(json!([]));
    Ok(ok_json(&json!({
        "bars": bars,
        "symbol": sym,
        "next_page_token": token_json(page.next),
    })))
}

/// The latest trade at `now`: on the price path while the market is open, else the last
/// minute's close, stamped just before that minute ended.
fn trade(market: &mut Market, sym: &str, now: DateTime<Utc>) -> Option<(Value, f64)> {
    let (t, price) = if market.hours().is_open(now) {
        (now, round_tick(market.price(sym, now)))
    } else {
        let bar = market.latest_minute_bar(sym, now)?;
        (DateTime::<Utc>::from_timestamp(bar.t + 59, 0)?, bar.c)
    };
    let body = json!({
        "t": rfc3339_micros(t),
        "x": "V",
        "p": price,
        "s": 100,
        "c": ["@"],
        "i": t.timestamp_micros(),
        "z": "B",
    });
    Some((body, price))
}

fn quote_json(
    state: &SimState,
    market: &mut Market,
    sym: &str,
    now: DateTime<Utc>,
) -> Option<Value> {
    let (trade, price) = trade(market, sym, now)?;
    let (bid, ask) = quote(price, state.config.spread_bps);
    Some(json!({
        "t": trade["t"],
        "ax": "V",
        "ap": ask,
        "as": 3,
        "bx": "V",
        "bp": bid,
        "bs": 2,
        "c": ["R"],
        "z": "B",
    }))
}

fn snapshot(
    state: &SimState,
    market: &mut Market,
    sym: &str,
    now: DateTime<Utc>,
) -> Map<String, Value> {
    let mut m = Map::new();
    let bar = |b: Option<Bar>| b.map_or(Value::Null, |b| json!(b.to_json()));
    m.insert(
        "latestTrade".into(),
        trade(market, sym, now).map_or(Value::Null, |(t, _)| t),
    );
    m.insert(
        "latestQuote".into(),
        quote_json(state, market, sym, now).unwrap_or(Value::Null),
    );
    m.insert("minuteBar".into(), bar(market.latest_minute_bar(sym, now)));
    m.insert("dailyBar".into(), bar(market.current_day_bar(sym, now)));
    m.insert(
        "prevDailyBar".into(),
        bar(market.previous_day_bar(sym, now)),
    );
    m
}

/// Builds `{key: {SYM: value}}` for the symbols that have a value.
fn latest_multi(
    state: &SimState,
    req: &HttpRequest,
    key: &str,
    mut one: impl FnMut(&SimState, &mut Market, &str, DateTime<Utc>) -> Option<Value>,
) -> Res {
    let p = query(req)?;
    let symbols = required_symbols(&p)?;
    let now = state.clock.now();
    let mut venue = state.venue();
    let mut map = Map::new();
    for sym in symbols {
        if let Some(v) = one(state, &mut venue.market, &sym, now) {
            map.insert(sym, v);
        }
    }
    Ok(ok_json(&json!({ key: map })))
}

/// Builds `{"symbol": SYM, key: value}`, 404 when the symbol has no data yet.
fn latest_single(
    state: &SimState,
    path: &str,
    key: &str,
    mut one: impl FnMut(&SimState, &mut Market, &str, DateTime<Utc>) -> Option<Value>,
) -> Res {
    let sym = path_symbol(path)?;
    let now = state.clock.now();
    let mut venue = state.venue();
    let value = one(state, &mut venue.market, &sym, now)
        .ok_or_else(|| ApiError::not_found(format!("no data found for {sym}")))?;
    Ok(ok_json(&json!({ "symbol": sym, key: value })))
}

fn one_bar(_: &SimState, m: &mut Market, sym: &str, now: DateTime<Utc>) -> Option<Value> {
    m.latest_minute_bar(sym, now).map(|b| json!(b.to_json()))
}

fn one_trade(_: &SimState, m: &mut Market, sym: &str, now: DateTime<Utc>) -> Option<Value> {
    trade(m, sym, now).map(|(t, _)| t)
}

pub async fn latest_bars(state: web::Data<SimState>, req: HttpRequest) -> Res {
    latest_multi(&state, &req, "bars", one_bar)
}

pub async fn latest_trades(state: web::Data<SimState>, req: HttpRequest) -> Res {
    latest_multi(&state, &req, "trades", one_trade)
}

pub async fn latest_quotes(state: web::Data<SimState>, req: HttpRequest) -> Res {
    latest_multi(&state, &req, "quotes", quote_json)
}

pub async fn symbol_latest_bar(state: web::Data<SimState>, path: web::Path<String>) -> Res {
    latest_single(&state, &path, "bar", one_bar)
}

pub async fn symbol_latest_trade(state: web::Data<SimState>, path: web::Path<String>) -> Res {
    latest_single(&state, &path, "trade", one_trade)
}

pub async fn symbol_latest_quote(state: web::Data<SimState>, path: web::Path<String>) -> Res {
    latest_single(&state, &path, "quote", quote_json)
}

/// `GET /v2/stocks/snapshots?symbols=`: a bare map keyed by symbol.
pub async fn snapshots(state: web::Data<SimState>, req: HttpRequest) -> Res {
    let p = query(&req)?;
    let symbols = required_symbols(&p)?;
    let now = state.clock.now();
    let mut venue = state.venue();
    let mut map = Map::new();
    for sym in symbols {
        let snap = snapshot(&state, &mut venue.market, &sym, now);
        map.insert(sym, Value::Object(snap));
    }
    Ok(ok_json(&map))
}

/// `GET /v2/stocks/{symbol}/snapshot`
pub async fn symbol_snapshot(state: web::Data<SimState>, path: web::Path<String>) -> Res {
    let sym = path_symbol(&path)?;
    let now = state.clock.now();
    let mut venue = state.venue();
    let mut snap = snapshot(&state, &mut venue.market, &sym, now);
    snap.insert("symbol".into(), json!(sym));
    Ok(ok_json(&snap))
}
