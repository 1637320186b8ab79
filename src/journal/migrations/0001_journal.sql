-- herd's journal, version 1. Portable SQL: the same statements run on SQLite and PostgreSQL.
-- Times are milliseconds since the Unix epoch (BIGINT); quantities and prices are decimal text,
-- exactly as herd computed them (no floating point in money).

-- One row per order herd decided to place, keyed by its deterministic client_order_id; the row
-- is the order's latest state, its history is in order_events.
CREATE TABLE orders (
    client_order_id  TEXT PRIMARY KEY,
    seq              BIGINT NOT NULL,   -- herd's insertion order: /orders pages by it
    instance         TEXT NOT NULL,
    symbol           TEXT NOT NULL,
    side             TEXT NOT NULL,
    qty              TEXT NOT NULL,
    state            TEXT NOT NULL,     -- submitting, open, filled, canceled, expired, rejected, refused, unknown
    venue_status     TEXT,
    order_id         TEXT,
    submitted_at     BIGINT,
    filled_qty       TEXT NOT NULL,
    filled_avg_price TEXT,
    decided_on       BIGINT NOT NULL,
    reason           TEXT NOT NULL,
    error            TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX orders_by_seq ON orders (seq);
CREATE INDEX orders_by_instance ON orders (instance, seq);
CREATE INDEX orders_by_state ON orders (state);

-- Every change of an order's state, venue status or filled quantity, with its time.
CREATE TABLE order_events (
    client_order_id TEXT NOT NULL,
    at              BIGINT NOT NULL,
    state           TEXT NOT NULL,
    venue_status    TEXT,
    filled_qty      TEXT NOT NULL,
    error           TEXT
);
CREATE INDEX order_events_by_order ON order_events (client_order_id, at);
CREATE INDEX order_events_by_time ON order_events (at);

-- Each part of an order that filled: `filled_total` is the order's cumulative filled quantity
-- after this part, so reading the same venue answer twice cannot record a fill twice.
CREATE TABLE fills (
    client_order_id TEXT NOT NULL,
    filled_total    TEXT NOT NULL,
    instance        TEXT NOT NULL,
    symbol          TEXT NOT NULL,
    qty             TEXT NOT NULL,      -- signed: + bought, - sold
    price           TEXT NOT NULL,
    at              BIGINT NOT NULL,
    PRIMARY KEY (client_order_id, filled_total)
);
CREATE INDEX fills_by_time ON fills (at);

-- Each instance's position per symbol, built from its fills and written in the same
-- transaction as the fill that changed it.
CREATE TABLE ledger (
    instance     TEXT NOT NULL,
    symbol       TEXT NOT NULL,
    qty          TEXT NOT NULL,
    avg_price    TEXT NOT NULL,
    realized_pnl TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (instance, symbol)
);

-- Every decision of every instance: the order it asked for, or why it held.
CREATE TABLE decisions (
    at         BIGINT NOT NULL,
    instance   TEXT NOT NULL,
    symbol     TEXT NOT NULL,
    action     TEXT NOT NULL,           -- order, hold, no_data
    side       TEXT,
    qty        TEXT,
    signal     DOUBLE PRECISION,
    decided_on BIGINT,
    reason     TEXT,
    detail     TEXT NOT NULL            -- the whole decision as JSON
);
CREATE INDEX decisions_by_time ON decisions (at);

-- Every admin call, allowed or refused.
CREATE TABLE admin_actions (
    at         BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    client     TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    status     INTEGER NOT NULL,
    result     TEXT NOT NULL,
    error      TEXT
);
CREATE INDEX admin_actions_by_time ON admin_actions (at);

-- Why every supervised actor stopped.
CREATE TABLE actor_stops (
    at          BIGINT NOT NULL,
    child       TEXT NOT NULL,
    incarnation BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    abnormal    INTEGER NOT NULL
);
CREATE INDEX actor_stops_by_time ON actor_stops (at);

-- What must survive a restart besides orders: the trading state, paused instances, the account
-- positions herd did not make.
CREATE TABLE herd_state (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
