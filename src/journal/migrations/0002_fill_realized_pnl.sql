-- Version 2: the P&L each fill realized, so the risk gate's daily loss survives a restart.
-- Fills recorded by version 1 realized nothing as far as this column knows.
ALTER TABLE fills ADD COLUMN realized_pnl TEXT NOT NULL DEFAULT '0';
