//! The verified-token cache: a client sends the same token for minutes, so the layer
//! remembers what verifying it gave and answers a repeat with one lookup instead of a
//! signature check and two JSON parses.
//!
//! - **Key**: the full token text, compared byte for byte (no digest: two tokens that
//!   differ in one byte never share an entry).
//! - **Value**: the verified claims behind one `Arc`, so a hit is a reference-count
//!   bump; the application's claims `C` are decoded once and shared the same way.
//! - **What is cached**: successful verifications only, of tokens up to
//!   [`MAX_CACHED_TOKEN_LEN`] bytes. A refused token is never remembered, so a stream of
//!   garbage costs its verification and nothing else.
//! - **What a hit still checks**: the time rules (`exp`, `nbf`, `iat` against now with
//!   the leeway, judged as `jsonwebtoken` judges them), and then the revocation store,
//!   exactly as for a token verified afresh: a revoked token is refused the moment the
//!   store knows, cached or not.
//! - **Bound**: at most the configured number of entries (moka's TinyLFU admission keeps
//!   the tokens in use when a stream of one-time tokens passes); each entry leaves once
//!   its token can no longer pass (`exp` plus the leeway).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::claims::Registered;
use crate::clock;

/// The longest token the cache keeps: longer ones are verified every time, so an entry
/// costs at most about this much memory besides its claims.
pub(crate) const MAX_CACHED_TOKEN_LEN: usize = 2048;

/// Verified tokens by their full text.
pub(crate) struct TokenCache {
    map: Cache<Box<str>, Arc<Registered>>,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens, each kept until `exp + leeway`.
    pub(crate) fn new(capacity: u64, leeway: u64) -> Self {
        Self {
            map: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilUnusable { leeway })
                .build(),
        }
    }

    /// The verified claims of `token`, if it was verified before.
    pub(crate) fn get(&self, token: &str) -> Option<Arc<Registered>> {
        self.map.get(token)
    }

    /// Remembers that `token` verified to `claims`.
    pub(crate) fn insert(&self, token: &str, claims: &Arc<Registered>) {
        if token.len() <= MAX_CACHED_TOKEN_LEN {
            self.map.insert(token.into(), Arc::clone(claims));
        }
    }

    /// How many tokens are cached (moka's estimate, O(1)).
    pub(crate) fn len(&self) -> u64 {
        self.map.entry_count()
    }

    /// Runs moka's pending maintenance (evictions, expirations), then counts.
    pub(crate) fn settled_len(&self) -> u64 {
        self.map.run_pending_tasks();
        self.map.entry_count()
    }

    /// Forgets every token: for a key set that changed, so that no token verified by a
    /// key that left it is answered from here.
    #[allow(dead_code)] // Called once keys can change at run time (remote key sets).
    pub(crate) fn clear(&self) {
        self.map.invalidate_all();
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the tokens themselves.
        f.debug_struct("TokenCache")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// Each entry lives until its token can no longer pass: `exp` plus the leeway. A hit
/// checks the time rules anyway; this only frees the memory.
struct UntilUnusable {
    leeway: u64,
}

impl Expiry<Box<str>, Arc<Registered>> for UntilUnusable {
    fn expire_after_create(
        &self,
        _token: &Box<str>,
        claims: &Arc<Registered>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let end = claims
            .exp
            .nearest
            .saturating_add(self.leeway)
            .saturating_add(1);
        Some(Duration::from_secs(end.saturating_sub(clock::now_secs())))
    }
}
