//! Small pieces of the pages both daemons serve: plain-text answers, refusing methods other than GET and HEAD, and the
//! health pages `/-/healthy` and `/-/ready`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

/// A plain-text answer with `status`.
pub fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The answer of `/-/healthy`, as Prometheus gives it: 200 while the
/// process serves at all.
pub fn healthy() -> Response<Full<Bytes>> {
    text(StatusCode::OK, "Healthy.\n")
}

/// The answer of `/-/ready`: 200 once the daemon has done what makes its
/// metrics worth scraping, 503 before.
pub fn ready(is_ready: bool) -> Response<Full<Bytes>> {
    if is_ready {
        text(StatusCode::OK, "Ready.\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "Not ready yet.\n")
    }
}

/// 405 with `Allow: GET, HEAD` for any other method; `None` for GET and HEAD.
pub fn reject_method<B>(request: &Request<B>) -> Option<Response<Full<Bytes>>> {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return None;
    }
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_is_503_until_the_daemon_says_so() {
        assert_eq!(healthy().status(), StatusCode::OK);
        assert_eq!(ready(false).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ready(true).status(), StatusCode::OK);
    }

    #[test]
    fn only_get_and_head_are_served() {
        let get = Request::get("/").body(()).expect("request");
        assert!(reject_method(&get).is_none());
        let post = Request::post("/").body(()).expect("request");
        let response = reject_method(&post).expect("refused");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "GET, HEAD");
    }
}
