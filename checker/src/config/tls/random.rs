//! The randomness rustls asks for as it makes a ClientHello (its random
//! and its session id), from a generator of each thread instead of the
//! kernel's.
//!
//! ring's own source makes a `getrandom` system call for each value: about
//! three a resumed HTTPS probe, a fifth of its system calls
//! (lab/bench/README.md). Here each thread has a ChaCha20 generator seeded
//! from the kernel and seeded again after every [`RESEED_AFTER`] bytes, as
//! OpenSSL's and BoringSSL's generators are (keepalived's SSL_GET makes no
//! system call for them either). Key exchanges (a full handshake, TLS 1.3)
//! still take their keys from ring's source, which this does not replace.
//! A process forked from the checker runs a program at once and uses none
//! of it.

use std::cell::RefCell;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rustls::crypto::{GetRandomFailed, SecureRandom};

/// Bytes a thread's generator gives before it is seeded again.
const RESEED_AFTER: usize = 64 * 1024;

thread_local! {
    /// The thread's generator, and the bytes it gave since its seed.
    static GENERATOR: RefCell<Option<(ChaCha20Rng, usize)>> = const { RefCell::new(None) };
}

/// rustls' source of randomness: the thread's generator.
#[derive(Debug)]
pub struct ThreadGenerator;

impl SecureRandom for ThreadGenerator {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        GENERATOR.with_borrow_mut(|slot| {
            if slot
                .as_ref()
                .is_none_or(|(_, given)| *given >= RESEED_AFTER)
            {
                let seeded = ChaCha20Rng::try_from_os_rng().map_err(|_| GetRandomFailed)?;
                *slot = Some((seeded, 0));
            }
            let Some((generator, given)) = slot.as_mut() else {
                return Err(GetRandomFailed);
            };
            generator.fill_bytes(buf);
            *given += buf.len();
            Ok(())
        })
    }
}

/// The bytes this thread's generator gave since its seed.
#[cfg(test)]
pub fn given() -> usize {
    GENERATOR.with_borrow(|slot| slot.as_ref().map_or(0, |(_, given)| *given))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fill_is_new_and_the_generator_is_seeded_again_after_its_bytes() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let mut random = [0u8; 32];
            ThreadGenerator.fill(&mut random).expect("filled");
            assert!(seen.insert(random), "a value given twice");
        }
        assert_eq!(given(), 32_000);
        let mut large = vec![0u8; RESEED_AFTER];
        ThreadGenerator.fill(&mut large).expect("filled");
        assert!(given() >= RESEED_AFTER);
        let mut after = [0u8; 32];
        ThreadGenerator.fill(&mut after).expect("filled");
        assert_eq!(given(), 32, "seeded again");
        assert!(seen.insert(after));
    }

    #[test]
    fn threads_have_generators_of_their_own() {
        let on = || {
            let mut random = [0u8; 32];
            ThreadGenerator.fill(&mut random).expect("filled");
            random
        };
        let other = std::thread::spawn(on).join().expect("thread");
        assert_ne!(on(), other);
    }
}
