-- Version 4: an instance-tick's holds of its own (a symbol, a signal and a reason each, no
-- order) in one row, not one row each. Nearly every decision is such a hold (five a tick for
-- a momentum instance on five symbols), and a row each was about half of herd's CPU at 1,000
-- instances: SQLite's work is mostly per row. `herd journal export` writes them out as
-- decisions, one each, as before; holds journaled before this version stay in `decisions`.
CREATE TABLE hold_ticks (
    at       BIGINT NOT NULL,
    instance TEXT NOT NULL,
    holds    TEXT NOT NULL          -- JSON: [[symbol, signal, reason], ...] in the tick's order
);
CREATE INDEX hold_ticks_by_time ON hold_ticks (at);
