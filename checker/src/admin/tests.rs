//! The admin API's HTTP side: off unless enabled, what it accepts, and
//! the order it hands the loop.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};

use super::*;
use crate::state::Shared;
use crate::web::Pages;

async fn call(pages: Pages, method: &str, path: &str, body: &str) -> (StatusCode, String) {
    call_with(
        pages,
        method,
        path,
        body,
        &[("content-type", "application/json")],
    )
    .await
}

/// [`call`] with these `headers` (and no others but the auth).
async fn call_with(
    pages: Pages,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        // alice:secret, as the server has checked it.
        .header(hyper::header::AUTHORIZATION, "Basic YWxpY2U6c2VjcmV0");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    let (status, _, body) = crate::web::tests::read(pages.handle(request).await).await;
    (status, body)
}

#[tokio::test]
async fn the_admin_api_is_off_unless_enabled() {
    let body = r#"{"service": "TCP/198.18.0.10:80", "real_server": "198.18.1.11:80"}"#;
    let pages = Pages::new(Shared::default());
    assert_eq!(
        call(pages, "POST", DRAIN_PATH, body).await,
        (
            StatusCode::FORBIDDEN,
            "the admin API is off: start ipvs-checker with --web.enable-admin-api\n".into()
        )
    );
}

/// A drain request reaches the loop as an order with the user and the
/// parsed duration; the loop's answer is the response.
#[tokio::test]
async fn a_drain_request_becomes_an_order_for_the_loop() {
    let (tx, mut rx) = mpsc::channel::<Command>(1);
    let pages = Pages::new(Shared::default()).with_admin(Admin::new(tx));
    let the_loop = tokio::spawn(async move {
        let mut orders = Vec::new();
        while let Some(command) = rx.recv().await {
            let answer = match &command.order {
                Order::Drain { .. } => Ok("drained".into()),
                Order::Undrain { .. } => Err(Refusal::Conflict("a maintenance file".into())),
            };
            orders.push(command.order);
            let _ = command.reply.send(answer);
        }
        orders
    });
    let drain = r#"{"service": "TCP/198.18.0.10:80", "real_server": "198.18.1.11:80", "reason": "kernel", "until": "2h"}"#;
    assert_eq!(
        call(pages.clone(), "POST", DRAIN_PATH, drain).await,
        (StatusCode::OK, "drained\n".into())
    );
    let undrain = r#"{"service": "FWM/1", "real_server": "198.18.1.11"}"#;
    assert_eq!(
        call(pages.clone(), "POST", UNDRAIN_PATH, undrain).await,
        (StatusCode::CONFLICT, "a maintenance file\n".into())
    );
    let (status, text) = call(pages.clone(), "GET", DRAIN_PATH, "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{text}");
    let (status, text) = call(pages.clone(), "POST", DRAIN_PATH, "{\"service\": 1}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        text.starts_with("the body is not a drain request: "),
        "{text}"
    );
    let bad_until = r#"{"service": "FWM/1", "real_server": "198.18.1.11", "until": "soon"}"#;
    let (status, text) = call(pages.clone(), "POST", DRAIN_PATH, bad_until).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.starts_with("until: "), "{text}");
    let (status, _) = call(pages.clone(), "POST", "/api/v1/other", drain).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    drop(pages);
    let orders = the_loop.await.expect("join");
    assert_eq!(
        orders,
        vec![
            Order::Drain {
                service: "TCP/198.18.0.10:80".into(),
                real_server: "198.18.1.11:80".into(),
                reason: Some("kernel".into()),
                until: Some(Duration::from_secs(7200)),
                user: Some("alice".into()),
            },
            Order::Undrain {
                service: "FWM/1".into(),
                real_server: "198.18.1.11".into(),
            },
        ]
    );
}

/// What a page of another site can make a logged-in browser send is
/// refused before the loop hears of it: a form (urlencoded, or text/plain
/// shaped as JSON), a JSON request marked cross-site or same-site. The
/// page's own request (same-origin) and a CLI's (no Sec-Fetch-Site) go
/// through.
#[tokio::test]
async fn cross_site_requests_are_refused() {
    let (tx, mut rx) = mpsc::channel::<Command>(4);
    let pages = Pages::new(Shared::default()).with_admin(Admin::new(tx));
    let the_loop = tokio::spawn(async move {
        let mut orders = 0;
        while let Some(command) = rx.recv().await {
            orders += 1;
            let _ = command.reply.send(Ok("drained".into()));
        }
        orders
    });
    // <form enctype="text/plain"> with an input named
    // {"service":"FWM/1","real_server":"198.18.1.11","reason":" and
    // the value "}: a body that parses as a drain request.
    let form_json = r#"{"service":"FWM/1","real_server":"198.18.1.11","reason":"="}"#;
    let refusals = [
        (
            form_json,
            vec![("content-type", "text/plain")],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "service=FWM%2F1&real_server=198.18.1.11",
            vec![("content-type", "application/x-www-form-urlencoded")],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (form_json, vec![], StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (
            form_json,
            vec![
                ("content-type", "application/json"),
                ("sec-fetch-site", "cross-site"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            form_json,
            vec![
                ("content-type", "application/json"),
                ("sec-fetch-site", "same-site"),
            ],
            StatusCode::FORBIDDEN,
        ),
    ];
    for (body, headers, want) in &refusals {
        let (status, text) = call_with(pages.clone(), "POST", DRAIN_PATH, body, headers).await;
        assert_eq!(status, *want, "{headers:?}: {text}");
    }
    let (status, text) = call_with(
        pages.clone(),
        "POST",
        DRAIN_PATH,
        form_json,
        &[("content-type", "text/plain")],
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the admin API takes JSON: send Content-Type: application/json (not text/plain)\n"
        )
    );
    for headers in [
        vec![
            ("content-type", "application/json; charset=utf-8"),
            ("sec-fetch-site", "same-origin"),
        ],
        vec![("content-type", "Application/JSON")],
    ] {
        let (status, text) =
            call_with(pages.clone(), "POST", DRAIN_PATH, form_json, &headers).await;
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::OK, "drained\n"),
            "{headers:?}"
        );
    }
    drop(pages);
    assert_eq!(
        the_loop.await.expect("join"),
        2,
        "only the two accepted reached the loop"
    );
}

/// A body that never ends (a client sending it a byte a second, or not
/// at all) is answered 408 after the body's time, and the loop hears of
/// nothing: the connection is not held for as long as the client likes.
#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_refused() {
    let (tx, mut rx) = mpsc::channel::<Command>(1);
    let admin = Admin {
        loop_tx: tx,
        body_read: Duration::from_millis(200),
    };
    let pages = Pages::new(Shared::default()).with_admin(admin);
    let never = http_body_util::StreamBody::new(futures_util::stream::pending::<
        Result<hyper::body::Frame<Bytes>, std::convert::Infallible>,
    >());
    let request = Request::builder()
        .method("POST")
        .uri(DRAIN_PATH)
        .header(hyper::header::AUTHORIZATION, "Basic YWxpY2U6c2VjcmV0")
        .header("content-type", "application/json")
        .body(never)
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(10), pages.handle(request))
        .await
        .expect("answered while the body was still on its way");
    let (status, _, text) = crate::web::tests::read(response).await;
    assert_eq!(
        (status, text.as_str()),
        (
            StatusCode::REQUEST_TIMEOUT,
            "the body did not arrive within 200ms\n"
        )
    );
    assert!(rx.try_recv().is_err(), "no order for the loop");
}
