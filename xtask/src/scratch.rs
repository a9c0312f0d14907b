//! Throwaway places on disk for the bench and the tests.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::XtaskError;

/// Unique within this machine: the process id and the time in nanoseconds.
pub fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{}_{nanos}", std::process::id())
}

/// A directory under the system's temp directory, removed when dropped,
/// error or not.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Result<Self, XtaskError> {
        let path = std::env::temp_dir().join(format!("{label}-{}", unique_suffix()));
        std::fs::create_dir_all(&path)
            .map_err(|e| XtaskError::io(format!("creating {}", path.display()), e))?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `DATABASE_URL` for a SQLite file named `name` in this directory.
    pub fn sqlite_url(&self, name: &str) -> String {
        format!("sqlite:///{}", self.0.join(name).display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
