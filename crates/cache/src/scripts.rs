//! The Lua scripts that make each cache step atomic in Redis. A script runs
//! alone on the server, so "read the version, then the payload for it" or
//! "store only if my lease still holds and no purge happened" cannot be
//! interleaved with a writer's invalidation.
//!
//! `LIST_READ` and `LIST_STORE` build the payload key from the version they
//! read inside the script, i.e. they touch a key not passed in `KEYS`: fine
//! on a standalone Redis (what the original used); a Redis Cluster would
//! need all keys in one hash slot.
//!
//! # A Redis that loses data
//!
//! A Redis that restarts empty (no persistence, as the original ran it)
//! forgets the list version, so version numbers come round again: a reader
//! that read version 1 and then old rows before the restart could store
//! them under the version 1 that the first write after it makes current.
//! Fills therefore store only under the pair (epoch, version) they read,
//! where the epoch (`{p}orders:detail-epoch`) only ever takes fresh random
//! values: any script that finds it missing, or finds the version missing,
//! sets a new one (see `PRELUDE`), and so does every full purge. A pair a
//! reader read is then never current again after a loss:
//! - both keys lost (a restart, a flush): the next script to look sets a
//!   new epoch before any version is read under it;
//! - the version alone lost (evicted, deleted): the script that recreates
//!   it sets a new epoch in the same step, so the old numbers come back
//!   only under an epoch nobody read before;
//! - the epoch alone lost: the next one is new.
//!
//! Within one epoch versions only grow (`INCR`), so the old argument holds:
//! a write bumps the version after its commit, and a fill that read rows
//! before that commit read an older pair. An epoch is 62 random bits, so a
//! repeat is a one in 2^62 chance; it stays an integer so that an `INCR` of
//! it (an older build's purge) still gives a new value. Details also have
//! their lease, which a loss takes with it.
//!
//! Not covered: a Redis that comes back with *older* data rather than none
//! (a restore from an old snapshot, a failover to a replica that lagged).
//! Its keys were once current, payloads included, so no numbering can tell
//! them from the present; the writes acknowledged in between lost their
//! invalidations with it. An instance whose calls failed meanwhile (its
//! breaker opened, or a write could not invalidate) purges before it uses
//! Redis again (see `RedisCache::call`); others may serve such an entry
//! until its TTL ends.

use deadpool_redis::redis::Script;

/// Shared by the scripts that read the version or the epoch. Each takes the
/// keys and a fresh random epoch (made by the caller: a script cannot make
/// randomness of its own) as arguments, since their positions differ.
const PRELUDE: &str = r"
local function version_of(version_key, epoch_key, fresh_epoch)
  local version = redis.call('GET', version_key)
  if not version then
    version = '0'
    redis.call('SET', version_key, version)
    redis.call('SET', epoch_key, fresh_epoch)
  end
  return version
end

local function epoch_of(epoch_key, fresh_epoch)
  local epoch = redis.call('GET', epoch_key)
  if not epoch then
    epoch = fresh_epoch
    redis.call('SET', epoch_key, epoch)
  end
  return epoch
end
";

/// KEYS[1] version key, KEYS[2] epoch key; ARGV[1] list key head
/// (`{p}orders:list:`), ARGV[2] suffix (`""` or `:{canonical}`), ARGV[3]
/// stamp key head (`{p}orders:list-stamp:`), ARGV[4] the stamp of the body
/// this process already holds for that suffix (`""` if none), ARGV[5] a
/// fresh epoch.
/// Returns `{epoch, version, payload or nil, stamp or nil}`: one round trip
/// for a hit, and the version for a miss is read before the database is,
/// which is what keeps a late fill harmless. When the current payload's
/// stamp is the one the caller holds, the payload is not sent again (nil
/// with the stamp). A payload without a stamp is not ours (`LIST_STORE`
/// writes both, with one TTL; the original service, which uses the same
/// list keys, never writes a stamp), so it is a miss, and the fill
/// overwrites it.
const LIST_READ: &str = r"
local version = version_of(KEYS[1], KEYS[2], ARGV[5])
local epoch = epoch_of(KEYS[2], ARGV[5])
local stamp = redis.call('GET', ARGV[3] .. version .. ARGV[2])
if not stamp then
  return {epoch, version, false, false}
end
if stamp == ARGV[4] then
  return {epoch, version, false, stamp}
end
return {epoch, version, redis.call('GET', ARGV[1] .. version .. ARGV[2]), stamp}
";

/// KEYS[1] version key, KEYS[2] epoch key; ARGV[1] list key head, ARGV[2]
/// suffix, ARGV[3] the version and ARGV[4] the epoch read before the
/// database, ARGV[5] payload, ARGV[6] TTL in ms, ARGV[7] stamp key head,
/// ARGV[8] a fresh random stamp.
/// Stores only while that pair is still current: a fill that lost a race
/// with a write does not even write its (unreachable) key, and a Redis that
/// lost its data since is not fed what was read before. The stamp names
/// this one payload, so a process holding a copy can tell it is still the
/// current one (see `LIST_READ`).
const LIST_STORE: &str = r"
local version = redis.call('GET', KEYS[1])
if version ~= ARGV[3] or redis.call('GET', KEYS[2]) ~= ARGV[4] then
  return 0
end
redis.call('SET', ARGV[1] .. version .. ARGV[2], ARGV[5], 'PX', ARGV[6])
redis.call('SET', ARGV[7] .. version .. ARGV[2], ARGV[8], 'PX', ARGV[6])
return 1
";

/// KEYS[1] detail key, KEYS[2] lease key, KEYS[3] epoch key; ARGV[1] a fresh
/// random token, ARGV[2] lease TTL in ms, ARGV[3] a fresh epoch.
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
return {0, holder, acquired, epoch_of(KEYS[3], ARGV[3])}
"#;

/// KEYS[1] detail key, KEYS[2] lease key, KEYS[3] epoch key; ARGV[1] our
/// token, ARGV[2] the epoch seen when the lease was taken, ARGV[3] payload,
/// ARGV[4] TTL in ms. Stores only if our lease is still there (no writer
/// deleted it since) and the epoch is the one seen with it (no full
/// invalidation, no loss since); releases our lease either way. Returns 1
/// when stored.
const DETAIL_STORE: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[3]) ~= ARGV[2] then
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

/// KEYS[1] version key, KEYS[2] epoch key, KEYS[3] detail key, KEYS[4]
/// lease key; ARGV[1] a fresh epoch. After a committed change of one order:
/// its detail key and lease go (so a fill that read the old row cannot
/// store it), then the version moves on. The deletes come first because an
/// error (a version that is not a number) stops a script where it is.
const ORDER_WRITTEN: &str = r"
redis.call('DEL', KEYS[3], KEYS[4])
version_of(KEYS[1], KEYS[2], ARGV[1])
return redis.call('INCR', KEYS[1])
";

/// KEYS[1] version key, KEYS[2] epoch key; ARGV[1] a fresh epoch. The first
/// step of a full invalidation: a new version for the lists, a new epoch
/// for the details (see `RedisCache::purge` for why before the `SCAN`).
const PURGE_BEGIN: &str = r"
version_of(KEYS[1], KEYS[2], ARGV[1])
redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1])
return 1
";

/// The scripts, hashed once. `invoke_async` sends `EVALSHA` and falls back
/// to loading the script when Redis answers `NOSCRIPT` (after a restart).
pub(crate) struct Scripts {
    pub(crate) list_read: Script,
    pub(crate) list_store: Script,
    pub(crate) detail_read: Script,
    pub(crate) detail_store: Script,
    pub(crate) lease_release: Script,
    pub(crate) order_written: Script,
    pub(crate) purge_begin: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        let with_prelude = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Self {
            list_read: with_prelude(LIST_READ),
            list_store: Script::new(LIST_STORE),
            detail_read: with_prelude(DETAIL_READ),
            detail_store: Script::new(DETAIL_STORE),
            lease_release: Script::new(LEASE_RELEASE),
            order_written: with_prelude(ORDER_WRITTEN),
            purge_begin: with_prelude(PURGE_BEGIN),
        }
    }
}

/// A value for the epoch that no reader has seen: 62 random bits, so that
/// `INCR`s of it stay within Redis's 64-bit integers.
pub(crate) fn fresh_epoch() -> String {
    (rand::random::<u64>() >> 2).to_string()
}
