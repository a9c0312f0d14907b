//! API keys: what a key is, which scopes it grants, how one is made and
//! recognised, and the store that keeps them.
//!
//! A key reads `ok_<prefix>_<secret>`: 8 base62 characters that name it in
//! logs, lists and metrics, then 43 base62 characters (256 bits) from the
//! operating system's random source. It is shown once, when it is made;
//! only the SHA-256 of the whole key is stored, so a copy of the database
//! holds nothing a client could present.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::str::FromStr;

use rand::TryRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{RepoError, Timestamp};

/// What every key starts with: tells a key of this service apart from any
/// other token in a config file or a leaked log.
const MARKER: &str = "ok_";
pub const PREFIX_LEN: usize = 8;
/// 43 base62 characters carry 256 bits (43 × log2 62 ≈ 256.03).
pub const SECRET_LEN: usize = 43;
/// `ok_` + prefix + `_` + secret.
pub const KEY_LEN: usize = MARKER.len() + PREFIX_LEN + 1 + SECRET_LEN;
pub const KEY_NAME_MAX_CHARS: usize = 80;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("unknown scope {0:?}: expected orders:read, orders:write or admin")]
    UnknownScope(String),
    #[error("a key needs at least one scope (orders:read, orders:write, admin)")]
    NoScopes,
    #[error("a key prefix is {PREFIX_LEN} letters and digits, got {0:?}")]
    BadPrefix(String),
    #[error("a key name is 1 to {KEY_NAME_MAX_CHARS} characters without control characters")]
    BadName,
    /// Not a key of this service's form. The token itself is never part of
    /// the message: it may be a secret of something else.
    #[error("not an API key of this service (ok_<8 characters>_<43 characters>)")]
    Malformed,
    /// The stored hash is not 32 bytes: a broken row.
    #[error("a stored key hash is {0} bytes, not 32")]
    BadHash(usize),
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// What a key may do. Each route needs one (see the http crate's `auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    OrdersRead,
    OrdersWrite,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::OrdersRead, Scope::OrdersWrite, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::OrdersRead => "orders:read",
            Scope::OrdersWrite => "orders:write",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::OrdersRead => 1,
            Scope::OrdersWrite => 2,
            Scope::Admin => 4,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = ApiKeyError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == raw.trim())
            .ok_or_else(|| ApiKeyError::UnknownScope(raw.to_owned()))
    }
}

/// A non-empty set of scopes. Scopes are independent: `orders:write` does
/// not imply `orders:read`, nor `admin` either of them, so a key grants
/// exactly what its list says.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

impl Scopes {
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Result<Scopes, ApiKeyError> {
        let bits = scopes.into_iter().fold(0, |bits, scope| bits | scope.bit());
        if bits == 0 {
            return Err(ApiKeyError::NoScopes);
        }
        Ok(Scopes(bits))
    }

    /// The stored form: scope names separated by spaces (as OAuth writes
    /// them), in a fixed order.
    pub fn parse(stored: &str) -> Result<Scopes, ApiKeyError> {
        Scopes::new(
            stored
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<Vec<Scope>, _>>()?,
        )
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |scope| self.contains(*scope))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

fn is_base62(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The visible part of a key: what names it in logs, lists and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    pub fn parse(raw: &str) -> Result<KeyPrefix, ApiKeyError> {
        let raw = raw.trim();
        if raw.len() == PREFIX_LEN && is_base62(raw) {
            Ok(KeyPrefix(raw.to_owned()))
        } else {
            Err(ApiKeyError::BadPrefix(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person's label for a key ("front end", "nightly export").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(raw: &str) -> Result<KeyName, ApiKeyError> {
        let name = raw.trim();
        let chars = name.chars().count();
        if (1..=KEY_NAME_MAX_CHARS).contains(&chars) && !name.chars().any(char::is_control) {
            Ok(KeyName(name.to_owned()))
        } else {
            Err(ApiKeyError::BadName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SHA-256 of a whole key, as stored. Never printed: with it one could
/// check guesses offline, and it has no use in a log.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    fn of(key: &str) -> KeyHash {
        KeyHash(Sha256::digest(key.as_bytes()).into())
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<KeyHash, ApiKeyError> {
        <[u8; 32]>::try_from(bytes)
            .map(KeyHash)
            .map_err(|_| ApiKeyError::BadHash(bytes.len()))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant time: how much of a guess matched is not told by when the
    /// answer comes.
    fn matches(&self, other: &KeyHash) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(***)")
    }
}

/// A token a client presented, in the form of a key (`ok_…`). Whether it
/// is a key that exists is for a [`KeySet`] to say.
#[derive(Clone)]
pub struct PresentedKey {
    prefix: KeyPrefix,
    whole: String,
}

impl PresentedKey {
    pub fn parse(token: &str) -> Result<PresentedKey, ApiKeyError> {
        let rest = token.strip_prefix(MARKER).ok_or(ApiKeyError::Malformed)?;
        let (prefix, secret) = rest.split_once('_').ok_or(ApiKeyError::Malformed)?;
        if token.len() != KEY_LEN
            || prefix.len() != PREFIX_LEN
            || secret.len() != SECRET_LEN
            || !is_base62(prefix)
            || !is_base62(secret)
        {
            return Err(ApiKeyError::Malformed);
        }
        Ok(PresentedKey {
            prefix: KeyPrefix(prefix.to_owned()),
            whole: token.to_owned(),
        })
    }

    pub fn prefix(&self) -> &KeyPrefix {
        &self.prefix
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.whole)
    }
}

impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresentedKey({}_***)", self.prefix)
    }
}

/// A key as stored and listed: everything but the secret, which is not
/// kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub prefix: KeyPrefix,
    pub name: Option<KeyName>,
    pub scopes: Scopes,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A key just made: the record to store, its hash, and the whole key,
/// which is shown to the person who made it once and never again.
pub struct NewApiKey {
    pub key: ApiKey,
    pub hash: KeyHash,
    secret: String,
}

impl NewApiKey {
    /// A fresh key from the operating system's random source.
    pub fn generate(scopes: Scopes, name: Option<KeyName>) -> Result<NewApiKey, ApiKeyError> {
        let prefix = random_base62(PREFIX_LEN)?;
        let secret = random_base62(SECRET_LEN)?;
        let whole = format!("{MARKER}{prefix}_{secret}");
        Ok(NewApiKey {
            key: ApiKey {
                prefix: KeyPrefix(prefix),
                name,
                scopes,
                created_at: Timestamp::now(),
                revoked_at: None,
            },
            hash: KeyHash::of(&whole),
            secret: whole,
        })
    }

    /// The whole key, to print once.
    pub fn reveal(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiKey")
            .field("key", &self.key)
            .field("secret", &"***")
            .finish()
    }
}

/// `len` base62 characters, each uniform: bytes of 248 and above are
/// dropped, so that `byte % 62` favours no character (248 = 4 × 62).
fn random_base62(len: usize) -> Result<String, ApiKeyError> {
    let mut out = String::with_capacity(len);
    let mut buffer = [0u8; 64];
    while out.len() < len {
        rand::rngs::OsRng
            .try_fill_bytes(&mut buffer)
            .map_err(|error| ApiKeyError::Random(error.to_string()))?;
        for byte in buffer {
            if out.len() == len {
                break;
            }
            if byte < 248 {
                out.push(char::from(BASE62[usize::from(byte % 62)]));
            }
        }
    }
    Ok(out)
}

/// A key that is not revoked, as a process holds it to check requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveKey {
    pub prefix: KeyPrefix,
    pub hash: KeyHash,
    pub scopes: Scopes,
}

/// The active keys by prefix. Checking a presented key is a hash and a map
/// lookup: no database round trip per request.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<KeyPrefix, (KeyHash, Scopes)>,
}

impl KeySet {
    pub fn new(keys: impl IntoIterator<Item = ActiveKey>) -> KeySet {
        KeySet {
            keys: keys
                .into_iter()
                .map(|key| (key.prefix, (key.hash, key.scopes)))
                .collect(),
        }
    }

    /// The scopes of the key, when it is an active one. The prefix finds
    /// the candidate; the whole key's hash must match it.
    pub fn check(&self, presented: &PresentedKey) -> Option<Scopes> {
        let (hash, scopes) = self.keys.get(presented.prefix())?;
        hash.matches(&presented.hash()).then_some(*scopes)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What `revoke` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    Revoked,
    /// Revoked before, at that time; nothing changed.
    AlreadyRevoked(Timestamp),
    NotFound,
}

/// Where keys are kept. Storage implements it on the database, which every
/// instance of the service shares: a key made or revoked on one is seen by
/// all of them at their next reload.
pub trait ApiKeyStore: Send + Sync + 'static {
    /// Stores a new key. A prefix already taken (one chance in 2^47 per
    /// existing key) is `Ok(false)`: the caller makes another key.
    fn create_api_key(
        &self,
        key: &NewApiKey,
    ) -> impl Future<Output = Result<bool, RepoError>> + Send;

    /// Every key, revoked ones too, oldest first.
    fn list_api_keys(&self) -> impl Future<Output = Result<Vec<ApiKey>, RepoError>> + Send;

    fn revoke_api_key(
        &self,
        prefix: &KeyPrefix,
    ) -> impl Future<Output = Result<Revocation, RepoError>> + Send;

    /// The keys not revoked, with their hashes: what a process checks
    /// requests against.
    fn active_api_keys(&self) -> impl Future<Output = Result<Vec<ActiveKey>, RepoError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(list: &[Scope]) -> Scopes {
        Scopes::new(list.iter().copied()).unwrap()
    }

    #[test]
    fn generated_keys_have_the_documented_form_and_parse_back() {
        let made = NewApiKey::generate(scopes(&[Scope::OrdersRead]), None).unwrap();
        let whole = made.reveal();
        assert_eq!(whole.len(), KEY_LEN);
        assert!(whole.starts_with("ok_"));
        assert_eq!(&whole[3..11], made.key.prefix.as_str());
        assert_eq!(&whole[11..12], "_");
        assert!(is_base62(&whole[12..]));
        let presented = PresentedKey::parse(whole).unwrap();
        assert_eq!(presented.prefix(), &made.key.prefix);
        assert_eq!(presented.hash(), made.hash);
        // The secret is out of every debug form.
        assert!(!format!("{made:?}").contains(&whole[12..]));
        assert!(!format!("{presented:?}").contains(&whole[12..]));
        assert_eq!(format!("{:?}", made.hash), "KeyHash(***)");
    }

    #[test]
    fn keys_are_random() {
        let a = NewApiKey::generate(scopes(&[Scope::Admin]), None).unwrap();
        let b = NewApiKey::generate(scopes(&[Scope::Admin]), None).unwrap();
        assert_ne!(a.reveal(), b.reveal());
        assert_ne!(a.key.prefix, b.key.prefix);
        // Every character of the alphabet turns up, none beyond it.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.extend(random_base62(SECRET_LEN).unwrap().bytes());
        }
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = NewApiKey::generate(scopes(&[Scope::Admin]), None).unwrap();
        let good = good.reveal().to_owned();
        let mut wrong = vec![
            String::new(),
            "ok_".to_owned(),
            "Bearer".to_owned(),
            good.replacen("ok_", "ko_", 1),
            format!("{good}x"),
            good[..good.len() - 1].to_owned(),
            good.replacen('_', "-", 2),
            format!("ok_{}_{}", "a".repeat(7), "b".repeat(44)),
            format!("ok_{}_{}", "a".repeat(8), "é".repeat(21)),
            format!("ok_{}_{}", "a+b/c=de", "b".repeat(43)),
        ];
        wrong.push(good.to_uppercase().replacen("OK_", "ok_", 1) + "_");
        for token in wrong {
            assert_eq!(
                PresentedKey::parse(&token).err(),
                Some(ApiKeyError::Malformed),
                "{token}"
            );
        }
        // The message never repeats the token.
        assert!(!ApiKeyError::Malformed.to_string().contains(&good));
    }

    #[test]
    fn scopes_parse_print_and_contain() {
        let set = Scopes::parse("admin orders:read").unwrap();
        assert!(set.contains(Scope::Admin) && set.contains(Scope::OrdersRead));
        assert!(!set.contains(Scope::OrdersWrite), "write is not implied");
        assert_eq!(set.to_string(), "orders:read admin");
        assert_eq!(Scopes::parse(&set.to_string()).unwrap(), set);
        assert_eq!(Scopes::parse("").err(), Some(ApiKeyError::NoScopes));
        assert!(matches!(
            Scopes::parse("orders:read orders:delete"),
            Err(ApiKeyError::UnknownScope(raw)) if raw == "orders:delete"
        ));
        assert_eq!("orders:write".parse::<Scope>(), Ok(Scope::OrdersWrite));
        assert!("ORDERS:WRITE".parse::<Scope>().is_err());
    }

    #[test]
    fn prefixes_and_names_are_checked() {
        assert!(KeyPrefix::parse("Ab3dEf9h").is_ok());
        for bad in ["Ab3dEf9", "Ab3dEf9hx", "Ab3d_f9h", ""] {
            assert!(KeyPrefix::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            KeyName::parse("  front end ").unwrap().as_str(),
            "front end"
        );
        assert!(KeyName::parse("   ").is_err());
        assert!(KeyName::parse("a\nb").is_err());
        assert!(KeyName::parse(&"x".repeat(81)).is_err());
        assert!(KeyHash::from_bytes(&[0; 31]).is_err());
    }

    #[test]
    fn a_key_set_accepts_only_the_whole_active_key() {
        let read = NewApiKey::generate(scopes(&[Scope::OrdersRead]), None).unwrap();
        let other = NewApiKey::generate(scopes(&[Scope::Admin]), None).unwrap();
        let set = KeySet::new([ActiveKey {
            prefix: read.key.prefix.clone(),
            hash: read.hash.clone(),
            scopes: read.key.scopes,
        }]);
        let presented = PresentedKey::parse(read.reveal()).unwrap();
        assert_eq!(set.check(&presented), Some(read.key.scopes));
        // Right prefix, another secret.
        let forged = format!("ok_{}_{}", read.key.prefix, &other.reveal()[12..]);
        assert_eq!(set.check(&PresentedKey::parse(&forged).unwrap()), None);
        // A real key that is not in the set (revoked, or never made here).
        assert_eq!(
            set.check(&PresentedKey::parse(other.reveal()).unwrap()),
            None
        );
        assert_eq!(KeySet::default().check(&presented), None);
    }
}
