//! `[journal]`: where the journal lives, how long it keeps records, and how its writer behaves
//! when it falls behind.
//!
//! Invariant: a [`JournalSettings`] that passed [`JournalSettings::check`] names a location herd
//! knows how to open; opening may still fail (the file is corrupt, the server is down), and that
//! is reported at start with the location.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::{HumanDuration, InvalidSetting, Secret};

/// The journal file's name under `data.dir` when `url` is empty.
pub const DEFAULT_FILE: &str = "journal.sqlite";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSettings {
    /// Empty: SQLite in `<data.dir>/journal.sqlite`. Otherwise `sqlite:PATH` or
    /// `postgres://user:password@host:port/database` (a secret: it may hold a password).
    #[serde(default)]
    pub url: Secret,
    /// Records older than this are deleted (decisions, final orders, fills, admin actions,
    /// actor stops); positions and orders still working are kept whatever their age.
    pub retention: HumanDuration,
    /// Decisions that may wait for the writer; past it a tick's decisions are dropped (all of
    /// them, so none is half recorded) and counted.
    /// Order records are never dropped: an order waits until its intent is durable.
    pub queue: usize,
    /// Longest wait for an order's intent to become durable; past it the order is refused.
    pub commit_timeout: HumanDuration,
}

/// Where a journal lives, resolved from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    /// The URL (with its password) and a description for messages (without it).
    Postgres {
        url: String,
        shown: String,
    },
}

impl Location {
    /// What error messages and logs call it.
    pub fn shown(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres { shown, .. } => shown.clone(),
        }
    }
}

impl JournalSettings {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        self.location(Path::new("data"))?;
        if self.queue == 0 {
            return Err(InvalidSetting::new(
                "journal.queue",
                0,
                "must be at least 1 (decisions that may wait for the writer)",
            ));
        }
        if self.retention.get() < std::time::Duration::from_secs(86_400) {
            return Err(InvalidSetting::new(
                "journal.retention",
                self.retention,
                "must be at least 1 day (a day's orders settle and reconcile from it)",
            ));
        }
        if self.commit_timeout.get().is_zero() {
            return Err(InvalidSetting::new(
                "journal.commit_timeout",
                self.commit_timeout,
                "must be more than 0",
            ));
        }
        Ok(())
    }

    /// Where the journal lives; `data_dir` holds the default SQLite file.
    pub fn location(&self, data_dir: &Path) -> Result<Location, InvalidSetting> {
        let url = self.url.expose().trim();
        if url.is_empty() {
            return Ok(Location::Sqlite(data_dir.join(DEFAULT_FILE)));
        }
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(InvalidSetting::new(
                    "journal.url",
                    url,
                    "sqlite: must be followed by a file path, e.g. sqlite:/var/lib/herd/journal.sqlite",
                ));
            }
            return Ok(Location::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Location::Postgres {
                url: url.to_owned(),
                shown: without_password(url),
            });
        }
        Err(InvalidSetting::new(
            "journal.url",
            without_password(url),
            "empty (SQLite under data.dir), sqlite:PATH or postgres://user@host:port/database",
        ))
    }
}

/// The URL with any password replaced, for messages.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(name, _)| name);
            format!("{scheme}://{user}:[redacted]@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(url: &str) -> JournalSettings {
        JournalSettings {
            url: Secret::new(url),
            retention: HumanDuration(std::time::Duration::from_secs(86_400 * 365)),
            queue: 10,
            commit_timeout: HumanDuration(std::time::Duration::from_secs(5)),
        }
    }

    #[test]
    fn the_default_is_a_file_under_the_data_directory() {
        assert_eq!(
            with_url("").location(Path::new("/data")).unwrap(),
            Location::Sqlite(PathBuf::from("/data/journal.sqlite"))
        );
        assert_eq!(
            with_url("sqlite:///var/j.db")
                .location(Path::new("d"))
                .unwrap(),
            Location::Sqlite(PathBuf::from("/var/j.db"))
        );
    }

    #[test]
    fn a_password_never_reaches_a_message() {
        let loc = with_url("postgres://herd:hunter2@db:5432/herd")
            .location(Path::new("d"))
            .unwrap();
        assert_eq!(loc.shown(), "postgres://herd:[redacted]@db:5432/herd");
        let err = with_url("mysql://u:hunter2@h/d").check().unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("journal.url"), "{err}");
    }
}
