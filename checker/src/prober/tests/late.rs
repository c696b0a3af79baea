//! Timeouts of a probe whose thread is held up (a task that blocks it,
//! as a checker short of CPU would be): judged by the socket (see
//! [`super::super::watch`]), the server's when it had its whole timeout,
//! a real answer when it answered meanwhile. The servers run on threads
//! of their own, so holding up the probe's thread does not hold them up.

use std::io::{Read, Write};
use std::net::{TcpListener as StdListener, TcpStream as StdStream, UdpSocket as StdUdp};

use super::*;
use crate::prober::cpu_wait::tests::{Hog, STARVED};

/// The probes' timeout here; the thread is held up for more than it.
const SHORT: Duration = Duration::from_millis(300);
/// Past the timeout and the most a probe may be given after it: nothing
/// the thread does once it runs again can end the probe in time.
const HELD: Duration = Duration::from_millis(700);
/// Past the timeout but within the time a late request's server is then
/// given: [`SHORT`] and a half, the half left for its answer.
const HELD_WITHIN: Duration = Duration::from_millis(450);

/// How a server on its own thread treats each connection.
#[derive(Clone, Copy)]
enum Peer {
    /// Reads the request head, then answers 200.
    Answers,
    /// Reads the request head, then says nothing.
    Silent,
    /// Says nothing from the start (a banner protocol's silent server).
    Mute,
}

fn thread_server(peer: Peer) -> SocketAddr {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if !matches!(peer, Peer::Mute) {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
            }
            if matches!(peer, Peer::Answers) {
                let _ = stream.write_all(OK);
            }
            held.push(stream);
        }
    });
    addr
}

/// A listener whose accept queue is full: its kernel drops every new
/// SYN, as a server host too busy to accept does.
fn full_listener() -> (socket2::Socket, Vec<StdStream>, SocketAddr) {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    socket.bind(&any.into()).expect("bind");
    socket.listen(0).expect("listen");
    let addr = socket
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("inet");
    // A backlog of 0 queues one connection; one more for good measure,
    // each made in time or not at all (its SYN dropped too).
    let queued = (0..2)
        .filter_map(|_| StdStream::connect_timeout(&addr, Duration::from_millis(200)).ok())
        .collect();
    (socket, queued, addr)
}

/// Runs `prober`'s probe with its thread held up for [`HELD`] from
/// `after` on.
async fn probe_held(prober: &mut Prober, after: Duration) -> Outcome {
    probe_held_for(prober, after, HELD).await
}

/// Runs `prober`'s probe with its thread held up for `held` from `after`
/// on. From the start (`after` zero) the hold begins as the probe first
/// waits, before the thread takes in any event of its socket: its
/// connection is made meanwhile, and what it says first goes out late.
async fn probe_held_for(prober: &mut Prober, after: Duration, held: Duration) -> Outcome {
    tokio::spawn(async move {
        if !after.is_zero() {
            tokio::time::sleep(after).await;
        }
        std::thread::sleep(held);
    });
    prober.probe(SHORT).await
}

fn timed_out(outcome: &Outcome) -> Option<Side> {
    assert!(
        matches!(outcome.result, Err(ProbeError::Timeout(_))),
        "{:?}",
        outcome.result
    );
    outcome.timed_out_on
}

#[tokio::test]
async fn a_request_sent_late_for_the_threads_delay_gets_its_answer() {
    let dir = tempfile::tempdir().expect("dir");
    let c = check("{type: http}", dir.path());
    let mut prober = Prober::new(c, target(thread_server(Peer::Answers)));
    // Held while connecting: the request goes out after the timeout has
    // passed, and the server is given its time from then.
    let outcome = probe_held_for(&mut prober, Duration::ZERO, HELD_WITHIN).await;
    let connect = outcome.phases.get(Phase::Connect);
    assert!(
        connect.is_some_and(|took| took >= SHORT),
        "the request went out late: connect {connect:?}"
    );
    assert_eq!(outcome.result.expect("answered").status, Some(200));
}

#[tokio::test]
async fn a_server_silent_after_a_late_request_is_the_checkers_timeout() {
    let dir = tempfile::tempdir().expect("dir");
    let c = check("{type: http}", dir.path());
    let silent = thread_server(Peer::Silent);
    // The request goes out late, and the probe ends before the server has
    // had a timeout from it: the server was not given its time.
    for held in [HELD_WITHIN, HELD] {
        let mut prober = Prober::new(c.clone(), target(silent));
        let outcome = probe_held_for(&mut prober, Duration::ZERO, held).await;
        assert_eq!(timed_out(&outcome), Some(Side::Checker), "held {held:?}");
    }
}

#[tokio::test]
async fn a_silent_server_is_the_servers_timeout_however_late_the_thread() {
    let dir = tempfile::tempdir().expect("dir");
    let c = check("{type: http}", dir.path());
    let silent = thread_server(Peer::Silent);
    // Held once the request is out, from early on and from just before
    // the timeout.
    for after in [Duration::from_millis(50), SHORT - Duration::from_millis(50)] {
        let mut prober = Prober::new(c.clone(), target(silent));
        let outcome = probe_held(&mut prober, after).await;
        assert_eq!(
            timed_out(&outcome),
            Some(Side::Server),
            "held after {after:?}"
        );
    }
}

#[tokio::test]
async fn a_dropped_syn_is_the_servers_timeout_however_late_the_thread() {
    let dir = tempfile::tempdir().expect("dir");
    let (_listener, _queued, addr) = full_listener();
    for kind in ["{type: tcp}", "{type: http}"] {
        let mut prober = Prober::new(check(kind, dir.path()), target(addr));
        let outcome = probe_held(&mut prober, Duration::ZERO).await;
        assert_eq!(timed_out(&outcome), Some(Side::Server), "{kind}");
        assert!(
            outcome.phases.get(Phase::Connect).is_some(),
            "timed out connecting"
        );
    }
}

#[tokio::test]
async fn a_server_silent_before_its_banner_is_its_timeout_however_late_the_thread() {
    let dir = tempfile::tempdir().expect("dir");
    let c = check("{type: tcp, steps: [{expect: '^220 '}]}", dir.path());
    let mut prober = Prober::new(c, target(thread_server(Peer::Mute)));
    let outcome = probe_held(&mut prober, Duration::from_millis(50)).await;
    assert_eq!(timed_out(&outcome), Some(Side::Server));
}

#[tokio::test]
async fn a_silent_udp_server_is_its_timeout_however_late_the_thread() {
    let dir = tempfile::tempdir().expect("dir");
    let c = check("{type: udp, payload_hex: '00', expect: 'x'}", dir.path());
    let silent = StdUdp::bind("127.0.0.1:0").expect("bind");
    let mut prober = Prober::new(c, target(silent.local_addr().expect("address")));
    let outcome = probe_held(&mut prober, Duration::from_millis(50)).await;
    assert_eq!(timed_out(&outcome), Some(Side::Server));
}

/// On the socket a `dns` probe kept from its last one: the server that
/// answered that probe and then falls silent had its whole timeout.
#[tokio::test]
async fn a_dns_server_silent_on_a_kept_socket_is_its_timeout_however_late_the_thread() {
    let dir = tempfile::tempdir().expect("dir");
    let c = check("{type: dns, name: www.lab.test}", dir.path());
    let server = StdUdp::bind("127.0.0.1:0").expect("bind");
    let mut prober = Prober::new(c, target(server.local_addr().expect("address")));
    std::thread::spawn(move || {
        // The first query back as its answer (QR set, NOERROR, no
        // records), the rest read and left unanswered.
        let mut buf = [0u8; 512];
        let mut answered = false;
        while let Ok((n, from)) = server.recv_from(&mut buf) {
            if !answered && n > 2 {
                buf[2] |= 0x80;
                let _ = server.send_to(&buf[..n], from);
                answered = true;
            }
        }
    });
    prober.probe(SHORT).await.result.expect("answered");
    let outcome = probe_held(&mut prober, Duration::from_millis(50)).await;
    assert_eq!(timed_out(&outcome), Some(Side::Server));
}

/// A probe that never got to send what it says first, its connection
/// made: the server had nothing to answer, the timeout is the checker's.
#[tokio::test]
async fn a_probe_that_never_sent_its_request_is_the_checkers_timeout() {
    let addr = thread_server(Peer::Silent);
    let watch = Watch::new(false);
    let mut phases = Phases::new();
    let never_sends = async {
        let _stream = tcp::connect(&target(addr), &watch, &mut phases).await;
        std::future::pending::<()>().await
    };
    let ended = watch
        .within(std::pin::pin!(never_sends), SHORT, SHORT)
        .await;
    assert_eq!(ended, Err(Some(Side::Checker)));
}

/// A program's probe for `timeout`, its prober made for it (see
/// [`Prober::of_service`]).
async fn program_probe(command: &[&str], timeout: Duration) -> (Outcome, Duration) {
    let dir = tempfile::tempdir().expect("dir");
    let command = command
        .iter()
        .map(|arg| format!("'{arg}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let c = check(&format!("{{type: exec, command: [{command}]}}"), dir.path());
    let mut prober = Prober::new(c, target("127.0.0.1:9".parse().expect("address")))
        .of_service(&exec::Virtual::default());
    let began = Instant::now();
    let outcome = prober.probe(timeout).await;
    (outcome, began.elapsed())
}

/// A program asleep past its timeout (waiting on its server) had its
/// whole timeout, however busy the machine.
#[tokio::test]
async fn a_program_asleep_past_its_timeout_is_the_servers_timeout() {
    let _hog = Hog::start();
    let (outcome, took) = program_probe(&["/bin/sleep", "5"], SHORT).await;
    assert_eq!(timed_out(&outcome), Some(Side::Server));
    assert!(took < SHORT * 2, "judged after {took:?}");
}

/// A program kept off the CPU is owed the time it waited: one that the
/// CPU is given back to meanwhile finishes and passes; one kept off it
/// throughout is the checker's timeout at the second one.
#[tokio::test]
async fn a_program_starved_of_cpu_is_given_its_time_then_is_the_checkers() {
    let dir = tempfile::tempdir().expect("dir");
    let go = dir.path().join("go");
    let spin = format!("while [ ! -e {} ]; do :; done", go.display());
    let starved: Vec<&str> = STARVED
        .iter()
        .copied()
        .chain(["/bin/sh", "-c", &spin])
        .collect();
    let hog = Hog::start();
    let (outcome, took) = program_probe(&starved, SHORT).await;
    assert_eq!(
        timed_out(&outcome),
        Some(Side::Checker),
        "judged after {took:?}"
    );
    assert!(took >= SHORT * 2, "judged after {took:?}");

    let freed = tokio::spawn(async move {
        tokio::time::sleep(SHORT + SHORT / 2).await;
        drop(hog);
        std::fs::write(go, b"").expect("go");
    });
    let (outcome, took) = program_probe(&starved, SHORT).await;
    freed.await.expect("freed");
    assert!(
        outcome.result.is_ok(),
        "{:?} after {took:?}",
        outcome.result
    );
    assert!(took > SHORT, "ended after {took:?}");
    // What it waited is told, for the programs' turns.
    let waited = outcome.program_waited.expect("measured");
    assert!(waited > SHORT / 2, "waited {waited:?}");
}

/// Nothing named (a ping): nothing can tell.
#[tokio::test]
async fn without_a_socket_the_timeout_is_not_judged_here() {
    let watch = Watch::new(false);
    let ended = watch
        .within(std::pin::pin!(std::future::pending::<()>()), SHORT, SHORT)
        .await;
    assert_eq!(ended, Err(None));
}
