//! HTTP basic authentication against bcrypt hashes, as exporter-toolkit
//! does it.
//!
//! bcrypt is slow on purpose, so checks run on the blocking pool, and a
//! pair that was verified is remembered: Prometheus sends the same
//! credentials on every scrape, and a scrape should not pay for a hash
//! each time. Unknown users are checked against a hash of the same cost,
//! so the answer takes as long as for a known one.
//!
//! The cache holds no password: it is keyed by HMAC-SHA-256 of the user
//! and password under a key drawn at random when the users are loaded, and
//! holds whether bcrypt accepted them. That is safe for a cache of
//! verified results because a wrong password reaches a cached "accepted"
//! only by a collision of SHA-256, and the key never leaves the process,
//! so a memory dump of the cache gives no digest that can be tried
//! offline against guesses (as an unkeyed fast hash could, far faster
//! than bcrypt).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine;
use parking_lot::{Mutex, MutexGuard};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// How many verified (user, password) pairs are remembered before the
/// cache starts over; bounds memory under a flood of wrong passwords.
const CACHE_MAX: usize = 256;

/// The `basic_auth_users` of a web config, ready to check requests.
#[derive(Debug)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// A hash of the cost of the configured ones, checked for unknown users.
    decoy: String,
    /// Keys the cache: HMAC-SHA-256, with a key of this process only.
    cache_key: hmac::Key,
    /// Whether bcrypt accepted a (user, password), by their HMAC.
    cache: Mutex<HashMap<Digest, bool>>,
}

/// An HMAC-SHA-256 of a user and password.
type Digest = [u8; 32];

impl BasicAuth {
    /// Checks requests against `users` (user name to bcrypt hash); `None`
    /// when there are no users, i.e. no authentication.
    pub fn new(users: &BTreeMap<String, String>) -> Option<Arc<Self>> {
        let first = users.values().next()?;
        let cost = first
            .get(4..6)
            .and_then(|c| c.parse().ok())
            .unwrap_or(bcrypt::DEFAULT_COST);
        // A decoy that cannot fail to hash: if it somehow did, unknown users
        // are still refused, only faster.
        let decoy = bcrypt::hash("decoy", cost).unwrap_or_default();
        let mut key = [0u8; 32];
        // Without the system's randomness, a key made from the hashes
        // (salted, secret as the config file is) still keeps the cache's
        // digests from being tried against guesses outside the process.
        if SystemRandom::new().fill(&mut key).is_err() {
            let fallback = ring::digest::digest(
                &ring::digest::SHA256,
                users
                    .values()
                    .map(String::as_str)
                    .collect::<String>()
                    .as_bytes(),
            );
            key.copy_from_slice(fallback.as_ref());
        }
        Some(Arc::new(BasicAuth {
            users: users.clone(),
            decoy,
            cache_key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            cache: Mutex::new(HashMap::new()),
        }))
    }

    /// Whether an `Authorization` header value carries valid credentials.
    /// Blocks for one bcrypt verification at most: call it off the async
    /// threads ([`BasicAuth::check_async`]).
    pub fn check(&self, authorization: Option<&[u8]>) -> bool {
        let Some((user, password)) = authorization.and_then(credentials) else {
            return false;
        };
        let key = self.digest(&user, &password);
        if let Some(known) = self.cache().get(&key) {
            return *known;
        }
        let valid = match self.users.get(&user) {
            Some(hash) => bcrypt::verify(&password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(&password, &self.decoy);
                false
            }
        };
        let mut cache = self.cache();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, valid);
        valid
    }

    /// [`BasicAuth::check`] on the blocking pool.
    pub async fn check_async(self: &Arc<Self>, authorization: Option<Vec<u8>>) -> bool {
        let auth = Arc::clone(self);
        tokio::task::spawn_blocking(move || auth.check(authorization.as_deref()))
            .await
            .unwrap_or(false)
    }

    /// The cache key of `user` and `password` (the user holds no `:`, so
    /// `user:password` stands for one pair only).
    fn digest(&self, user: &str, password: &str) -> Digest {
        let mut context = hmac::Context::with_key(&self.cache_key);
        context.update(user.as_bytes());
        context.update(b":");
        context.update(password.as_bytes());
        let mut digest = [0u8; 32];
        digest.copy_from_slice(context.sign().as_ref());
        digest
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<Digest, bool>> {
        self.cache.lock()
    }
}

/// The user and password of `Basic <base64(user:password)>`.
pub fn credentials(header: &[u8]) -> Option<(String, String)> {
    let header = std::str::from_utf8(header).ok()?.trim();
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user_password: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
        .into_bytes()
    }

    #[test]
    fn right_password_only() {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let users = BTreeMap::from([("alice".to_string(), hash)]);
        let auth = BasicAuth::new(&users).expect("users");
        assert!(auth.check(Some(&header("alice:s3cret"))));
        // Cached, and still right.
        assert!(auth.check(Some(&header("alice:s3cret"))));
        assert!(!auth.check(Some(&header("alice:wrong"))));
        assert!(!auth.check(Some(&header("mallory:s3cret"))));
        assert!(!auth.check(Some(b"Bearer abc")));
        assert!(!auth.check(Some(b"Basic !!!")));
        assert!(!auth.check(Some(&header("no-colon"))));
        assert!(!auth.check(None));
        assert!(auth.check(Some(format!("basic  {}", "YWxpY2U6czNjcmV0").as_bytes())));
    }

    #[test]
    fn the_cache_holds_no_password() {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let users = BTreeMap::from([("alice".to_string(), hash)]);
        let auth = BasicAuth::new(&users).expect("users");
        assert!(auth.check(Some(&header("alice:s3cret"))));
        assert!(!auth.check(Some(&header("alice:wrong"))));
        let cache = auth.cache();
        assert_eq!(cache.len(), 2);
        for key in cache.keys() {
            let bytes = key.as_slice();
            for secret in [&b"s3cret"[..], b"wrong", b"alice"] {
                assert!(!bytes.windows(secret.len()).any(|w| w == secret));
            }
        }
        // Keyed per process: another BasicAuth gives the same pair another
        // key, so a digest means nothing outside the process that made it.
        let other = BasicAuth::new(&users).expect("users");
        assert_ne!(
            auth.digest("alice", "s3cret"),
            other.digest("alice", "s3cret")
        );
        assert_eq!(
            auth.digest("alice", "s3cret"),
            auth.digest("alice", "s3cret")
        );
        assert_ne!(
            auth.digest("alice", "s3cret"),
            auth.digest("alic", "es3cret")
        );
    }

    #[test]
    fn no_users_no_auth() {
        assert!(BasicAuth::new(&BTreeMap::new()).is_none());
    }
}
