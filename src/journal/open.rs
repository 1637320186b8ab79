//! Opening a journal: creating the SQLite file (WAL, full sync) or connecting to PostgreSQL,
//! applying the migrations shipped in this binary, and proving the journal can be written.
//!
//! Invariants:
//! - A journal that exists but cannot be used — not a database, written by a newer herd,
//!   changed by hand, read-only — is an error naming the location and what is wrong. herd
//!   never starts a fresh journal over existing data.
//! - Migrations only ever move forward; each is applied once, in its own transaction.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Executor, SqlStr};

use super::settings::Location;

/// The schema versions this binary knows, oldest first. A new version is a new file and a new
/// entry here; a shipped file never changes (its checksum is recorded in the journal).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "journal", include_str!("migrations/0001_journal.sql")),
    (
        2,
        "fill realized pnl",
        include_str!("migrations/0002_fill_realized_pnl.sql"),
    ),
    (
        3,
        "order lease epoch",
        include_str!("migrations/0003_order_lease_epoch.sql"),
    ),
    (
        4,
        "hold ticks",
        include_str!("migrations/0004_hold_ticks.sql"),
    ),
];

/// Connections for the writer, the readers (`/orders`, export) and retention.
const MAX_CONNECTIONS: u32 = 4;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the journal cannot be used. Each names the journal's location; herd exits 2 on it.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {location}: cannot create its directory: {detail}")]
    Directory { location: String, detail: String },
    #[error(
        "journal {location} is not a database herd can read ({detail}); move it aside to start \
         a new journal, or restore it from a backup"
    )]
    Corrupt { location: String, detail: String },
    #[error("journal {location} cannot be written: {detail}")]
    Unwritable { location: String, detail: String },
    #[error(
        "journal {location} has schema version {found}, newer than this herd knows (up to \
         {known}): run the herd version that wrote it, or a newer one"
    )]
    NewerSchema {
        location: String,
        found: i64,
        known: i64,
    },
    #[error(
        "journal {location}: schema version {version} differs from the one this herd ships \
         (changed by hand?); restore the journal from a backup"
    )]
    ModifiedSchema { location: String, version: i64 },
    #[error("journal {location} cannot be reached: {detail}")]
    Unreachable { location: String, detail: String },
    #[error("journal {location}: {detail}")]
    Database { location: String, detail: String },
}

impl JournalError {
    /// Classifies a database error met while opening `location`.
    pub(super) fn from_sqlx(location: &Location, e: &sqlx::Error) -> Self {
        let location = location.shown();
        let detail = e.to_string();
        if let sqlx::Error::Database(db) = e {
            // SQLite's primary result code is the low byte of its extended code.
            let primary = db
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| c & 0xff);
            match primary {
                // SQLITE_CORRUPT, SQLITE_NOTADB
                Some(11 | 26) => return Self::Corrupt { location, detail },
                // SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_IOERR, SQLITE_FULL
                Some(3 | 8 | 14 | 10 | 13) => return Self::Unwritable { location, detail },
                _ => {}
            }
        }
        match e {
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => {
                Self::Unreachable { location, detail }
            }
            _ => Self::Database { location, detail },
        }
    }
}

/// The newest schema version this binary knows.
pub fn known_version() -> i64 {
    MIGRATIONS.last().map_or(0, |(v, _, _)| *v)
}

/// Opens (creating when absent) the journal at `location`, migrated to this binary's schema.
pub async fn open_pool(location: &Location) -> Result<AnyPool, JournalError> {
    sqlx::any::install_default_drivers();
    let url = match location {
        Location::Sqlite(path) => sqlite_url(location, path)?,
        Location::Postgres { url, .. } => url.clone(),
    };
    let options =
        AnyConnectOptions::from_str(&url).map_err(|e| JournalError::from_sqlx(location, &e))?;
    let pool = AnyPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(CONNECT_TIMEOUT)
        .after_connect(|conn, _| {
            Box::pin(async move {
                if conn.backend_name() == "SQLite" {
                    // FULL: a commit survives a power loss, not only a crash of herd. The
                    // writer groups entries into one transaction, so the fsync is shared.
                    conn.execute(sqlx::raw_sql(SqlStr::from_static(
                        // busy_timeout: a reader or retention waits for the write lock instead of failing.
                        "PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
                    )))
                    .await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(|e| JournalError::from_sqlx(location, &e))?;
    if matches!(location, Location::Sqlite(_)) {
        // Also the first read of the file's header: a file that is no database fails here.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await
            .map_err(|e| JournalError::from_sqlx(location, &e))?;
    }
    migrate(&pool, location).await?;
    Ok(pool)
}

fn sqlite_url(location: &Location, path: &Path) -> Result<String, JournalError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| JournalError::Directory {
            location: location.shown(),
            detail: format!("{}: {e}", dir.display()),
        })?;
    }
    if path.is_dir() {
        return Err(JournalError::Corrupt {
            location: location.shown(),
            detail: "it is a directory".into(),
        });
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    Ok(options.to_url_lossy().to_string())
}

async fn migrate(pool: &AnyPool, location: &Location) -> Result<(), JournalError> {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                (*description).into(),
                MigrationType::Simple,
                SqlStr::from_static(sql),
                false,
            )
        })
        .collect();
    let migrator = Migrator::with_migrations(migrations);
    migrator.run(pool).await.map_err(|e| match e {
        MigrateError::VersionMissing(found) => JournalError::NewerSchema {
            location: location.shown(),
            found,
            known: known_version(),
        },
        MigrateError::VersionMismatch(version) => JournalError::ModifiedSchema {
            location: location.shown(),
            version,
        },
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => {
            JournalError::from_sqlx(location, &e)
        }
        other => JournalError::Database {
            location: location.shown(),
            detail: other.to_string(),
        },
    })
}

/// One write at open: a read-only file or a full disk is found now, not at the first order.
pub async fn prove_writable(pool: &AnyPool, location: &Location) -> Result<(), JournalError> {
    let now = chrono::Utc::now();
    sqlx::query(
        "INSERT INTO herd_state (key, value, updated_at) VALUES ('opened_at', $1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(now.to_rfc3339())
    .bind(now.timestamp_millis())
    .execute(pool)
    .await
    .map_err(|e| match JournalError::from_sqlx(location, &e) {
        JournalError::Database { location, detail } => {
            JournalError::Unwritable { location, detail }
        }
        other => other,
    })?;
    Ok(())
}
