//! `FLOOR_TOKIO`: the floor's `http` checks as ipvs-checker's probe
//! threads run theirs, on a current-thread tokio runtime (see main.rs).

use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};

use super::{answered, connect, connect_from, Counts, Schedule, TIMEOUT};

/// The `http` checks as tasks of a current-thread tokio runtime, on the
/// poll loop's schedule; with `reuse`, each real server's socket kept
/// between its checks.
pub(crate) fn run(
    request: Vec<u8>,
    servers: Vec<SocketAddr>,
    interval: Duration,
    reuse: bool,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let schedule = Schedule::new(servers.len(), interval);
    let busy: Rc<Vec<Cell<bool>>> = Rc::new(servers.iter().map(|_| Cell::new(false)).collect());
    let spares: Rc<Vec<RefCell<Option<TcpStream>>>> =
        Rc::new(servers.iter().map(|_| RefCell::new(None)).collect());
    let counts = Rc::new(RefCell::new(Counts::default()));
    let request: Rc<[u8]> = request.into();
    local.block_on(&runtime, async move {
        let start = tokio::time::Instant::now();
        let mut next_report = start + Duration::from_secs(10);
        for turn in 0u64.. {
            let at = start + schedule.at(turn);
            tokio::time::sleep_until(at).await;
            if schedule.late(at.elapsed()) {
                counts.borrow_mut().late_groups += 1;
            }
            for server in schedule.members(turn) {
                if busy[server].replace(true) {
                    continue;
                }
                let (busy, counts, request) = (busy.clone(), counts.clone(), request.clone());
                let spares = spares.clone();
                let addr = servers[server];
                tokio::task::spawn_local(async move {
                    let spare = reuse.then(|| &spares[server]);
                    let checked =
                        tokio::time::timeout(TIMEOUT, check_on_tokio(addr, &request, spare)).await;
                    let mut counts = counts.borrow_mut();
                    counts.timeouts += u64::from(checked.is_err());
                    counts.ended(matches!(checked, Ok(Ok(true))));
                    busy[server].set(false);
                });
            }
            if tokio::time::Instant::now() >= next_report {
                counts.borrow().report();
                next_report += Duration::from_secs(10);
            }
        }
    });
    Ok(())
}

/// One `http` check on tokio: whether it passed. Over the `spare` socket
/// if there is one, left there, disconnected, when the check ends.
async fn check_on_tokio(
    addr: SocketAddr,
    request: &[u8],
    spare: Option<&RefCell<Option<TcpStream>>>,
) -> std::io::Result<bool> {
    let socket = match spare.and_then(|s| s.borrow_mut().take()) {
        Some(socket) => connect_from(socket.into(), addr)?,
        None => connect(addr)?,
    };
    let mut stream = tokio::net::TcpStream::from_std(socket)?;
    let passed = exchange(&mut stream, request).await;
    if let Some(spare) = spare {
        let socket = stream.into_std()?;
        ipvs_checker::prober::tcp::disconnect(&socket)?;
        spare.replace(Some(socket));
    }
    passed
}

async fn exchange(stream: &mut tokio::net::TcpStream, request: &[u8]) -> std::io::Result<bool> {
    if stream.ready(Interest::WRITABLE).await?.is_write_closed() {
        return Ok(false);
    }
    stream.write_all(request).await?;
    let mut got = Vec::with_capacity(512);
    let mut buf = [0u8; 4096];
    loop {
        let len = stream.read(&mut buf).await?;
        if len == 0 {
            return Ok(answered(&got));
        }
        got.extend_from_slice(&buf[..len]);
        if answered(&got) {
            return Ok(true);
        }
    }
}
