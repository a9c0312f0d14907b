//! The Lua scripts that make each cache step atomic in Redis. A script runs
//! alone on the server, so "read the version, then the payload for it" or
//! "store only if my lease still holds and no purge happened" cannot be
//! interleaved with a writer's invalidation.
//!
//! `LIST_READ` and `LIST_STORE` build the payload key from the version they
//! read inside the script, i.e. they touch a key not passed in `KEYS`: fine
//! on a standalone Redis (what the original used); a Redis Cluster would
//! need all keys in one hash slot.

use deadpool_redis::redis::Script;

/// KEYS[1] version key; ARGV[1] list key head (`{p}orders:list:`), ARGV[2]
/// suffix (`""` or `:{canonical}`), ARGV[3] stamp key head
/// (`{p}orders:list-stamp:`), ARGV[4] the stamp of the body this process
/// already holds for that suffix (`""` if none).
/// Returns `{version, payload or nil, stamp or nil}`: one round trip for a
/// hit, and the version for a miss is read before the database is, which is
/// what keeps a late fill harmless. When the current payload's stamp is the
/// one the caller holds, the payload is not sent again (nil with the stamp).
/// A payload without a stamp is not ours (`LIST_STORE` writes both, with one
/// TTL; the original service, which uses the same list keys, never writes a
/// stamp), so it is a miss, and the fill overwrites it.
const LIST_READ: &str = r"
local version = redis.call('GET', KEYS[1]) or '0'
local stamp = redis.call('GET', ARGV[3] .. version .. ARGV[2])
if not stamp then
  return {version, false, false}
end
if stamp == ARGV[4] then
  return {version, false, stamp}
end
return {version, redis.call('GET', ARGV[1] .. version .. ARGV[2]), stamp}
";

/// KEYS[1] version key; ARGV[1] list key head, ARGV[2] suffix, ARGV[3] the
/// version read before the database, ARGV[4] payload, ARGV[5] TTL in ms,
/// ARGV[6] stamp key head, ARGV[7] a fresh random stamp.
/// Stores only while that version is still current: a fill that lost a race
/// with a write does not even write its (unreachable) key, and a Redis that
/// restarted empty (version back to 0) is not fed pre-restart data. The
/// stamp names this one payload, so a process holding a copy can tell it is
/// still the current one (see `LIST_READ`).
const LIST_STORE: &str = r"
local version = redis.call('GET', KEYS[1]) or '0'
if version ~= ARGV[3] then
  return 0
end
redis.call('SET', ARGV[1] .. version .. ARGV[2], ARGV[4], 'PX', ARGV[5])
redis.call('SET', ARGV[6] .. version .. ARGV[2], ARGV[7], 'PX', ARGV[5])
return 1
";

/// KEYS[1] detail key, KEYS[2] lease key, KEYS[3] epoch key; ARGV[1] a fresh
/// random token, ARGV[2] lease TTL in ms.
/// A hit returns `{1, payload}`. A miss returns `{0, holder, acquired,
/// epoch}`: the lease is taken when nobody holds it (`acquired` = 1 and the
/// holder is our token), otherwise `holder` is the other reader's token.
/// A body is ours only if it ends with `"version":N}`, as every order we
/// render does (`version` is its last field, and inside a JSON string a
/// quote is escaped, so no string value can make a body end so); the
/// original service's bodies under the same key have no `version`. Anything
/// else is a miss like an absent key: the lease is taken and the fill's
/// `SET` replaces it.
const DETAIL_READ: &str = r#"
local body = redis.call('GET', KEYS[1])
if body and string.find(body, '"version":%d+}$') then
  return {1, body}
end
local holder = redis.call('GET', KEYS[2])
local acquired = 0
if not holder then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  holder = ARGV[1]
  acquired = 1
end
return {0, holder, acquired, redis.call('GET', KEYS[3]) or '0'}
"#;

/// KEYS[1] detail key, KEYS[2] lease key, KEYS[3] epoch key; ARGV[1] our
/// token, ARGV[2] the epoch seen when the lease was taken, ARGV[3] payload,
/// ARGV[4] TTL in ms. Stores only if our lease is still there (no writer
/// deleted it since) and no full invalidation bumped the epoch; releases
/// our lease either way. Returns 1 when stored.
const DETAIL_STORE: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[2])
if (redis.call('GET', KEYS[3]) or '0') ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
";

/// KEYS[1] lease key; ARGV[1] our token. Gives a lease back when there is
/// nothing to store (no such order, or the database failed), so the next
/// reader may fill the key without waiting for the lease to expire.
const LEASE_RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The scripts, hashed once. `invoke_async` sends `EVALSHA` and falls back
/// to loading the script when Redis answers `NOSCRIPT` (after a restart).
pub(crate) struct Scripts {
    pub(crate) list_read: Script,
    pub(crate) list_store: Script,
    pub(crate) detail_read: Script,
    pub(crate) detail_store: Script,
    pub(crate) lease_release: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            list_read: Script::new(LIST_READ),
            list_store: Script::new(LIST_STORE),
            detail_read: Script::new(DETAIL_READ),
            detail_store: Script::new(DETAIL_STORE),
            lease_release: Script::new(LEASE_RELEASE),
        }
    }
}
