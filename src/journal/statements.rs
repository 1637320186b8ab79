//! The text of the multi-row INSERTs the journal's writer groups rows into (decisions, ticks'
//! bare holds, actor stops): their size, their placeholders for each database, and the texts kept
//! for the sizes the writer uses.
//!
//! Invariant: a text is the same whether built or kept, for its kind, row count and dialect.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

/// Rows per INSERT for the rows the writer groups (decisions, actor stops): it records
/// thousands a second at scale (and a stop per instance at the drain), and one statement per
/// row made the round trips to the database the journal's cost. Each statement is still a
/// round trip to sqlx's SQLite thread: 500 rows cost about 7 % less CPU a decision than 100.
/// At most 5,000 parameters, well within SQLite's (32,766) and PostgreSQL's (65,535) limits.
pub(super) const ROWS_PER_INSERT: usize = 500;

/// The database a statement is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Dialect {
    /// SQLite: parameters are `?`, bound in order. sqlx asks SQLite for every parameter's name,
    /// which for a `$N` is a search of a list of all of them — at 20 rows (200 parameters)
    /// still 11 % of herd's CPU at 1,000 instances; an anonymous parameter has no name to look
    /// up.
    Sqlite,
    /// PostgreSQL: `$1`, `$2`, … (its only form).
    Postgres,
}

/// Parameters a decision row binds: every column.
const DECISION_CELLS: usize = 10;
/// Parameters a row of a tick's [bare holds](super::entry::DecisionEntry::is_bare_hold)
/// binds: its time, its instance and the holds as one JSON text.
const HOLD_TICK_CELLS: usize = 3;
const STOP_CELLS: usize = 5;

/// `(…), (…)`: the VALUES of a multi-row INSERT of `rows` rows of `cells` parameters each,
/// written into one string (a string per parameter, joined, was 6 % of herd's CPU at 1,000
/// instances: the writer builds one of these per statement).
fn values_list(rows: usize, cells: usize, dialect: Dialect) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(rows * cells * 6);
    let mut param = 0;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cells {
            if c > 0 {
                sql.push_str(", ");
            }
            match dialect {
                Dialect::Sqlite => sql.push('?'),
                Dialect::Postgres => {
                    param += 1;
                    // Writing to a String cannot fail.
                    let _ = write!(sql, "${param}");
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// The kinds of row the writer groups into multi-row INSERTs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Rows {
    Decisions,
    /// An instance-tick's bare holds, one row (`hold_ticks`).
    HoldTicks,
    Stops,
}

impl Rows {
    fn head(self) -> &'static str {
        match self {
            Self::Decisions => {
                "INSERT INTO decisions \
                 (at, instance, symbol, action, side, qty, signal, decided_on, reason, detail) \
                 VALUES "
            }
            Self::HoldTicks => "INSERT INTO hold_ticks (at, instance, holds) VALUES ",
            Self::Stops => {
                "INSERT INTO actor_stops (at, child, incarnation, reason, abnormal) VALUES "
            }
        }
    }

    fn cells(self) -> usize {
        match self {
            Self::Decisions => DECISION_CELLS,
            Self::HoldTicks => HOLD_TICK_CELLS,
            Self::Stops => STOP_CELLS,
        }
    }
}

/// The text of a multi-row INSERT of `rows` rows of `kind`. The writer's statements come in
/// ten sizes a kind (full ones and powers of two, `writer::shaped`), so each of those is built
/// once and kept for the life of the process: building the text of up to 500 rows for every
/// statement was 2 % of herd's CPU at 1,000 instances. Other sizes (an entry written on its
/// own) are built each time, so what is kept stays bounded. Shared, not the writer's own,
/// because the writer is not the only caller; the lock is taken once a statement.
pub(super) fn insert_sql(kind: Rows, rows: usize, dialect: Dialect) -> Arc<str> {
    type Kept = HashMap<(Rows, usize, Dialect), Arc<str>>;
    static KEPT: LazyLock<Mutex<Kept>> = LazyLock::new(Mutex::default);
    let build = || {
        Arc::from(format!(
            "{}{}",
            kind.head(),
            values_list(rows, kind.cells(), dialect)
        ))
    };
    if !(rows.is_power_of_two() || rows == ROWS_PER_INSERT) {
        return build();
    }
    let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(kept.entry((kind, rows, dialect)).or_insert_with(build))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_values_list_numbers_parameters_across_rows_or_leaves_them_anonymous() {
        assert_eq!(
            values_list(2, 3, Dialect::Postgres),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(values_list(2, 2, Dialect::Sqlite), "(?, ?), (?, ?)");
        assert_eq!(values_list(1, 1, Dialect::Sqlite), "(?)");
    }

    #[test]
    fn a_kept_statement_is_the_one_built_for_its_kind_size_and_dialect() {
        for (kind, rows, dialect) in [
            (Rows::HoldTicks, 4, Dialect::Sqlite),
            (Rows::Decisions, 4, Dialect::Sqlite),
            (Rows::HoldTicks, 4, Dialect::Postgres),
            (Rows::Stops, ROWS_PER_INSERT, Dialect::Postgres),
            (Rows::HoldTicks, 3, Dialect::Sqlite),
        ] {
            let built = format!(
                "{}{}",
                kind.head(),
                values_list(rows, kind.cells(), dialect)
            );
            // Twice: built, then (for the kept sizes) the kept text.
            assert_eq!(&*insert_sql(kind, rows, dialect), built);
            assert_eq!(&*insert_sql(kind, rows, dialect), built);
        }
        assert!(Arc::ptr_eq(
            &insert_sql(Rows::HoldTicks, 8, Dialect::Sqlite),
            &insert_sql(Rows::HoldTicks, 8, Dialect::Sqlite)
        ));
        assert!(!Arc::ptr_eq(
            &insert_sql(Rows::HoldTicks, 3, Dialect::Sqlite),
            &insert_sql(Rows::HoldTicks, 3, Dialect::Sqlite)
        ));
    }
}
