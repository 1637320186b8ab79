//! `[data]`: where herd keeps what must outlive the process (trained models today; the journal
//! is to follow).
//!
//! Invariant: the directory is created on first use, not at load time: `check-config` never
//! writes anything.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::InvalidSetting;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    /// Relative paths are from the working directory. In a container, a volume.
    pub dir: PathBuf,
}

impl DataSettings {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        if self.dir.as_os_str().is_empty() {
            return Err(InvalidSetting::new(
                "data.dir",
                "\"\"",
                "must name a directory (relative paths are from the working directory)",
            ));
        }
        Ok(())
    }
}
