//! The `tcp` conversations, `exec` programs and several checks per real
//! server, against servers on 127.0.0.1 scripted here and shell scripts
//! written to a temp dir.

use std::io::Write as _;

use super::*;
use crate::prober::set::ProberSet;

/// A scripted line server: for each connection, `script` in order: a
/// `Some(line)` is written, a `None` reads one line (up to `\n`).
async fn line_server(script: &'static [Option<&'static [u8]>]) -> SocketAddr {
    line_server_tls(script, None).await
}

async fn line_server_tls(
    script: &'static [Option<&'static [u8]>],
    tls: Option<Arc<rustls::ServerConfig>>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let tls = tls.clone();
            tokio::spawn(async move {
                let Some(mut s) = accepted(tcp, tls).await else {
                    return;
                };
                for step in script {
                    match step {
                        Some(bytes) => {
                            if s.write_all(bytes).await.is_err() {
                                return;
                            }
                        }
                        None => {
                            let mut byte = [0u8; 1];
                            loop {
                                match s.read(&mut byte).await {
                                    Ok(1) if byte[0] == b'\n' => break,
                                    Ok(1) => {}
                                    _ => return,
                                }
                            }
                        }
                    }
                }
                // Held open until the client goes.
                let mut rest = [0u8; 64];
                while matches!(s.read(&mut rest).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

/// A server that says `bytes` to each connection and closes it.
async fn say_and_close(bytes: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let _ = tcp.write_all(bytes).await;
        }
    });
    addr
}

const SMTP: &[Option<&[u8]>] = &[
    Some(b"220-mail.lab.test ESMTP\r\n220 ready\r\n"),
    None,
    Some(b"250-mail.lab.test\r\n250-PIPELINING\r\n250 HELP\r\n"),
    None,
    Some(b"221 bye\r\n"),
];

fn reason(result: Result<Success, ProbeError>) -> (&'static str, String) {
    let e = result.expect_err("the probe fails");
    (e.reason(), e.to_string())
}

#[tokio::test]
async fn the_smtp_preset_talks_to_an_smtp_server() {
    let dir = tempfile::tempdir().expect("dir");
    let smtp = check("{type: tcp, preset: smtp}", dir.path());
    let addr = line_server(SMTP).await;
    let outcome = Prober::new(smtp, target(addr)).probe(TIMEOUT).await;
    outcome.result.expect("smtp passes");
    let seen: Vec<Phase> = outcome.phases.iter().map(|(p, _)| p).collect();
    assert_eq!(seen, [Phase::Connect, Phase::Response]);
}

#[tokio::test]
async fn a_wrong_banner_is_expect_with_what_was_read() {
    let dir = tempfile::tempdir().expect("dir");
    let smtp = check("{type: tcp, preset: smtp}", dir.path());
    // Said, then the connection stays open: reported at the timeout.
    let open = line_server(&[Some(b"554 no service here\r\n")]).await;
    let (why, message) = reason(probe(&smtp, &target(open), Duration::from_millis(300)).await);
    assert_eq!(why, "expect", "{message}");
    assert!(message.contains("554 no service here"), "{message}");
    assert!(
        message.starts_with("step 1: expected /(?m)^220 /"),
        "{message}"
    );
    // Said, then closed.
    let closed = say_and_close(b"554 go away\r\n").await;
    let (why, message) = reason(probe(&smtp, &target(closed), TIMEOUT).await);
    assert_eq!(why, "expect", "{message}");
    assert!(
        message.contains("the connection closed, 13 bytes"),
        "{message}"
    );
}

#[tokio::test]
async fn a_conversation_fails_on_a_silent_server_a_closed_port_and_a_wrong_reply() {
    let dir = tempfile::tempdir().expect("dir");
    let redis = check("{type: tcp, preset: redis}", dir.path());
    let silent = line_server(&[None]).await;
    let (why, _) = reason(probe(&redis, &target(silent), Duration::from_millis(300)).await);
    assert_eq!(why, "timeout");
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let (why, _) = reason(probe(&redis, &target(closed_port), TIMEOUT).await);
    assert_eq!(why, "connect");
    let noauth = line_server(&[None, Some(b"-NOAUTH Authentication required.\r\n")]).await;
    let (why, message) = reason(probe(&redis, &target(noauth), Duration::from_millis(300)).await);
    assert_eq!(why, "expect", "{message}");
    let pong = line_server(&[None, Some(b"+PONG\r\n")]).await;
    probe(&redis, &target(pong), TIMEOUT).await.expect("PONG");
}

#[tokio::test]
async fn steps_send_hex_and_expect_bytes() {
    let dir = tempfile::tempdir().expect("dir");
    let mysql = check("{type: tcp, preset: mysql}", dir.path());
    // A MySQL 8 greeting's start: length 0x4a, sequence 0, protocol 10.
    let greeting = line_server(&[Some(b"\x4a\x00\x00\x00\x0a8.0.36\x00")]).await;
    probe(&mysql, &target(greeting), TIMEOUT)
        .await
        .expect("greeting");
    // An error packet (0xff) instead: too many connections.
    let error = say_and_close(b"\x17\x00\x00\x00\xff\x10\x04Too many connections").await;
    let (why, message) = reason(probe(&mysql, &target(error), TIMEOUT).await);
    assert_eq!(why, "expect", "{message}");
    assert!(message.contains("\\xff"), "{message}");
    let hex = check(
        "{type: tcp, steps: [{send_hex: '50 49 4e 47 0d 0a'}, {expect: '^\\+PONG'}]}",
        dir.path(),
    );
    let pong = line_server(&[None, Some(b"+PONG\r\n")]).await;
    probe(&hex, &target(pong), TIMEOUT).await.expect("hex PING");
}

#[tokio::test]
async fn a_conversation_over_implicit_tls_is_verified_as_https_is() {
    let pki = Pki::new("lab CA");
    let (tls, expiry) = pki.server(&["imap.lab.test"], 2090);
    const IMAP: &[Option<&[u8]>] = &[
        Some(b"* OK IMAP4rev2 ready\r\n"),
        None,
        Some(b"* BYE\r\nA1 OK LOGOUT completed\r\n"),
    ];
    let addr = line_server_tls(IMAP, Some(tls)).await;
    let good = check(
        "{type: tcp, preset: imap, tls: true, ca_file: ca.pem, server_name: imap.lab.test}",
        pki.dir.path(),
    );
    let success = probe(&good, &target(addr), TIMEOUT).await.expect("imaps");
    assert_eq!(success.cert_not_after, Some(expiry));
    assert_eq!(success.handshake, Some(Handshake::Full));
    let wrong_name = check(
        "{type: tcp, preset: imap, tls: true, ca_file: ca.pem, server_name: pop.lab.test}",
        pki.dir.path(),
    );
    let (why, _) = reason(probe(&wrong_name, &target(addr), TIMEOUT).await);
    assert_eq!(why, "tls_bad_name");
    let other = Pki::new("another CA");
    let wrong_ca = check(
        "{type: tcp, tls: true, ca_file: ca.pem, server_name: imap.lab.test}",
        other.dir.path(),
    );
    let (why, _) = reason(probe(&wrong_ca, &target(addr), TIMEOUT).await);
    assert_eq!(why, "tls_unknown_ca");
}

/// A real server's checks from YAML (a `checks:` list).
fn checks(yaml: &str, dir: &Path) -> Vec<crate::config::CheckTarget> {
    let text = format!(
        "services:\n  - address: 198.18.0.10:80\n    checks: {yaml}\n    real_servers:\n      - address: 127.0.0.1:80\n"
    );
    let config = config::parse(&text, Path::new("test.yaml"), dir).expect("test checks are valid");
    config.services[0].real_servers[0].checks.clone()
}

/// The service of [`checks`].
fn vs() -> ipvs::ServiceKey {
    ipvs::ServiceKey::Addr {
        protocol: ipvs::Protocol::Tcp,
        addr: "198.18.0.10:80".parse().expect("address"),
    }
}

#[tokio::test]
async fn several_checks_all_must_pass_each_with_its_reason() {
    let dir = tempfile::tempdir().expect("dir");
    let web = server(Answer::Bytes(OK), None).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let list = checks(
        &format!(
            "[{{type: http, port: {}}}, {{type: tcp, port: {}}}, {{type: tcp, port: {}}}]",
            web.port(),
            closed.port(),
            web.port()
        ),
        dir.path(),
    );
    let service = vs();
    let mut set = ProberSet::new(&list, None, &service);
    let out = set.probe(TIMEOUT).await;
    assert_eq!(out.each[..], [None, Some("connect"), None]);
    let e = out.outcome.result.expect_err("one failed");
    assert_eq!(e.reason(), "connect");
    assert!(e.to_string().starts_with("check 2 (tcp): connect: "), "{e}");
    assert!(matches!(e.cause(), ProbeError::Connect(_)));
    // The HTTP check's response phase is there, timed.
    assert!(out.outcome.phases.get(Phase::Response).is_some());

    let both = checks(
        &format!(
            "[{{type: http, port: {}}}, {{type: tcp, port: {}}}]",
            web.port(),
            web.port()
        ),
        dir.path(),
    );
    let out = ProberSet::new(&both, None, &service).probe(TIMEOUT).await;
    assert_eq!(out.each[..], [None, None]);
    assert_eq!(out.outcome.result.expect("both pass").status, Some(200));
}

/// An executable shell script `name` in `dir` with `body`.
fn script(dir: &Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).expect("script");
    writeln!(file, "#!/bin/sh\n{body}").expect("write script");
    drop(file);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.display().to_string()
}

#[tokio::test]
async fn exec_passes_on_exit_0_and_fails_with_its_output_otherwise() {
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("seen");
    let ok = script(
        dir.path(),
        "ok.sh",
        &format!(
            "echo \"$1 $2 $IPVS_CHECKER_RS_ADDRESS $IPVS_CHECKER_RS_PORT $IPVS_CHECKER_VS_ADDRESS $IPVS_CHECKER_VS_PORT $IPVS_CHECKER_VS_PROTOCOL $EXTRA\" > {}",
            out.display()
        ),
    );
    let list = checks(
        &format!("[{{type: exec, command: ['{ok}', '{{rs_address}}', 'port={{rs_port}}'], env: {{EXTRA: more}}}}]"),
        dir.path(),
    );
    let service = vs();
    let result = ProberSet::new(&list, None, &service).probe(TIMEOUT).await;
    result.outcome.result.expect("exit 0");
    assert_eq!(
        std::fs::read_to_string(&out).expect("the script ran"),
        "127.0.0.1 port=80 127.0.0.1 80 198.18.0.10 80 tcp more\n"
    );

    let failing = script(
        dir.path(),
        "down.sh",
        "echo 'db is down'; echo 'ERROR 2003' >&2; exit 1",
    );
    let down = check(
        &format!("{{type: exec, command: ['{failing}']}}"),
        dir.path(),
    );
    let (why, message) = reason(probe(&down, &target(web_addr()), TIMEOUT).await);
    assert_eq!(why, "exit");
    assert_eq!(
        message,
        "exit status 1; stdout: \"db is down\"; stderr: \"ERROR 2003\""
    );
}

#[tokio::test]
async fn a_missing_program_is_reason_exec_naming_it() {
    let dir = tempfile::tempdir().expect("dir");
    let c = check("{type: exec, command: [/nonexistent/check-db]}", dir.path());
    let (why, message) = reason(probe(&c, &target(web_addr()), TIMEOUT).await);
    assert_eq!(why, "exec");
    assert!(
        message.starts_with("exec: cannot run /nonexistent/check-db: No such file or directory"),
        "{message}"
    );
}

fn web_addr() -> SocketAddr {
    "127.0.0.1:80".parse().expect("address")
}

#[tokio::test]
async fn exec_output_is_bounded() {
    let dir = tempfile::tempdir().expect("dir");
    // Four megabytes on stdout, then a failure.
    let loud = script(
        dir.path(),
        "loud.sh",
        "head -c 4000000 /dev/zero | tr '\\0' x; exit 1",
    );
    let c = check(&format!("{{type: exec, command: ['{loud}']}}"), dir.path());
    let (why, message) = reason(probe(&c, &target(web_addr()), Duration::from_secs(10)).await);
    assert_eq!(why, "exit");
    assert!(
        message.len() < 2 * exec::OUTPUT_LIMIT + 200,
        "{}",
        message.len()
    );
    assert!(
        message.ends_with(&format!(
            "(and {} bytes more)",
            4_000_000 - exec::OUTPUT_LIMIT
        )),
        "{}",
        &message[message.len() - 60..]
    );
}

#[tokio::test]
async fn a_hanging_program_is_killed_at_the_timeout_with_its_children() {
    let dir = tempfile::tempdir().expect("dir");
    let pids = dir.path().join("pids");
    let hang = script(
        dir.path(),
        "hang.sh",
        &format!(
            "sleep 60 & echo $! > {p}; sh -c 'echo $$ >> {p}; sleep 60'",
            p = pids.display()
        ),
    );
    let c = check(&format!("{{type: exec, command: ['{hang}']}}"), dir.path());
    let (why, _) = reason(probe(&c, &target(web_addr()), Duration::from_millis(500)).await);
    assert_eq!(why, "timeout");
    let pids: Vec<u32> = std::fs::read_to_string(&pids)
        .expect("the script wrote its children's pids")
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect();
    assert_eq!(pids.len(), 2);
    // SIGKILL is delivered at once; the reaping by their new parent may
    // take a moment.
    for _ in 0..50 {
        if pids.iter().all(|p| lab_harness::process_gone(*p)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for pid in pids {
        assert!(
            lab_harness::process_gone(pid),
            "child {pid} outlived the timeout"
        );
    }
}

#[tokio::test]
async fn exec_dynamic_weight_follows_the_exit_status() {
    let dir = tempfile::tempdir().expect("dir");
    let seven = script(dir.path(), "seven.sh", "exit 7");
    let dynamic = check(
        &format!("{{type: exec, command: ['{seven}'], dynamic_weight: true}}"),
        dir.path(),
    );
    let success = probe(&dynamic, &target(web_addr()), TIMEOUT)
        .await
        .expect("2 to 255 pass");
    assert_eq!(success.weight, Some(5));
    let plain = check(&format!("{{type: exec, command: ['{seven}']}}"), dir.path());
    let (why, message) = reason(probe(&plain, &target(web_addr()), TIMEOUT).await);
    assert_eq!((why, message.as_str()), ("exit", "exit status 7"));
    let one = script(dir.path(), "one.sh", "exit 1");
    let dynamic_one = check(
        &format!("{{type: exec, command: ['{one}'], dynamic_weight: true}}"),
        dir.path(),
    );
    assert_eq!(
        reason(probe(&dynamic_one, &target(web_addr()), TIMEOUT).await).0,
        "exit"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_slow_start_of_a_program_does_not_hold_up_the_probe_thread() {
    // A spawn waits for the child's exec: here 400 ms, as a program
    // started on a loaded machine or from a slow file system takes.
    let mut command = tokio::process::Command::new("/bin/true");
    command.process_group(0).kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and only
    // sleeps (nanosleep is async-signal-safe); it touches no lock or
    // allocation of the parent's.
    unsafe {
        command.pre_exec(|| {
            std::thread::sleep(Duration::from_millis(400));
            Ok(())
        });
    }
    // Another task on the same (only) thread: the longest it waited
    // between two of its 10 ms ticks while the program started.
    let ticker = tokio::spawn(async {
        let mut longest = Duration::ZERO;
        let mut last = Instant::now();
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            longest = longest.max(last.elapsed());
            last = Instant::now();
        }
        longest
    });
    tokio::task::yield_now().await;
    let mut started = exec::spawn(command).await.expect("spawn");
    started.child.wait().await.expect("wait");
    let longest = ticker.await.expect("ticker");
    assert!(
        longest < Duration::from_millis(200),
        "the thread was held up {longest:?}"
    );
}
