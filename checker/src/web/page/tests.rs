//! The status page: every column for up, down and drained servers, every
//! value escaped (a hostile config and error message), the buttons and
//! the script only with the admin API, the Content-Security-Policy's
//! hashes, and the route's headers (basic auth in
//! `status::tests::the_pages_are_behind_basic_auth`).

use http_body_util::BodyExt;
use hyper::{Request, StatusCode};

use super::*;
use crate::web::{CheckStatus, DrainStatus, Page, Pages, SorryServerStatus};

/// The page's clock: 2023-11-14 22:13:20 UTC.
const NOW: f64 = 1_700_000_000.0;

fn server(address: &str, health: &'static str) -> RealServerStatus {
    RealServerStatus {
        address: address.to_owned(),
        created_by_checker: false,
        health,
        health_since: NOW - 300.0,
        weight: Some(3),
        weight_desired: Some(3),
        weight_configured: 3,
        last_probe_success: Some(true),
        last_error: None,
        tls_cert_not_after: None,
        drained: None,
        checks: vec![CheckStatus {
            kind: "http",
            last_success: Some(true),
            reason: None,
        }],
    }
}

fn drain(by: &'static str) -> DrainStatus {
    DrainStatus {
        by,
        user: Some("alice".into()),
        reason: Some("kernel update".into()),
        since: NOW - 60.0,
        until: Some(NOW + 7200.0),
    }
}

/// rs1 up with a certificate for 90 days, rs2 down (refused for 100 s,
/// last 2 s ago), rs3 drained through the API, rs4 by a maintenance file;
/// the sorry server on standby.
fn status() -> Status {
    let mut up = server("198.18.1.11:80", "up");
    up.tls_cert_not_after = Some(NOW as i64 + 90 * 86_400);
    let mut down = server("198.18.1.12:80", "down");
    down.weight = Some(0);
    down.weight_desired = Some(0);
    down.weight_configured = 1;
    down.last_probe_success = Some(false);
    down.last_error = Some(ErrorStatus {
        reason: "connect",
        message: "connect: Connection refused (os error 111)".into(),
        since: NOW - 100.0,
        last: NOW - 2.0,
    });
    down.checks[0] = CheckStatus {
        kind: "http",
        last_success: Some(false),
        reason: Some("connect"),
    };
    let mut drained = server("198.18.1.13:80", "up");
    drained.weight = Some(0);
    drained.weight_desired = Some(0);
    drained.drained = Some(drain("api"));
    let mut maintenance = server("198.18.1.14:80", "up");
    maintenance.drained = Some(DrainStatus {
        user: None,
        until: None,
        reason: Some("198.18.1.14".into()),
        ..drain("maintenance_dir")
    });
    Status {
        mode: "weights".into(),
        state_file: None,
        services: vec![ServiceStatus {
            service: "TCP 198.18.0.10:80".into(),
            quorum_guard_active: false,
            created_by_checker: false,
            sorry_server: Some(SorryServerStatus {
                address: "198.18.1.99:80".into(),
                in_use: false,
                weight: None,
                weight_configured: 1,
                created_by_checker: false,
            }),
            real_servers: vec![up, down, drained, maintenance],
        }],
        removing: vec![],
        config_last_reload_successful: true,
    }
}

/// The row of `address` in `page`.
fn row<'a>(page: &'a str, address: &str) -> &'a str {
    let start = page
        .find(&format!("data-real-server=\"{address}\""))
        .unwrap_or_else(|| panic!("no row of {address} in\n{page}"));
    let start = page[..start].rfind("<tr").expect("row start");
    let end = start + page[start..].find("</tr>").expect("row end");
    &page[start..end]
}

#[test]
fn every_column_for_up_down_and_drained_servers() {
    let page = render(&status(), NOW, false);
    for column in COLUMNS {
        assert!(page.contains(&format!("<th>{column}</th>")), "{column}");
    }
    assert!(page.contains("href=\"/metrics\"") && page.contains("href=\"/status\""));
    assert!(
        page.contains("<th colspan=\"10\">TCP 198.18.0.10:80</th>"),
        "{page}"
    );

    let up = row(&page, "198.18.1.11:80");
    for cell in [
        "<tr class=\"rs up\"",
        "<td class=\"health\">up</td><td class=\"since\">\
         <time datetime=\"2023-11-14T22:08:20.000Z\">2023-11-14 22:08:20 (5m)</time></td>",
        "<td class=\"num weight\">3</td><td class=\"num\">3</td><td class=\"num\">3</td>",
        "<td class=\"drain\"></td><td class=\"error\"></td>",
        "<td class=\"cert\">2024-02-12 22:13:20 (in 90d0h)</td>",
        "<td class=\"checks\">http: ok</td>",
    ] {
        assert!(up.contains(cell), "{cell} not in {up}");
    }
    let down = row(&page, "198.18.1.12:80");
    for cell in [
        "<tr class=\"rs down\"",
        "<td class=\"health\">down</td>",
        "<td class=\"num weight\">0</td><td class=\"num\">0</td><td class=\"num\">1</td>",
        "<td class=\"error\"><span>connect: connect: Connection refused (os error 111) \
         <small>(last 2s ago; since 2023-11-14 22:11:40 (1m40s))</small></span></td>",
        "<td class=\"checks\">http: connect</td>",
    ] {
        assert!(down.contains(cell), "{cell} not in {down}");
    }
    let drained = row(&page, "198.18.1.13:80");
    for cell in [
        "<tr class=\"rs up drained\"",
        "<td class=\"health\">up, drained</td>",
        "<td class=\"drain\">by api (alice) since 2023-11-14 22:12:20 (1m) \
         until 2023-11-15 00:13:20 (in 2h0m): kernel update</td>",
    ] {
        assert!(drained.contains(cell), "{cell} not in {drained}");
    }
    let sorry = &page[page.find("<tr class=\"sorry\">").expect("sorry row")..];
    assert!(
        sorry.starts_with(
            "<tr class=\"sorry\"><td>198.18.1.99:80</td><td class=\"health\">sorry server, standby</td>"
        ),
        "{sorry}"
    );
    // Without the admin API: no button, no script, and the meta refresh
    // itself reloads.
    assert!(
        !page.contains("<button") && !page.contains("<script"),
        "{page}"
    );
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"5\">\n"));
    assert!(!page.contains("<noscript>"));
}

#[test]
fn an_error_of_a_server_up_again_is_greyed_and_certificates_near_their_end_marked() {
    let mut status = status();
    let rs = &mut status.services[0].real_servers[0];
    rs.last_error = Some(ErrorStatus {
        reason: "timeout",
        message: "timeout after 500ms".into(),
        since: NOW - 4000.0,
        last: NOW - 3700.0,
    });
    rs.tls_cert_not_after = Some(NOW as i64 + 3 * 86_400);
    status.services[0].real_servers[1].tls_cert_not_after = Some(NOW as i64 - 3600);
    status.config_last_reload_successful = false;
    let page = render(&status, NOW, false);
    for (address, cell) in [
        (
            "198.18.1.11:80",
            "<span class=\"old\">timeout: timeout after 500ms <small>(last 1h1m ago;",
        ),
        (
            "198.18.1.11:80",
            "<td class=\"cert expiring\">2023-11-17 22:13:20 (in 3d0h)</td>",
        ),
        (
            "198.18.1.12:80",
            "<td class=\"cert expired\">2023-11-14 21:13:20 (expired 1h0m ago)</td>",
        ),
    ] {
        let row = row(&page, address);
        assert!(row.contains(cell), "{cell} not in {row}");
    }
    assert!(
        page.contains("The last configuration reload failed"),
        "{page}"
    );
}

#[test]
fn buttons_and_the_script_only_with_the_admin_api() {
    let page = render(&status(), NOW, true);
    assert!(page.contains("<th>Action</th>"));
    assert!(page.contains("<th colspan=\"11\">"));
    let button = |label: &str, path: &str, address: &str| {
        format!(
            "<td class=\"action\"><button type=\"button\" data-path=\"{path}\" \
             data-service=\"TCP 198.18.0.10:80\" data-real-server=\"{address}\">{label}</button></td>"
        )
    };
    let up = row(&page, "198.18.1.11:80");
    assert!(
        up.contains(&button("Drain", DRAIN_PATH, "198.18.1.11:80")),
        "{up}"
    );
    let down = row(&page, "198.18.1.12:80");
    assert!(
        down.contains(&button("Drain", DRAIN_PATH, "198.18.1.12:80")),
        "{down}"
    );
    let drained = row(&page, "198.18.1.13:80");
    assert!(
        drained.contains(&button("Undrain", UNDRAIN_PATH, "198.18.1.13:80")),
        "{drained}"
    );
    // A maintenance file's drain ends when the file goes: no button.
    let maintenance = row(&page, "198.18.1.14:80");
    assert!(
        maintenance.contains("<td class=\"action\">maintenance file</td>"),
        "{maintenance}"
    );
    assert_eq!(page.matches("<button").count(), 3);
    // The script reloads while it runs; the meta refresh only without it.
    assert_eq!(page.matches("<script>").count(), 1);
    assert!(page.contains("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>"));
    assert!(page.contains("<body data-refresh=\"5\">"));
    assert!(page.contains("<p id=\"result\" role=\"status\"></p>"));
}

#[test]
fn hostile_names_and_messages_are_escaped() {
    let mut status = status();
    status.services[0].service = "TCP <script>alert(1)</script>".into();
    let rs = &mut status.services[0].real_servers[1];
    rs.address = "\"><img src=x onerror=alert(2)>".into();
    if let Some(e) = rs.last_error.as_mut() {
        e.message = "bad body: </td><script>alert(3)</script> & 'quotes'".into();
    }
    rs.drained = Some(DrainStatus {
        user: Some("<b>mallory</b>".into()),
        reason: Some("\"onmouseover=alert(4)".into()),
        ..drain("api")
    });
    status.mode = "<i>weights</i>".into();
    status.state_file = Some("/tmp/<x>".into());
    let page = render(&status, NOW, true);
    assert_eq!(page.matches("<script").count(), 1, "{page}");
    for raw in ["<img", "<b>", "<i>", "<x>", "\"onmouseover", "'quotes'"] {
        assert!(!page.contains(raw), "{raw} unescaped in\n{page}");
    }
    for escaped in [
        "TCP &lt;script&gt;alert(1)&lt;/script&gt;",
        "data-real-server=\"&quot;&gt;&lt;img src=x onerror=alert(2)&gt;\"",
        "bad body: &lt;/td&gt;&lt;script&gt;alert(3)&lt;/script&gt; &amp; &#39;quotes&#39;",
        "(&lt;b&gt;mallory&lt;/b&gt;)",
        ": &quot;onmouseover=alert(4)",
        "&lt;i&gt;weights&lt;/i&gt; mode (state file /tmp/&lt;x&gt;)",
    ] {
        assert!(page.contains(escaped), "{escaped} not in\n{page}");
    }
    assert_eq!(
        Escaped("a<b>&\"c'").to_string(),
        "a&lt;b&gt;&amp;&quot;c&#39;"
    );
}

/// The text between `open` and `close` in `page`.
fn between<'a>(page: &'a str, open: &str, close: &str) -> &'a str {
    let start = page.find(open).expect("open") + open.len();
    &page[start..start + page[start..].find(close).expect("close")]
}

#[test]
fn the_policy_allows_the_inline_style_and_script_by_hash_and_nothing_else() {
    let page = render(&status(), NOW, true);
    let style = between(&page, "<style>", "</style>");
    let script = between(&page, "<script>", "</script>");
    let policy = CONTENT_SECURITY_POLICY.as_str();
    assert!(policy.starts_with("default-src 'none'; "), "{policy}");
    for part in [
        format!("style-src {};", csp_hash(style)),
        format!("script-src {};", csp_hash(script)),
        "connect-src 'self';".to_owned(),
        "form-action 'none';".to_owned(),
        "frame-ancestors 'none'".to_owned(),
    ] {
        assert!(policy.contains(&part), "{part} not in {policy}");
    }
    // The hash of the empty string, as `openssl dgst -sha256 -binary | base64` gives it.
    assert_eq!(
        csp_hash(""),
        "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
    );
    // No other origin: no URL with a scheme in the page but its own links.
    assert!(!page.contains("://") && !page.contains(" src="), "{page}");
}

async fn text(response: Response<Page>) -> String {
    let body = response.into_body().collect().await.expect("body");
    String::from_utf8(body.to_bytes().to_vec()).expect("UTF-8")
}

async fn get(pages: Pages) -> Response<Page> {
    let request = Request::get("/")
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("request");
    pages.handle(request).await
}

#[tokio::test]
async fn the_route_serves_the_page_with_its_headers() {
    let config = crate::config::parse(
        "services:\n  - address: 198.18.0.10:80\n    real_servers:\n      - {address: 198.18.1.11:80}\n",
        std::path::Path::new("test.yaml"),
        std::path::Path::new("."),
    )
    .expect("valid");
    let state = crate::state::Shared::new(&config);
    let response = get(Pages::new(state.clone())).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(
        headers["content-security-policy"],
        CONTENT_SECURITY_POLICY.as_str()
    );
    let page = text(response).await;
    let rs = row(&page, "198.18.1.11:80");
    assert!(rs.contains("<td class=\"health\">unknown</td>"), "{rs}");
    assert!(!page.contains("<button"), "{page}");

    // With the admin API: the buttons.
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let response = get(Pages::new(state).with_admin(crate::admin::Admin::new(tx))).await;
    let page = text(response).await;
    assert!(
        row(&page, "198.18.1.11:80").contains(">Drain</button>"),
        "{page}"
    );
}
