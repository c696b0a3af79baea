//! HTTP basic authentication against bcrypt hashes, as exporter-toolkit
//! does it.
//!
//! bcrypt is slow on purpose (tens of milliseconds at cost 10), so checks
//! run on the blocking pool, and a pair that was verified is remembered:
//! Prometheus sends the same credentials on every scrape, and a scrape
//! should not pay for a hash each time. Unknown users are checked against
//! a hash of the same cost, so the answer takes as long as for a known one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use base64::Engine;

/// How many verified (user, password) pairs are remembered before the
/// cache starts over; bounds memory under a flood of wrong passwords.
const CACHE_MAX: usize = 256;

/// The `basic_auth_users` of a web config, ready to check requests.
#[derive(Debug)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// A hash of the cost of the configured ones, checked for unknown users.
    decoy: String,
    cache: Mutex<HashMap<(String, String), bool>>,
}

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
        Some(Arc::new(BasicAuth {
            users: users.clone(),
            decoy,
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
        let key = (user, password);
        if let Some(known) = self.cache().get(&key) {
            return *known;
        }
        let (user, password) = &key;
        let valid = match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, &self.decoy);
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

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), bool>> {
        // A panic while holding it leaves only a cache behind: keep going.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The user and password of `Basic <base64(user:password)>`.
fn credentials(header: &[u8]) -> Option<(String, String)> {
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
    fn no_users_no_auth() {
        assert!(BasicAuth::new(&BTreeMap::new()).is_none());
    }
}
