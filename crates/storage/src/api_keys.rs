//! The API keys table (`migrations/*/2026-12-03-000001_api_keys`) behind
//! the domain's [`ApiKeyStore`]. Each operation is one statement, run as
//! its own task like the orders' operations; writes go through the write
//! transaction so that on SQLite they queue with the other writers.

use std::future::Future;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::{
    ActiveKey, ApiKey, ApiKeyStore, KeyHash, KeyName, KeyPrefix, NewApiKey, RepoError, Revocation,
    Scopes, Timestamp,
};

use crate::schema::api_keys;
use crate::transaction::{with_connection, write_transaction};
use crate::{Storage, StorageError};

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
struct ApiKeyRow {
    prefix: String,
    hash: Vec<u8>,
    scopes: String,
    name: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = api_keys)]
struct ApiKeyInsert<'a> {
    prefix: &'a str,
    hash: &'a [u8],
    scopes: String,
    name: Option<&'a str>,
    created_at: i64,
    revoked_at: Option<i64>,
}

fn corrupt(prefix: &str, error: domain::ApiKeyError) -> StorageError {
    StorageError::CorruptRow(format!("API key {prefix}: {error}"))
}

impl ApiKeyRow {
    fn into_key(self) -> Result<ApiKey, StorageError> {
        let name = self
            .name
            .as_deref()
            .map(KeyName::parse)
            .transpose()
            .map_err(|error| corrupt(&self.prefix, error))?;
        Ok(ApiKey {
            scopes: Scopes::parse(&self.scopes).map_err(|error| corrupt(&self.prefix, error))?,
            prefix: KeyPrefix::parse(&self.prefix).map_err(|error| corrupt(&self.prefix, error))?,
            name,
            created_at: Timestamp::from_millis(self.created_at),
            revoked_at: self.revoked_at.map(Timestamp::from_millis),
        })
    }

    fn into_active(self) -> Result<ActiveKey, StorageError> {
        let hash = KeyHash::from_bytes(&self.hash).map_err(|error| corrupt(&self.prefix, error))?;
        let key = self.into_key()?;
        Ok(ActiveKey {
            prefix: key.prefix,
            hash,
            scopes: key.scopes,
        })
    }
}

async fn create(storage: &Storage, new: ApiKeyInsertOwned) -> Result<bool, StorageError> {
    let row = ApiKeyInsert {
        prefix: &new.prefix,
        hash: &new.hash,
        scopes: new.scopes.clone(),
        name: new.name.as_deref(),
        created_at: new.created_at,
        revoked_at: None,
    };
    let inserted = write_transaction!(storage.pools(), |conn| {
        diesel::insert_into(api_keys::table)
            .values(&row)
            .execute(conn)
            .await?;
        Ok(())
    });
    match inserted {
        Ok(()) => Ok(true),
        Err(error) if error.is_unique_violation() => Ok(false),
        Err(error) => Err(error),
    }
}

/// What a spawned create owns: the key's record without its secret.
struct ApiKeyInsertOwned {
    prefix: String,
    hash: Vec<u8>,
    scopes: String,
    name: Option<String>,
    created_at: i64,
}

async fn list(storage: &Storage) -> Result<Vec<ApiKey>, StorageError> {
    let rows = with_connection!(storage.pools(), |conn| {
        let rows = api_keys::table
            .select(ApiKeyRow::as_select())
            .order((api_keys::created_at.asc(), api_keys::prefix.asc()))
            .load(conn)
            .await?;
        Ok(rows)
    })?;
    rows.into_iter().map(ApiKeyRow::into_key).collect()
}

async fn revoke(storage: &Storage, prefix: String) -> Result<Revocation, StorageError> {
    let now = Timestamp::now().as_millis();
    let found: Option<Option<i64>> = write_transaction!(storage.pools(), |conn| {
        let changed = diesel::update(
            api_keys::table
                .filter(api_keys::prefix.eq(&prefix))
                .filter(api_keys::revoked_at.is_null()),
        )
        .set(api_keys::revoked_at.eq(now))
        .execute(conn)
        .await?;
        if changed == 1 {
            return Ok(Some(None));
        }
        let revoked_at = api_keys::table
            .filter(api_keys::prefix.eq(&prefix))
            .select(api_keys::revoked_at)
            .first::<Option<i64>>(conn)
            .await
            .optional()?;
        Ok(revoked_at.map(|at| Some(at.unwrap_or(now))))
    })?;
    Ok(match found {
        None => Revocation::NotFound,
        Some(None) => Revocation::Revoked,
        Some(Some(at)) => Revocation::AlreadyRevoked(Timestamp::from_millis(at)),
    })
}

async fn active(storage: &Storage) -> Result<Vec<ActiveKey>, StorageError> {
    let rows = with_connection!(storage.pools(), |conn| {
        let rows = api_keys::table
            .filter(api_keys::revoked_at.is_null())
            .select(ApiKeyRow::as_select())
            .load(conn)
            .await?;
        Ok(rows)
    })?;
    rows.into_iter().map(ApiKeyRow::into_active).collect()
}

impl ApiKeyStore for Storage {
    fn create_api_key(
        &self,
        key: &NewApiKey,
    ) -> impl Future<Output = Result<bool, RepoError>> + Send {
        let owned = ApiKeyInsertOwned {
            prefix: key.key.prefix.as_str().to_owned(),
            hash: key.hash.as_bytes().to_vec(),
            scopes: key.key.scopes.to_string(),
            name: key.key.name.as_ref().map(|name| name.as_str().to_owned()),
            created_at: key.key.created_at.as_millis(),
        };
        let storage = self.clone();
        self.spawned(self.budget(), async move { create(&storage, owned).await })
    }

    fn list_api_keys(&self) -> impl Future<Output = Result<Vec<ApiKey>, RepoError>> + Send {
        let storage = self.clone();
        self.spawned(self.budget(), async move { list(&storage).await })
    }

    fn revoke_api_key(
        &self,
        prefix: &KeyPrefix,
    ) -> impl Future<Output = Result<Revocation, RepoError>> + Send {
        let storage = self.clone();
        let prefix = prefix.as_str().to_owned();
        self.spawned(self.budget(), async move { revoke(&storage, prefix).await })
    }

    fn active_api_keys(&self) -> impl Future<Output = Result<Vec<ActiveKey>, RepoError>> + Send {
        let storage = self.clone();
        self.spawned(self.budget(), async move { active(&storage).await })
    }
}
