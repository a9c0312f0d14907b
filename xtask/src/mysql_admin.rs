//! Throwaway MariaDB databases for the bench and the tests: created fresh
//! (dropped first if a crashed run left one) and dropped when done, also
//! when the run fails, through a guard.

use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

use crate::error::XtaskError;

/// The server the bench and the tests use unless told otherwise.
pub const DEFAULT_SERVER_URL: &str = "mysql://root@127.0.0.1:3306";

pub struct ScratchDatabase {
    server_url: String,
    name: String,
    dropped: bool,
}

fn mysql_error(context: &str, error: impl std::fmt::Display) -> XtaskError {
    XtaskError::Mysql(format!("{context}: {error}"))
}

async fn execute(server_url: &str, statement: &str) -> Result<(), XtaskError> {
    let mut connection = AsyncMysqlConnection::establish(server_url)
        .await
        .map_err(|e| mysql_error(&format!("connecting to {server_url}"), e))?;
    diesel::sql_query(statement)
        .execute(&mut connection)
        .await
        .map_err(|e| mysql_error(statement, e))?;
    Ok(())
}

impl ScratchDatabase {
    /// `server_url` is `mysql://user[:pass]@host:port` without a database;
    /// `name` letters, digits and `_` only, as it is spliced into SQL.
    pub async fn create(server_url: &str, name: &str) -> Result<Self, XtaskError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(XtaskError::Mysql(format!(
                "not a safe database name: {name:?}"
            )));
        }
        let server_url = server_url.trim_end_matches('/').to_owned();
        execute(&server_url, &format!("DROP DATABASE IF EXISTS `{name}`")).await?;
        execute(
            &server_url,
            &format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"),
        )
        .await?;
        Ok(Self {
            server_url,
            name: name.to_owned(),
            dropped: false,
        })
    }

    /// The database's URL, in the form `DATABASE_URL` takes.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server_url, self.name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn drop_database(mut self) -> Result<(), XtaskError> {
        self.dropped = true;
        execute(
            &self.server_url,
            &format!("DROP DATABASE IF EXISTS `{}`", self.name),
        )
        .await
    }
}

impl Drop for ScratchDatabase {
    /// A run that failed before `drop_database` still cleans up: on a
    /// thread of its own, since a runtime may not block inside another.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (server_url, name) = (self.server_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime
                .block_on(execute(
                    &server_url,
                    &format!("DROP DATABASE IF EXISTS `{name}`"),
                ))
                .ok()
        })
        .join();
    }
}

/// Whether a MariaDB answers at `server_url`.
pub async fn reachable(server_url: &str) -> bool {
    AsyncMysqlConnection::establish(server_url).await.is_ok()
}
