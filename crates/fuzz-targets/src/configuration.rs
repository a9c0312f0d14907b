//! `DATABASE_URL` and `REDIS_URL` as the server reads them at start. The
//! input is the two values split at the first newline (a byte neither can
//! hold in an environment file). Beyond "no panic": a password given in a
//! URL never shows in what the service prints about it.

use std::collections::HashMap;

use server::Settings;
use storage::DatabaseUrl;

/// Put where a password goes, so that any echo of it is found.
const PASSWORD: &str = "Fz9-not-to-be-printed";

fn settings(database_url: &str, redis_url: &str) -> Result<Settings, server::SettingsError> {
    let vars = HashMap::from([
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        ("REDIS_URL".to_owned(), redis_url.to_owned()),
    ]);
    Settings::from_vars(vars)
}

fn assert_hidden(printed: &str) {
    assert!(
        !printed.contains(PASSWORD),
        "the password is printed: {printed}"
    );
}

pub fn configuration_urls(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (database, redis) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(url) = DatabaseUrl::parse(database) {
        // What is logged of it parses back to the same kind of database.
        let shown = url.to_string();
        assert_eq!(
            matches!(url, DatabaseUrl::Sqlite(_)),
            shown.starts_with("sqlite:")
        );
    }
    // The whole configuration path: errors name their setting.
    if let Err(error) = settings(database, redis) {
        let message = error.to_string();
        assert!(
            message.starts_with("DATABASE_URL") || message.starts_with("REDIS_URL"),
            "an error names its setting: {message}"
        );
    }

    // The same text behind a password: it is never echoed, whether the URL
    // is accepted (and logged) or refused (and the error printed).
    let database = format!("mysql://orders:{PASSWORD}@{database}");
    match DatabaseUrl::parse(&database) {
        Ok(url) => assert_hidden(&format!("{url} {url:?}")),
        Err(error) => assert_hidden(&error.to_string()),
    }
    let redis = format!("redis://orders:{PASSWORD}@{redis}");
    if let Err(error) = settings(&database, &redis) {
        assert_hidden(&error.to_string());
    }
}
