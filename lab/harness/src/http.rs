//! One HTTP GET over a TCP stream the test opened (in whatever namespace
//! it opened it): no client program started, which costs a few hundred
//! milliseconds in the emulated VM, and no HTTP client crate for what is
//! one request and one answer.

use std::io::{self, Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

/// GET `target` (a path with its query) over HTTP/1.1 with `Connection:
/// close`; the status and the body, whatever the status.
pub fn get(mut stream: TcpStream, target: &str) -> io::Result<(u16, String)> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not HTTP: {answer:?}")))?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("\r\ntransfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// The body of a `Transfer-Encoding: chunked` answer (Go's net/http, so
/// node_exporter and Prometheus, sends its larger answers so).
fn dechunk(mut rest: &str) -> io::Result<String> {
    let bad = |what: &str| io::Error::other(format!("bad chunked body: {what}"));
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").ok_or_else(|| bad("no size line"))?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad(size))?;
        if size == 0 {
            return Ok(body);
        }
        let chunk = after.get(..size).ok_or_else(|| bad("short chunk"))?;
        body.push_str(chunk);
        rest = after[size..]
            .strip_prefix("\r\n")
            .ok_or_else(|| bad("no CRLF after a chunk"))?;
    }
}
