//! The API keys table through the domain's `ApiKeyStore`, on each backend.

use domain::{
    ApiKeyStore, KeyName, KeyPrefix, KeySet, NewApiKey, PresentedKey, Revocation, Scope, Scopes,
};

use crate::support::TestDb;

fn new_key(scopes: &[Scope], name: Option<&str>) -> NewApiKey {
    NewApiKey::generate(
        Scopes::new(scopes.iter().copied()).unwrap(),
        name.map(|name| KeyName::parse(name).unwrap()),
    )
    .unwrap()
}

pub async fn api_keys_are_created_listed_and_revoked(db: &TestDb) {
    let store = &db.storage;
    assert!(store.list_api_keys().await.unwrap().is_empty());
    let reader = new_key(&[Scope::OrdersRead], Some("front end"));
    assert!(store.create_api_key(&reader).await.unwrap());
    // A later millisecond: the list is oldest first, and keys made within
    // one millisecond come in prefix order.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let admin = new_key(&[Scope::Admin, Scope::OrdersWrite], None);
    assert!(store.create_api_key(&admin).await.unwrap());

    let listed = store.list_api_keys().await.unwrap();
    assert_eq!(listed, vec![reader.key.clone(), admin.key.clone()]);

    // What a process loads checks the whole key, and only it.
    let active = KeySet::new(store.active_api_keys().await.unwrap());
    assert_eq!(active.len(), 2);
    let presented = PresentedKey::parse(admin.reveal()).unwrap();
    assert_eq!(active.check(&presented), Some(admin.key.scopes));

    assert_eq!(
        store.revoke_api_key(&admin.key.prefix).await.unwrap(),
        Revocation::Revoked
    );
    let again = store.revoke_api_key(&admin.key.prefix).await.unwrap();
    let Revocation::AlreadyRevoked(at) = again else {
        panic!("a second revoke: {again:?}");
    };
    assert!(at >= admin.key.created_at);
    assert_eq!(
        store
            .revoke_api_key(&KeyPrefix::parse("00000000").unwrap())
            .await
            .unwrap(),
        Revocation::NotFound
    );

    let active = KeySet::new(store.active_api_keys().await.unwrap());
    assert_eq!(active.len(), 1);
    assert_eq!(active.check(&presented), None, "revoked");
    let listed = store.list_api_keys().await.unwrap();
    assert_eq!(listed.len(), 2, "a revoked key stays listed");
    assert_eq!(listed[1].revoked_at, Some(at));
    assert_eq!(listed[0].revoked_at, None);
}

pub async fn a_taken_prefix_is_refused_and_changes_nothing(db: &TestDb) {
    let store = &db.storage;
    let first = new_key(&[Scope::OrdersRead], None);
    assert!(store.create_api_key(&first).await.unwrap());
    let mut clash = new_key(&[Scope::Admin], None);
    clash.key.prefix = first.key.prefix.clone();
    assert!(!store.create_api_key(&clash).await.unwrap());
    assert_eq!(
        store.list_api_keys().await.unwrap(),
        vec![first.key.clone()]
    );
    let active = KeySet::new(store.active_api_keys().await.unwrap());
    assert_eq!(
        active.check(&PresentedKey::parse(first.reveal()).unwrap()),
        Some(first.key.scopes)
    );
}

pub async fn another_instance_sees_keys_made_and_revoked(db: &TestDb) {
    let other = db
        .another_instance(storage::FullListConfig::default())
        .await;
    let key = new_key(&[Scope::OrdersWrite], None);
    assert!(db.storage.create_api_key(&key).await.unwrap());
    let presented = PresentedKey::parse(key.reveal()).unwrap();
    let seen = KeySet::new(other.active_api_keys().await.unwrap());
    assert_eq!(seen.check(&presented), Some(key.key.scopes));
    assert_eq!(
        other.revoke_api_key(&key.key.prefix).await.unwrap(),
        Revocation::Revoked
    );
    let seen = KeySet::new(db.storage.active_api_keys().await.unwrap());
    assert_eq!(seen.check(&presented), None);
}

/// A row nobody could have written through the store (an unknown scope; a
/// hash of the wrong length, which only SQLite can hold) is an error, not
/// a key that grants something else, matches nothing, or a panic.
pub async fn a_broken_row_is_an_error(db: &TestDb) {
    let hash = "00".repeat(32);
    db.execute(&format!(
        "INSERT INTO api_keys (prefix, hash, scopes, name, created_at) \
         VALUES ('AAAAAAAA', X'{hash}', 'orders:delete', NULL, 1)"
    ))
    .await;
    assert!(db.storage.active_api_keys().await.is_err());
    assert!(db.storage.list_api_keys().await.is_err());
    db.execute("UPDATE api_keys SET scopes = 'orders:read'")
        .await;
    assert_eq!(db.storage.active_api_keys().await.unwrap().len(), 1);
    if !db.is_mysql() {
        db.execute("UPDATE api_keys SET hash = X'00'").await;
        assert!(db.storage.active_api_keys().await.is_err());
    }
}
