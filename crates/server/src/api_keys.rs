//! `server api-key create | list | revoke`: the command line of the API
//! keys. It reads the server's configuration for the database (`.env`,
//! `DATABASE_URL` or `DB_*`) and works on the keys every instance of the
//! service loads; running instances see a change within
//! `API_KEY_REFRESH_MS`. Exit status: 0 done, 2 invalid configuration or
//! arguments, 1 any other failure (a revoke of an unknown prefix too).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use domain::{
    ApiKey, ApiKeyError, ApiKeyStore, KeyName, KeyPrefix, NewApiKey, RepoError, Revocation, Scope,
    Scopes,
};
use storage::Storage;

use crate::Settings;

#[derive(Debug, Clone, Args)]
pub struct ApiKeyArgs {
    #[command(subcommand)]
    pub command: ApiKeyCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ApiKeyCommand {
    /// Make a key and print it on stdout, once: only its hash is kept.
    Create {
        /// orders:read, orders:write or admin; repeat for several.
        #[arg(long = "scope", value_name = "SCOPE", required = true, value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// A label to tell keys apart in the list (up to 80 characters).
        #[arg(long)]
        name: Option<String>,
    },
    /// Every key: prefix, scopes, name, created, revoked. Never a secret or a hash.
    List,
    /// Revoke the key with this prefix (the 8 characters after `ok_`).
    Revoke { prefix: String },
}

fn parse_scope(raw: &str) -> Result<Scope, String> {
    raw.parse().map_err(|error: ApiKeyError| error.to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyCommandError {
    #[error("{0}")]
    Invalid(#[from] ApiKeyError),
    #[error("{0}")]
    Store(#[source] RepoError),
    #[error("the database: {0}")]
    Connect(#[source] storage::StorageError),
    #[error("no key has the prefix {0}")]
    UnknownPrefix(KeyPrefix),
    #[error("could not find a free prefix for a new key; try again")]
    NoFreePrefix,
}

/// Makes a key with these scopes and stores it; the returned value holds
/// the whole key, to show once. A prefix already taken is drawn again.
pub async fn create_key<S: ApiKeyStore>(
    store: &S,
    scopes: Scopes,
    name: Option<KeyName>,
) -> Result<NewApiKey, ApiKeyCommandError> {
    for _ in 0..3 {
        let key = NewApiKey::generate(scopes, name.clone())?;
        if store
            .create_api_key(&key)
            .await
            .map_err(ApiKeyCommandError::Store)?
        {
            return Ok(key);
        }
    }
    Err(ApiKeyCommandError::NoFreePrefix)
}

/// Runs the command; `main` calls it.
pub fn run(args: ApiKeyArgs) -> ExitCode {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    // Arguments are parsed before anything is connected to.
    let parsed = match parse(&args.command) {
        Ok(parsed) => parsed,
        Err(error) => {
            eprintln!("api-key: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("api-key: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command(parsed, &settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("api-key: {}", error_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// A command with its arguments parsed into domain types.
enum Parsed {
    Create {
        scopes: Scopes,
        name: Option<KeyName>,
    },
    List,
    Revoke(KeyPrefix),
}

fn parse(command: &ApiKeyCommand) -> Result<Parsed, ApiKeyError> {
    Ok(match command {
        ApiKeyCommand::Create { scopes, name } => Parsed::Create {
            scopes: Scopes::new(scopes.iter().copied())?,
            name: name.as_deref().map(KeyName::parse).transpose()?,
        },
        ApiKeyCommand::List => Parsed::List,
        ApiKeyCommand::Revoke { prefix } => {
            // A whole key pasted by mistake is cut to its prefix, and
            // the secret part never echoed.
            let prefix = prefix.trim();
            let prefix = prefix
                .strip_prefix("ok_")
                .and_then(|rest| rest.split('_').next())
                .unwrap_or(prefix);
            Parsed::Revoke(KeyPrefix::parse(prefix).map_err(|_| {
                ApiKeyError::BadPrefix(prefix.chars().take(domain::api_key::PREFIX_LEN).collect())
            })?)
        }
    })
}

async fn command(parsed: Parsed, settings: &Settings) -> Result<(), ApiKeyCommandError> {
    let storage = Storage::connect(&settings.database)
        .await
        .map_err(ApiKeyCommandError::Connect)?;
    match parsed {
        Parsed::Create { scopes, name } => {
            let key = create_key(&storage, scopes, name).await?;
            // The key alone on stdout, so that a script can take it; the
            // rest on stderr.
            println!("{}", key.reveal());
            eprintln!(
                "Created API key {} with scopes {}. It is shown this once: only its hash is kept. \
                 Send it as \"Authorization: Bearer <key>\"; running instances accept it within \
                 API_KEY_REFRESH_MS.",
                key.key.prefix, key.key.scopes
            );
        }
        Parsed::List => {
            let keys = storage
                .list_api_keys()
                .await
                .map_err(ApiKeyCommandError::Store)?;
            print!("{}", table(&keys));
        }
        Parsed::Revoke(prefix) => {
            match storage
                .revoke_api_key(&prefix)
                .await
                .map_err(ApiKeyCommandError::Store)?
            {
                Revocation::Revoked => println!(
                    "Revoked API key {prefix}; running instances refuse it within API_KEY_REFRESH_MS."
                ),
                Revocation::AlreadyRevoked(at) => {
                    println!("API key {prefix} was revoked already, at {at}.")
                }
                Revocation::NotFound => return Err(ApiKeyCommandError::UnknownPrefix(prefix)),
            }
        }
    }
    Ok(())
}

/// The keys as a table, one line each, columns aligned.
fn table(keys: &[ApiKey]) -> String {
    let rows: Vec<[String; 5]> = keys
        .iter()
        .map(|key| {
            [
                key.prefix.to_string(),
                key.scopes.to_string().replace(' ', ","),
                key.name
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), ToString::to_string),
                key.created_at.to_string(),
                key.revoked_at
                    .map_or_else(|| "-".to_owned(), |at| at.to_string()),
            ]
        })
        .collect();
    let header = ["PREFIX", "SCOPES", "NAME", "CREATED", "REVOKED"].map(str::to_owned);
    let mut widths = header.clone().map(|column| column.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str("(no API keys)\n");
    }
    out
}

fn error_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pasted_key_is_cut_to_its_prefix() {
        let key = NewApiKey::generate(Scopes::new([Scope::Admin]).unwrap(), None).unwrap();
        let parsed = parse(&ApiKeyCommand::Revoke {
            prefix: key.reveal().to_owned(),
        })
        .unwrap();
        assert!(matches!(parsed, Parsed::Revoke(prefix) if prefix == key.key.prefix));
        match parse(&ApiKeyCommand::Revoke {
            prefix: "not a prefix at all".to_owned(),
        }) {
            Err(error) => assert!(!error.to_string().contains("at all"), "{error}"),
            Ok(_) => panic!("accepted a bad prefix"),
        }
        assert!(matches!(
            parse(&ApiKeyCommand::Create {
                scopes: vec![Scope::OrdersRead],
                name: Some(" ".to_owned()),
            }),
            Err(ApiKeyError::BadName)
        ));
    }

    #[test]
    fn the_table_shows_no_secret_and_aligns() {
        let key = NewApiKey::generate(
            Scopes::new([Scope::OrdersRead, Scope::OrdersWrite]).unwrap(),
            Some(KeyName::parse("front end").unwrap()),
        )
        .unwrap();
        let text = table(std::slice::from_ref(&key.key));
        assert!(text.starts_with("PREFIX"), "{text}");
        assert!(text.contains(key.key.prefix.as_str()));
        assert!(text.contains("orders:read,orders:write"));
        assert!(text.contains("front end"));
        assert!(!text.contains(&key.reveal()[12..]), "{text}");
        assert_eq!(
            table(&[]),
            "PREFIX  SCOPES  NAME  CREATED  REVOKED\n(no API keys)\n"
        );
    }
}
