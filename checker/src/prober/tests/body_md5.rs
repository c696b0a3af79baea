//! `body_md5` (keepalived's `digest`): the MD5 of the whole body, taken
//! frame by frame, against servers on 127.0.0.1. The expected digests are
//! `md5sum`'s (or Python's hashlib), not the crate's.

use super::*;

/// An answer made at run time, kept for the test's life.
fn leaked(answer: Vec<u8>) -> &'static [u8] {
    Box::leak(answer.into_boxed_slice())
}

/// A 200 answer with `body`, its length in Content-Length.
fn sized(body: &[u8]) -> &'static [u8] {
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body);
    leaked(answer)
}

#[tokio::test]
async fn the_right_md5_passes_and_another_fails_with_its_reason() {
    let ok = server(Answer::Bytes(OK), None).await;
    // `printf 'healthy\n' | md5sum`, in capitals: either case is read.
    let right = check(
        "{type: http, body_md5: 3B1FB749C971D7A2C6A517B37F735DF2}",
        Path::new("."),
    );
    probe(&right, &target(ok), TIMEOUT)
        .await
        .expect("the body's MD5");

    let wrong = check(
        "{type: http, body_md5: eff5bc1ef8ec9d03e640fc4370f5eacd}",
        Path::new("."),
    );
    let e = probe(&wrong, &target(ok), TIMEOUT)
        .await
        .expect_err("another body's MD5");
    assert_eq!(
        (e.reason(), e.to_string()),
        (
            "body_md5",
            "body MD5: 3b1fb749c971d7a2c6a517b37f735df2, expected eff5bc1ef8ec9d03e640fc4370f5eacd"
                .into()
        )
    );

    // The status is judged first, as keepalived does.
    let error = server(Answer::Bytes(ERROR), None).await;
    let e = probe(&right, &target(error), TIMEOUT)
        .await
        .expect_err("500");
    assert_eq!(e.reason(), "status", "{e}");
}

#[tokio::test]
async fn the_md5_covers_every_chunk_of_a_chunked_body() {
    // Two chunks of 1000 bytes: `'ab' * 1000`, whose MD5 is
    // 6e3d828871c0d78f4952331a6a7bba68.
    let half = "ab".repeat(500);
    let answer = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3e8\r\n{half}\r\n3e8\r\n{half}\r\n0\r\n\r\n"
    );
    let addr = server(Answer::Bytes(leaked(answer.into_bytes())), None).await;
    let whole = check(
        "{type: http, body_md5: 6e3d828871c0d78f4952331a6a7bba68}",
        Path::new("."),
    );
    probe(&whole, &target(addr), TIMEOUT)
        .await
        .expect("the MD5 of both chunks");
    // The MD5 of the first chunk alone (`'ab' * 500`) is not the body's.
    let first = check(
        "{type: http, body_md5: d680e0fe66a627955231364403c30efb}",
        Path::new("."),
    );
    let e = probe(&first, &target(addr), TIMEOUT)
        .await
        .expect_err("the first chunk only");
    assert_eq!(e.reason(), "body_md5", "{e}");
}

#[tokio::test]
async fn a_body_past_64_kib_fails_as_its_md5_is_not_known() {
    // 65,536 bytes of `a`: `head -c 65536 /dev/zero | tr '\0' a | md5sum`.
    let at_limit = server(Answer::Bytes(sized(&[b'a'; 65536])), None).await;
    let limit = check(
        "{type: http, body_md5: 2d61aa54b58c2e94403fb092c3dbc027}",
        Path::new("."),
    );
    probe(&limit, &target(at_limit), TIMEOUT)
        .await
        .expect("a body of exactly the limit");

    let past = server(Answer::Bytes(sized(&[b'a'; 65537])), None).await;
    let e = probe(&limit, &target(past), TIMEOUT)
        .await
        .expect_err("a byte more");
    assert_eq!(
        (e.reason(), e.to_string()),
        (
            "body_md5",
            "body MD5: the body is longer than 64 KiB, the most a check reads: its MD5 is not known"
                .into()
        )
    );
}
