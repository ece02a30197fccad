//! The verified-token cache: a client sends the same token for minutes, so the layer
//! remembers what verifying it gave and answers a repeat with one lookup instead of a
//! signature check and two JSON parses.
//!
//! - **Key**: the full token, compared byte for byte after a hash match (the hash only
//!   finds the slot: two tokens that differ in one byte never share an entry). The layer
//!   looks up the bytes as sent, before their syntax is checked: only well-formed tokens
//!   are kept, so a hit needs no check and a miss is checked as before.
//! - **Value**: the verified claims behind one `Arc`, so a hit is a reference-count
//!   bump; the application's claims `C` are decoded once and shared the same way.
//! - **What is cached**: successful verifications only, of tokens up to
//!   [`MAX_CACHED_TOKEN_LEN`] bytes, from their second verification on (a doorkeeper of
//!   fingerprints remembers the first), so a stream of tokens each seen once costs a
//!   lookup and one atomic store, never an insertion. A refused token is never remembered.
//! - **What a hit still checks**: the time rules (`exp`, `nbf`, `iat` against now with
//!   the leeway, judged as `jsonwebtoken` judges them), and then the revocation store,
//!   exactly as for a token verified afresh.
//! - **Bound**: a fixed number of slots, split over shards; a full shard replaces a slot
//!   by the CLOCK policy (a slot hit since the hand last passed is spared once, an
//!   expired one never is). Memory never grows past the capacity, and hits never wait
//!   for an insertion in another shard.
//!
//! - **Per thread**: each thread keeps the last few entries it found in a small table of
//!   its own ([`FRONT_SLOTS`] slots, weak references), asked first. A repeat of a token on
//!   the same thread writes nothing shared: a shard's read lock writes its lock word,
//!   and with every worker thread taking the same lock for a busy token that word moves
//!   between cores on each request (BENCHMARKS.md has what it cost over HTTP). An entry
//!   there is still the shared entry: the key compared byte for byte, answered only at
//!   the epoch it was found at, and gone with the shared entry: a weak reference keeps
//!   neither the token nor its claims alive, only the entry's few-word allocation until
//!   the thread's slot is reused. The bound and every check below hold as without it.
//!
//! Reads take a shard's read lock for a probe and a reference-count bump; nothing is
//! held across I/O. The structure is written here rather than taken from moka: moka's
//! per-read bookkeeping and per-insert timer made a hit cost a third of an HS256
//! verification and a new token four times one (BENCHMARKS.md has the figures).

use std::cell::RefCell;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use crate::claims::Registered;
use crate::clock;
use crate::source::is_token68;

/// The longest token the cache keeps: longer ones are verified every time, so an entry
/// costs at most about this much memory besides its claims.
pub(crate) const MAX_CACHED_TOKEN_LEN: usize = 2048;

/// How many fingerprints the doorkeeper holds, per cache slot (at least 1024 in all).
const DOORKEEPER_PER_SLOT: usize = 2;

/// How many entries each thread keeps of its own (a power of two): the tokens of its
/// busiest clients. Each is four words and a weak reference.
pub(crate) const FRONT_SLOTS: usize = 8;

/// Tells caches apart in the threads' tables, which every cache of the process shares.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's recent finds, in every cache, by the token's hash.
    static FRONT: RefCell<[Front; FRONT_SLOTS]> =
        const { RefCell::new([const { Front::EMPTY }; FRONT_SLOTS]) };
}

/// A thread's reference to a shared entry it found.
struct Front {
    /// The cache it was found in ([`TokenCache::id`]; 0 for none).
    cache: u64,
    /// That cache's epoch when it was found: after a [`clear`](TokenCache::clear) it is
    /// never answered again.
    epoch: u64,
    hash: u64,
    entry: Weak<Entry>,
}

impl Front {
    const EMPTY: Self = Self {
        cache: 0,
        epoch: 0,
        hash: 0,
        entry: Weak::new(),
    };
}

/// Verified tokens by their full text.
pub(crate) struct TokenCache {
    /// This cache among the process's, for the threads' tables.
    id: u64,
    hasher: RandomState,
    shards: Box<[RwLock<Shard>]>,
    /// Fingerprints of tokens verified once and not cached yet.
    doorkeeper: Box<[AtomicU64]>,
    leeway: u64,
    /// Bumped by [`clear`](TokenCache::clear): a verification that started before a
    /// clear (with a key that may have left since) is not inserted after it.
    epoch: AtomicU64,
}

/// A lookup's hash, kept so an insertion after a miss does not hash the token again,
/// and the cache's epoch at the lookup.
#[derive(Clone, Copy)]
pub(crate) struct Hash {
    hash: u64,
    epoch: u64,
}

struct Shard {
    /// Indices into `slots`, found by the token's hash.
    table: HashTable<u32>,
    slots: Vec<Slot>,
    capacity: usize,
    /// The CLOCK hand: the next slot considered for replacement.
    hand: usize,
}

struct Slot {
    hash: u64,
    /// The only strong reference: the threads' tables hold weak ones, so replacing the
    /// slot frees the entry.
    entry: Arc<Entry>,
}

/// A verified token and what verifying it gave.
struct Entry {
    token: Box<str>,
    claims: Arc<Registered>,
    /// Hit since the hand last passed.
    referenced: AtomicBool,
}

impl Entry {
    /// Marks a hit for the CLOCK hand (a store only when the hand has cleared it, so a
    /// busy entry's line is not written on every hit).
    fn hit(&self) -> Arc<Registered> {
        if !self.referenced.load(Ordering::Relaxed) {
            self.referenced.store(true, Ordering::Relaxed);
        }
        Arc::clone(&self.claims)
    }
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (rounded up to fill its shards evenly).
    pub(crate) fn new(capacity: u64, leeway: u64) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
        let shards = capacity.div_ceil(64).next_power_of_two().min(64);
        let per_shard = capacity.div_ceil(shards);
        let doorkeeper = capacity
            .saturating_mul(DOORKEEPER_PER_SLOT)
            .clamp(1024, 1 << 22);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            hasher: RandomState::default(),
            shards: (0..shards)
                .map(|_| {
                    RwLock::new(Shard {
                        table: HashTable::new(),
                        slots: Vec::new(),
                        capacity: per_shard,
                        hand: 0,
                    })
                })
                .collect(),
            doorkeeper: (0..doorkeeper).map(|_| AtomicU64::new(0)).collect(),
            leeway,
            epoch: AtomicU64::new(0),
        }
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard> {
        // The top bits pick the shard; the table uses all of them.
        let i = (hash >> 40) as usize & (self.shards.len() - 1);
        &self.shards[i]
    }

    /// The verified claims of `token` if it is cached, and its hash either way.
    pub(crate) fn get(&self, token: &[u8]) -> (Option<Arc<Registered>>, Hash) {
        let epoch = self.epoch.load(Ordering::Acquire);
        if token.len() > MAX_CACHED_TOKEN_LEN {
            // Never cached (nor inserted: the hash is not used), and not worth hashing:
            // such a header may be as long as the server lets it be.
            return (None, Hash { hash: 0, epoch });
        }
        let hash = self.hasher.hash_one(token);
        let key = Hash { hash, epoch };
        let front = self.front_slot(hash);
        if let Some(claims) = self.front_get(front, key, token) {
            return (Some(claims), key);
        }
        let entry = {
            let shard = self
                .shard(hash)
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            shard
                .table
                .find(hash, |&i| {
                    let slot = &shard.slots[i as usize];
                    slot.hash == hash && slot.entry.token.as_bytes() == token
                })
                .map(|&i| Arc::clone(&shard.slots[i as usize].entry))
        };
        let found = entry.map(|entry| {
            self.front_put(front, key, &entry);
            entry.hit()
        });
        (found, key)
    }

    /// The slot of this thread's table for `hash` in this cache.
    fn front_slot(&self, hash: u64) -> usize {
        // Mixed with the cache's id, so that one token in two caches (two layers with one
        // key) does not make them take each other's slot.
        ((hash ^ self.id.wrapping_mul(0x9E37_79B9_7F4A_7C15)) as usize) & (FRONT_SLOTS - 1)
    }

    /// The claims of `token` from this thread's table: found in this cache at the
    /// current epoch, still in the cache, and equal byte for byte.
    fn front_get(&self, slot: usize, key: Hash, token: &[u8]) -> Option<Arc<Registered>> {
        FRONT
            .try_with(|front| {
                let front = front.try_borrow().ok()?;
                let f = &front[slot];
                if f.cache != self.id || f.hash != key.hash || f.epoch != key.epoch {
                    return None;
                }
                let entry = f.entry.upgrade()?;
                (entry.token.as_bytes() == token).then(|| entry.hit())
            })
            .ok()
            .flatten()
    }

    /// Remembers in this thread's table that `entry` was found at `key`.
    fn front_put(&self, slot: usize, key: Hash, entry: &Arc<Entry>) {
        // Never fails but while the thread exits, when there is nothing to remember for.
        let _ = FRONT.try_with(|front| {
            if let Ok(mut front) = front.try_borrow_mut() {
                front[slot] = Front {
                    cache: self.id,
                    epoch: key.epoch,
                    hash: key.hash,
                    entry: Arc::downgrade(entry),
                };
            }
        });
    }

    /// Remembers that `token` (whose lookup gave `hash`) verified to `claims`: from its
    /// second verification on, so that tokens seen once are never inserted.
    pub(crate) fn insert(&self, hash: Hash, token: &str, claims: &Arc<Registered>) {
        if token.len() > MAX_CACHED_TOKEN_LEN {
            return;
        }
        let Hash { hash, epoch } = hash;
        if !self.admit(hash) {
            return;
        }
        // Only well-formed tokens: the layer skips the syntax check of a hit, which is
        // byte for byte equal to one of these (a verified JWS is base64url and dots, so
        // this refuses nothing that verified). Checked after the doorkeeper, so that a
        // token seen once (every request of a stream of new tokens) is not scanned again.
        if !is_token68(token.as_bytes()) {
            return;
        }
        let now = clock::now_secs();
        let mut guard = self
            .shard(hash)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Under the shard's lock, which `clear` takes after bumping the epoch: either the
        // clear comes after this insertion and removes it, or this sees the new epoch.
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        let shard = &mut *guard;
        let Shard {
            table,
            slots,
            capacity,
            hand,
        } = shard;
        let same = |i: &u32| {
            let slot = &slots[*i as usize];
            slot.hash == hash && *slot.entry.token == *token
        };
        if table.find(hash, same).is_some() {
            return; // Another request inserted it meanwhile.
        }
        let slot = Slot {
            hash,
            entry: Arc::new(Entry {
                token: token.into(),
                claims: Arc::clone(claims),
                referenced: AtomicBool::new(false),
            }),
        };
        let index = if slots.len() < *capacity {
            slots.push(slot);
            slots.len() - 1
        } else {
            // CLOCK: spare each referenced, unexpired slot once; within two laps the
            // hand finds one to replace.
            let victim = loop {
                let candidate = &slots[*hand].entry;
                let usable = candidate.claims.exp.nearest.saturating_add(self.leeway) >= now;
                if usable && candidate.referenced.swap(false, Ordering::Relaxed) {
                    *hand = (*hand + 1) % slots.len();
                    continue;
                }
                break *hand;
            };
            *hand = (victim + 1) % slots.len();
            let old = slots[victim].hash;
            if let Ok(entry) = table.find_entry(old, |&i| i as usize == victim) {
                entry.remove();
            }
            slots[victim] = slot;
            victim
        };
        // Indices fit: a shard holds at most `capacity / shards` slots, far below 2^32.
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        table.insert_unique(hash, index, |&i| slots[i as usize].hash);
    }

    /// Whether a token with this hash was seen before (the doorkeeper): its fingerprint
    /// is in its door slot. Otherwise the fingerprint goes in, unless the slot holds a
    /// *fresh* one: that is spared once (marked not fresh) and replaced next time.
    /// Two tokens that share a slot and alternate therefore each get in within two
    /// rounds, where plain replacement would evict each by the other forever.
    ///
    /// Races between requests only make an admission earlier or later, never wrong:
    /// the doorkeeper decides what is worth caching, not what is valid.
    fn admit(&self, hash: u64) -> bool {
        const FRESH: u64 = 1;
        let door = &self.doorkeeper[(hash as usize) % self.doorkeeper.len()];
        let tag = hash & !FRESH;
        let seen = door.load(Ordering::Relaxed);
        if seen != 0 && seen & !FRESH == tag {
            return true;
        }
        let next = if seen & FRESH == FRESH {
            seen & !FRESH
        } else {
            tag | FRESH
        };
        door.store(next, Ordering::Relaxed);
        false
    }

    /// How many tokens are cached.
    pub(crate) fn len(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).slots.len() as u64)
            .sum()
    }

    /// Forgets every token: for a key set that changed, so that no token verified by a
    /// key that left it is answered from here (nor inserted by a verification that was
    /// under way).
    #[cfg_attr(not(feature = "oidc"), allow(dead_code))]
    pub(crate) fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for shard in &*self.shards {
            let mut shard = shard.write().unwrap_or_else(PoisonError::into_inner);
            shard.table.clear();
            shard.slots.clear();
            shard.hand = 0;
        }
        for door in &*self.doorkeeper {
            door.store(0, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the tokens themselves.
        f.debug_struct("TokenCache")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_tokens_sharing_a_door_slot_both_get_in() {
        let cache = TokenCache::new(100, 0);
        let slots = cache.doorkeeper.len() as u64;
        let (a, b) = (0x1234_5678_0000_0002, 0x1234_5678_0000_0002 + 2 * slots);
        assert_eq!(a % slots, b % slots, "one door slot");
        // Alternating, as two clients do: plain replacement would never admit either.
        let rounds: Vec<(bool, bool)> = (0..2).map(|_| (cache.admit(a), cache.admit(b))).collect();
        assert_eq!(rounds, [(false, false), (true, false)]);
        assert!(cache.admit(b), "b gets in on its third try");
    }

    #[test]
    fn a_token_seen_once_is_never_admitted() {
        let cache = TokenCache::new(100, 0);
        let slots = cache.doorkeeper.len() as u64;
        // Many distinct tokens, all on one door slot.
        let admitted = (1..1_000u64)
            .filter(|i| cache.admit(2 * i * slots + 6))
            .count();
        assert_eq!(admitted, 0);
        assert!(!cache.admit(7 * slots + 1), "one try on an unused slot");
    }

    fn claims() -> Arc<Registered> {
        Arc::new(
            serde_json::from_str(r#"{"sub":"u","exp":4000000000,"iat":1,"jti":"j"}"#)
                .expect("claims"),
        )
    }

    /// Offers `token` until the doorkeeper lets it in, and asks for it once, so that this
    /// thread's table holds it.
    fn cache_and_hit(cache: &TokenCache, token: &str, claims: &Arc<Registered>) {
        for _ in 0..2 {
            let (_, hash) = cache.get(token.as_bytes());
            cache.insert(hash, token, claims);
        }
        assert!(cache.get(token.as_bytes()).0.is_some(), "{token} is cached");
    }

    #[test]
    fn the_threads_table_answers_nothing_after_a_clear() {
        let cache = TokenCache::new(100, 0);
        let claims = claims();
        cache_and_hit(&cache, "aGVhZA.Ym9keQ.c2ln", &claims);
        // A request that found the entry just before the clear still holds it: the
        // table's weak reference would still reach it, so the epoch must refuse it.
        let held = {
            let shard = cache.shards.iter().find_map(|s| {
                let s = s.read().unwrap();
                s.slots.first().map(|slot| Arc::clone(&slot.entry))
            });
            shard.expect("one entry")
        };
        cache.clear();
        assert!(cache.get(b"aGVhZA.Ym9keQ.c2ln").0.is_none());
        drop(held);
        assert_eq!(Arc::strong_count(&claims), 1, "nothing holds the claims");
    }

    #[test]
    fn the_threads_table_answers_nothing_the_cache_replaced() {
        // One slot: a second token replaces the first.
        let cache = TokenCache::new(1, 0);
        let (a, b) = (claims(), claims());
        cache_and_hit(&cache, "YQ.YQ.YQ", &a);
        for _ in 0..2 {
            let (_, hash) = cache.get(b"Yg.Yg.Yg");
            cache.insert(hash, "Yg.Yg.Yg", &b);
        }
        assert_eq!(cache.len(), 1);
        assert!(
            cache.get(b"YQ.YQ.YQ").0.is_none(),
            "replaced, so not answered"
        );
        // The thread's weak reference kept nothing of the replaced entry alive.
        assert_eq!(Arc::strong_count(&a), 1);
        let hit = cache.get(b"Yg.Yg.Yg").0.expect("the new token is cached");
        assert!(Arc::ptr_eq(&hit, &b));
    }

    #[test]
    fn the_threads_table_answers_each_cache_for_itself() {
        let (one, two) = (TokenCache::new(100, 0), TokenCache::new(100, 0));
        let claims = claims();
        cache_and_hit(&one, "aGVhZA.Ym9keQ.c2ln", &claims);
        assert!(two.get(b"aGVhZA.Ym9keQ.c2ln").0.is_none());
        let (found, key) = one.get(b"aGVhZA.Ym9keQ.c2ln");
        assert!(found.is_some());
        // Even asked at the very slot and hash `one` filed it under (as two caches whose
        // hashes of a token collided would), `two` is not answered from it.
        let slot = one.front_slot(key.hash);
        assert!(two.front_get(slot, key, b"aGVhZA.Ym9keQ.c2ln").is_none());
        assert!(one.front_get(slot, key, b"aGVhZA.Ym9keQ.c2ln").is_some());
    }

    #[test]
    fn the_threads_table_compares_every_byte() {
        let cache = TokenCache::new(100, 0);
        let claims = claims();
        let token = "aGVhZA.Ym9keQ.c2ln";
        cache_and_hit(&cache, token, &claims);
        for i in 0..token.len() {
            let mut other = token.as_bytes().to_vec();
            other[i] ^= 1;
            assert!(cache.get(&other).0.is_none(), "byte {i} changed");
            assert!(cache.get(&other[..i]).0.is_none(), "cut at {i}");
        }
        let (found, key) = cache.get(token.as_bytes());
        assert!(found.is_some());
        // Under the token's own hash (as a colliding token would be), other bytes are
        // not answered.
        let slot = cache.front_slot(key.hash);
        assert!(cache.front_get(slot, key, b"aGVhZA.Ym9keQ.c2lm").is_none());
        assert!(cache.front_get(slot, key, token.as_bytes()).is_some());
    }

    #[test]
    fn another_thread_finds_what_this_one_cached() {
        let cache = TokenCache::new(100, 0);
        let claims = claims();
        cache_and_hit(&cache, "aGVhZA.Ym9keQ.c2ln", &claims);
        std::thread::scope(|s| {
            s.spawn(|| {
                let hit = cache.get(b"aGVhZA.Ym9keQ.c2ln").0;
                assert!(hit.is_some_and(|hit| Arc::ptr_eq(&hit, &claims)));
            });
        });
        assert!(cache.get(b"aGVhZA.Ym9keQ.c2ln").0.is_some());
    }

    #[test]
    fn only_token68_tokens_are_cached() {
        let cache = TokenCache::new(100, 0);
        let claims = claims();
        // Each token offered twice, as the doorkeeper admits on the second verification.
        let cached = |token: &str| {
            for _ in 0..2 {
                let (_, hash) = cache.get(token.as_bytes());
                cache.insert(hash, token, &claims);
            }
            cache.get(token.as_bytes()).0.is_some()
        };
        assert!(cached("aGVhZA.Ym9keQ.c2ln"));
        assert!(!cached("aGVhZA.Ym9keQ c2ln"), "a blank is outside token68");
        assert!(
            !cached("aGVhZA.Ym9keQ.c2ln=x"),
            "so is a byte after padding"
        );
        assert_eq!(cache.len(), 1);
    }
}
