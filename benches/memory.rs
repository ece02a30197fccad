//! Memory per revoked token: the resident set size before and after recording one
//! million revocations in a `MemoryStore`, spread over a 15-minute token lifetime.
//!
//! `cargo bench --bench memory` (prints one line per figure; no criterion).

mod support;

use support::{now, ready};
use tower_jwt_auth::{MemoryStore, RevocationStore, RevokedToken};

const N: u64 = 1_000_000;

/// Resident set size in bytes, from /proc/self/statm.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter we ignore.
    let now = now();
    let store = MemoryStore::new();
    // Warm up the allocator and moka's own structures with one entry.
    ready(store.revoke(&RevokedToken::new(
        Some("iss"),
        "warm-up",
        now + 3600,
        now + 3661,
    )))
    .unwrap();
    let before = rss();
    let mut jti = String::with_capacity(32);
    for i in 0..N {
        use std::fmt::Write;
        jti.clear();
        // 22 characters, like a 128-bit base64url jti.
        write!(jti, "{i:0>22}").unwrap();
        // Tokens expire over 15 minutes; kept until exp + 60 s leeway + 1.
        let exp = now + (i % 900);
        ready(store.revoke(&RevokedToken::new(
            Some("https://issuer.example"),
            &jti,
            exp,
            exp + 61,
        )))
        .unwrap();
    }
    let (tokens, _) = store.len();
    let after = rss();
    assert_eq!(tokens, N + 1, "every revocation is held");
    let per = (after - before) as f64 / N as f64;
    println!("revocations: {N}");
    println!("rss before: {:.1} MiB", before as f64 / 1048576.0);
    println!("rss after:  {:.1} MiB", after as f64 / 1048576.0);
    println!("bytes per revoked token: {per:.0}");
}
