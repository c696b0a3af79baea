//! The set against real sockets: readiness kept and cleared by what a
//! read saw, late events of a closed socket, a set a runtime, and first
//! bytes sent as a connection is made.

use std::time::Duration;

use super::*;

fn socket() -> Socket {
    Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM.nonblocking(),
        None,
    )
    .expect("socket")
}

fn poll_ready(socket: &Registered, direction: Direction) -> Poll<io::Result<Readiness>> {
    socket.poll_ready(&mut Context::from_waker(Waker::noop()), direction)
}

#[tokio::test]
async fn readiness_seen_before_an_event_is_not_cleared_by_a_read_that_found_nothing() {
    let socket = Registered::new(socket()).expect("added");
    assert!(poll_ready(&socket, Direction::Read).is_pending());
    socket.event(IN);
    let Poll::Ready(Ok(seen)) = poll_ready(&socket, Direction::Read) else {
        panic!("readable after an event");
    };
    assert!(poll_ready(&socket, Direction::Write).is_pending());
    // A read found nothing, but an event came between: still ready.
    socket.event(IN);
    socket.clear(Direction::Read, seen);
    let Poll::Ready(Ok(seen)) = poll_ready(&socket, Direction::Read) else {
        panic!("an event came after what the read saw");
    };
    socket.clear(Direction::Read, seen);
    assert!(poll_ready(&socket, Direction::Read).is_pending());
    // A hang-up is ready both ways, and a read's clear leaves it.
    socket.event(HUP);
    let Poll::Ready(Ok(seen)) = poll_ready(&socket, Direction::Read) else {
        panic!("a hang-up is readable");
    };
    assert!(seen.is_closed());
    socket.clear(Direction::Read, seen);
    assert!(poll_ready(&socket, Direction::Write).is_ready());
    assert!(poll_ready(&socket, Direction::Read).is_ready());
    // Connecting again drops all of it.
    socket.connecting();
    assert!(poll_ready(&socket, Direction::Read).is_pending());
    assert!(poll_ready(&socket, Direction::Write).is_pending());
}

#[tokio::test]
async fn an_event_for_a_closed_socket_is_not_taken_for_the_next_in_its_slot() {
    let first = Registered::new(socket()).expect("added");
    let (slot, generation) = (first.slot, first.generation);
    drop(first);
    let next = Registered::new(socket()).expect("added");
    assert_eq!(next.slot, slot, "the slot given up is taken again");
    let late = libc::epoll_event {
        events: IN | OUT,
        u64: tag(generation, slot),
    };
    next.set.dispatch(&[late], &mut Vec::new());
    assert!(poll_ready(&next, Direction::Read).is_pending());
    assert!(poll_ready(&next, Direction::Write).is_pending());
}

#[test]
fn each_runtime_has_its_set_and_a_socket_of_one_stopped_fails_its_waits() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    };
    let (first, second) = (runtime(), runtime());
    let kept = first.block_on(async { Registered::new(socket()).expect("added") });
    second.block_on(async {
        let other = Registered::new(socket()).expect("added");
        assert!(!Arc::ptr_eq(&kept.set, &other.set));
        assert!(other.in_current_set());
        assert!(!kept.in_current_set());
    });
    first.block_on(async { assert!(kept.in_current_set()) });
    drop(first);
    assert!(!kept.set.driven.load(Ordering::Acquire));
    let Poll::Ready(Err(e)) = poll_ready(&kept, Direction::Read) else {
        panic!("a wait on a stopped set fails");
    };
    assert!(e.to_string().contains("stopped"), "{e}");
    // The next socket made on this thread goes to the set of the
    // runtime it is made on.
    second.block_on(async {
        let again = Registered::new(socket()).expect("added");
        assert!(again.set.driven.load(Ordering::Acquire));
    });
}

/// A waker that counts its wakes.
#[derive(Debug, Default)]
struct Wakes(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Wakes {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn first_bytes_go_as_the_connection_is_made_and_only_the_answer_wakes_the_probe() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let first: Arc<[u8]> = Arc::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
    let socket = Registered::new(socket()).expect("added");
    socket.connecting();
    socket.send_when_connected(&first);
    let _ = socket
        .socket()
        .connect(&listener.local_addr().expect("address").into());
    let wakes = Arc::new(Wakes::default());
    let waker = Waker::from(wakes.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(socket.poll_first_sent(&mut cx).is_pending());

    // The server gets the bytes, and the probe was not woken for them.
    let (mut server, _) = listener.accept().await.expect("accept");
    let mut got = vec![0; first.len()];
    tokio::time::timeout(Duration::from_secs(5), server.read_exact(&mut got))
        .await
        .expect("the first bytes, sent by the set")
        .expect("read");
    assert_eq!(got, *first);
    assert_eq!(wakes.count(), 0, "woken for the connection alone");

    // The answer wakes it, once; the bytes are sent, whole.
    server
        .write_all(b"HTTP/1.1 200 OK\r\n\r\n")
        .await
        .expect("answer");
    for _ in 0..1000 {
        if wakes.count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(wakes.count(), 1);
    let Poll::Ready(Ok(Some(sent))) = socket.poll_first_sent(&mut cx) else {
        panic!("sent as the connection was made");
    };
    assert_eq!(sent.len, first.len());
    assert!(poll_ready(&socket, Direction::Read).is_ready());
}

#[tokio::test]
async fn first_bytes_of_a_refused_connection_are_not_sent_and_the_probe_is_told() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    let first: Arc<[u8]> = Arc::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
    let socket = Registered::new(socket()).expect("added");
    socket.connecting();
    socket.send_when_connected(&first);
    let _ = socket.socket().connect(&addr.into());
    let told = std::future::poll_fn(|cx| socket.poll_first_sent(cx)).await;
    assert!(matches!(told, Ok(None)), "{told:?}");
    let Poll::Ready(Ok(seen)) = poll_ready(&socket, Direction::Write) else {
        panic!("the refusal is seen");
    };
    assert!(seen.is_closed());
}
