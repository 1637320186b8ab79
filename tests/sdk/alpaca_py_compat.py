"""Drives the herd simulator with the official Alpaca Python SDK (alpaca-py), unchanged.

Usage: python3 tests/sdk/alpaca_py_compat.py http://127.0.0.1:PORT

Expects a simulator with a frozen clock (speed 0) and max_page_size 100 (tests/sim_sdk_compat.rs
starts one). Moves sim time through the simulator's control endpoint instead of sleeping.
Exits 0 when every check passes; any failure raises and exits non-zero.
"""

import json
import sys
import urllib.request
from datetime import datetime, timezone

from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import (
    StockBarsRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
    StockSnapshotRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    AccountStatus,
    OrderSide,
    OrderStatus,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetCalendarRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopOrderRequest,
)

BASE = sys.argv[1].rstrip("/")


def control(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req) as res:
        text = res.read().decode()
        return json.loads(text) if text else None


def advance(by):
    control("POST", "/__sim/clock", {"advance": by})


def expect_api_error(fn, status, code):
    try:
        fn()
    except APIError as e:
        assert e.status_code == status, (e.status_code, str(e))
        assert e.code == code, (e.code, str(e))
        return e
    raise AssertionError(f"expected APIError {status}/{code}")


def check(name, fn):
    fn()
    print(f"ok   {name}")


trading = TradingClient("sdk-key", "sdk-secret", paper=True, url_override=BASE)
data = StockHistoricalDataClient("sdk-key", "sdk-secret", url_override=BASE)


def account():
    a = trading.get_account()
    assert a.status == AccountStatus.ACTIVE
    assert float(a.cash) == 100000.0, a.cash
    assert float(a.equity) == 100000.0
    assert a.account_number


def clock():
    c = trading.get_clock()
    assert c.is_open is True
    assert c.next_close > c.timestamp
    assert c.timestamp.utcoffset() is not None


def calendar():
    days = trading.get_calendar(GetCalendarRequest(start="2024-05-06", end="2024-05-10"))
    assert len(days) == 5, days


def asset():
    a = trading.get_asset("SPY")
    assert a.symbol == "SPY" and a.tradable


def orders():
    req = MarketOrderRequest(
        symbol="SPY",
        qty=3,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.DAY,
        client_order_id="sdk-market-1",
    )
    o = trading.submit_order(req)
    assert o.status in (OrderStatus.NEW, OrderStatus.ACCEPTED), o.status
    assert o.client_order_id == "sdk-market-1"
    assert o.created_at and o.updated_at and o.submitted_at
    advance("5s")
    filled = trading.get_order_by_id(o.id)
    assert filled.status == OrderStatus.FILLED, filled.status
    assert float(filled.filled_qty) == 3.0
    assert float(filled.filled_avg_price) > 0
    by_client = trading.get_order_by_client_id("sdk-market-1")
    assert by_client.id == o.id

    # The same client_order_id again: the SDK's APIError, 422 / 40010001.
    e = expect_api_error(lambda: trading.submit_order(req), 422, 40010001)
    assert e.message == "client_order_id must be unique"

    # Fractional and string quantities, as other SDKs send them.
    frac = trading.submit_order(
        MarketOrderRequest(symbol="QQQ", qty=0.5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    assert float(frac.qty) == 0.5
    advance("5s")
    assert trading.get_order_by_id(frac.id).status == OrderStatus.FILLED

    limit = trading.submit_order(
        LimitOrderRequest(
            symbol="SPY",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=1.00,
            client_order_id="sdk-limit-1",
        )
    )
    stop = trading.submit_order(
        StopOrderRequest(
            symbol="SPY",
            qty=1,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            stop_price=1.00,
        )
    )
    assert stop.stop_price is not None
    trading.cancel_order_by_id(limit.id)
    canceled = trading.get_order_by_id(limit.id)
    assert canceled.status == OrderStatus.CANCELED
    # Cancelling again: 422; reusing the cancelled order's id: 422 too.
    expect_api_error(lambda: trading.cancel_order_by_id(limit.id), 422, 42210000)
    expect_api_error(
        lambda: trading.submit_order(
            LimitOrderRequest(
                symbol="SPY",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=1.00,
                client_order_id="sdk-limit-1",
            )
        ),
        422,
        40010001,
    )
    expect_api_error(lambda: trading.get_order_by_client_id("never-sent"), 404, 40410000)

    open_orders = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    assert [x.id for x in open_orders] == [stop.id], open_orders
    all_orders = trading.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.ALL, symbols=["SPY"], limit=10)
    )
    assert len(all_orders) == 3, len(all_orders)
    results = trading.cancel_orders()
    assert len(results) == 1 and results[0].status == 200


def positions():
    advance("5s")
    ps = trading.get_all_positions()
    assert {p.symbol for p in ps} == {"SPY", "QQQ"}, ps
    spy = trading.get_open_position("SPY")
    assert float(spy.qty) == 3.0 and spy.side.value == "long"
    assert spy.exchange.value in ("ARCA", "NYSEARCA")
    expect_api_error(lambda: trading.get_open_position("IWM"), 404, 40410000)
    closing = trading.close_position("SPY", ClosePositionRequest(qty="1"))
    assert closing.side == OrderSide.SELL
    advance("5s")
    assert float(trading.get_open_position("SPY").qty) == 2.0
    closed = trading.close_all_positions(cancel_orders=True)
    assert len(closed) == 2
    advance("5s")
    assert trading.get_all_positions() == []


def bars():
    control("DELETE", "/__sim/stats")
    req = StockBarsRequest(
        symbol_or_symbols=["SPY", "QQQ", "IWM"],
        timeframe=TimeFrame(5, TimeFrameUnit.Minute),
        start=datetime(2024, 5, 6, tzinfo=timezone.utc),
        end=datetime(2024, 5, 8, 15, 0, tzinfo=timezone.utc),
        limit=350,
    )
    barset = data.get_stock_bars(req)
    counts = {s: len(b) for s, b in barset.data.items()}
    assert sum(counts.values()) == 350, counts
    # The simulator caps pages at 100 bars, so the SDK followed next_page_token: 4 pages.
    stats = control("GET", "/__sim/stats")
    pages = stats["routes"]["GET /v2/stocks/bars"]["requests"]
    assert pages == 4, pages
    first = barset.data["IWM"][0]
    assert first.open > 0 and first.volume > 0
    assert first.trade_count is not None and first.vwap is not None
    times = [b.timestamp for b in barset.data["IWM"]]
    assert times == sorted(times)

    everything = data.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols=["SPY", "QQQ"],
            timeframe=TimeFrame.Hour,
            start=datetime(2024, 5, 7, tzinfo=timezone.utc),
            end=datetime(2024, 5, 8, tzinfo=timezone.utc),
        )
    )
    # start and end are both inclusive: 00:00 on the 7th through 00:00 on the 8th.
    assert len(everything.data["SPY"]) == 25, len(everything.data["SPY"])
    daily = data.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="SPY",
            timeframe=TimeFrame.Day,
            start=datetime(2024, 1, 1, tzinfo=timezone.utc),
        )
    )
    assert len(daily.data["SPY"]) >= 90


def latest():
    trades = data.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols=["SPY", "QQQ"]))
    assert trades["SPY"].price > 0
    quotes = data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="SPY"))
    assert quotes["SPY"].ask_price >= quotes["SPY"].bid_price
    snaps = data.get_stock_snapshot(StockSnapshotRequest(symbol_or_symbols=["SPY", "IWM"]))
    assert snaps["IWM"].daily_bar is not None and snaps["IWM"].latest_trade is not None


for name, fn in [
    ("account", account),
    ("clock", clock),
    ("calendar", calendar),
    ("asset", asset),
    ("orders: submit, get, by client id, duplicate id, cancel, list", orders),
    ("positions: list, get, 404, close", positions),
    ("bars: multi-symbol with paging, hourly, daily", bars),
    ("latest trade, quote, snapshots", latest),
]:
    check(name, fn)
print("alpaca-py compatibility: all checks passed")
