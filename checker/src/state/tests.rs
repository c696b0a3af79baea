//! The state's bookkeeping: health, counters, what the status shows.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::prober::ProbeError;

/// A recovery from down starts the slow start where the state machine
/// flipped; the daemon's 100 ms tick finds the service ramping until
/// the period is over.
#[test]
fn a_recovery_from_down_starts_the_ramp() {
    let config = crate::config::parse(
        "defaults: {rise: 1, fall: 1}\nservices:\n  - address: 198.18.0.10:80\n    slow_start: 10s\n    real_servers:\n      - {address: 198.18.1.11:80, weight: 20}\n",
        Path::new("test.yaml"),
        Path::new("."),
    )
    .expect("valid");
    let service = &config.services[0];
    let (svc, rs) = (service.key, service.real_servers[0].key);
    let mut state = State::default();
    state.reset(&config);
    let ok = Ok(Success::default());
    let failed = Err(ProbeError::Timeout(Duration::from_secs(1)));
    let now = SystemTime::now();
    let weight = |state: &State, at: Instant| state.desired_at(service, at).weights[0].1;

    // Unknown -> up (a start-up): the configured weight at once.
    state.observe(&svc, &rs, &ok, &Phases::new(), &[], now);
    assert_eq!(weight(&state, Instant::now()), Some(20));
    assert!(!state.ramping(service, Instant::now()));

    // Down, then up again: the ramp starts at the flip.
    state.observe(&svc, &rs, &failed, &Phases::new(), &[], now);
    assert_eq!(weight(&state, Instant::now()), Some(0));
    let before = Instant::now();
    state.observe(&svc, &rs, &ok, &Phases::new(), &[], now);
    let at = state
        .backend(&svc, &rs)
        .and_then(|b| b.recovered_at)
        .expect("recovered_at");
    assert!(at >= before);
    assert_eq!(weight(&state, at), Some(2));
    assert_eq!(weight(&state, at + Duration::from_millis(4_500)), Some(10));
    assert!(state.ramping(service, at + Duration::from_secs(9)));
    assert!(!state.ramping(service, at + Duration::from_secs(10)));
    assert_eq!(weight(&state, at + Duration::from_secs(10)), Some(20));
}

/// The services are read through `services()` and `service()`, so the
/// positions the index keeps into them cannot be made stale from
/// outside (a public `services` that was cleared made `backend` panic
/// with an index out of bounds); a reset to a smaller config keeps
/// both in step.
#[test]
fn the_index_and_the_services_stay_in_step() {
    let parse = |text: &str| {
        crate::config::parse(text, Path::new("test.yaml"), Path::new(".")).expect("valid")
    };
    let two = parse(
        "services:\n  - address: 198.18.0.10:80\n    real_servers: [{address: 198.18.1.11}, {address: 198.18.1.12}]\n  - address: 198.18.0.11:80\n    real_servers: [{address: 198.18.1.13}]\n",
    );
    let one = parse(
        "services:\n  - address: 198.18.0.11:80\n    real_servers: [{address: 198.18.1.13}]\n",
    );
    let mut state = State::default();
    state.reset(&two);
    assert_eq!(state.services().len(), 2);
    state.reset(&one);
    let gone = (two.services[0].key, two.services[0].real_servers[1].key);
    assert!(state.backend(&gone.0, &gone.1).is_none());
    assert!(state.service(&gone.0).is_none());
    for service in state.services() {
        assert_eq!(
            state.service(&service.key).map(|s| s.key),
            Some(service.key)
        );
        for backend in &service.backends {
            let found = state.backend(&service.key, &backend.key).map(|b| b.key);
            assert_eq!(found, Some(backend.key));
        }
    }
    assert_eq!(state.services().len(), 1);
}
