//! A whole response, head and body, written with one `write` on the connection.
//!
//! tiny_http's `Response` builds a `Header` object per header (each an allocation and a
//! validation), then copies the body through an 8 KiB buffer into a 1 KiB `BufWriter`: an
//! 11 KB `/allocations` answer left in three `sendto` calls. Profiled under wrk (README
//! "Performance"), that path was a third of a warm read's samples. Here the head is one
//! string and the body follows it in the same buffer, so the kernel sees one write.

use std::cell::RefCell;
use std::io::Write;

use super::response::Resp;

/// Writes `resp` as the answer to `rq`. HEAD gets the head only (with the length the body
/// would have); 1xx and 204 get neither body nor length (RFC 9110 8.6).
///
/// `into_writer` drops the request, and dropping a request drains whatever of its body is
/// still on the socket, waiting for the client: so this path is only for a request with
/// nothing left to read (`settled`). Any other goes through tiny_http's `respond`, which
/// writes first and drains after (tests/hostile_http.rs: a declared body never sent must
/// still get its 413).
pub(crate) fn respond(rq: tiny_http::Request, resp: Resp, settled: bool) {
    if !settled {
        respond_then_drain(rq, resp);
        return;
    }
    let version = rq.http_version().clone();
    let head_only = rq.method() == &tiny_http::Method::Head;
    let bytes = encode(version, resp, head_only);
    let mut w = rq.into_writer();
    if let Err(e) = w.write_all(&bytes).and_then(|_| w.flush()) {
        // The client went away; nothing to tell it.
        log::debug!("writing a response failed: {e}");
    }
}

fn respond_then_drain(rq: tiny_http::Request, resp: Resp) {
    let mut out = tiny_http::Response::from_data(resp.body).with_status_code(resp.status);
    if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], resp.content_type.as_bytes())
    {
        out.add_header(h);
    }
    for (k, v) in resp.headers {
        match tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            Ok(h) => out.add_header(h),
            Err(_) => log::warn!("dropped an invalid response header {k:?}"),
        }
    }
    if let Err(e) = rq.respond(out) {
        log::debug!("writing a response failed: {e}");
    }
}

/// Nothing of the request's body is left on the socket: it was read to its end, or it had
/// none, or tiny_http already buffered it (a `Content-Length` of at most 1 KiB without
/// `Expect: 100-continue`: with it, the client sends the body only once asked, so tiny_http
/// cannot have read it).
pub(crate) fn settled(rq: &tiny_http::Request, fully_read: bool) -> bool {
    let headers = rq.headers();
    fully_read
        || (headers.get("Transfer-Encoding").is_none()
            && headers.get("Expect").is_none()
            && headers
                .get("Connection")
                .is_none_or(|v| !v.as_str().to_ascii_lowercase().contains("upgrade"))
            && rq.body_length().unwrap_or(0) <= 1024)
}

/// The bytes of the answer: status line, `Date`, `Content-Type`, `Content-Length`, our headers
/// (a header whose name or value could break the head is dropped), the blank line, the body.
fn encode(version: tiny_http::HTTPVersion, resp: Resp, head_only: bool) -> Vec<u8> {
    let no_body = resp.status < 200 || resp.status == 204;
    let mut out = Vec::with_capacity(256 + resp.headers.len() * 48 + resp.body.len());
    let reason = tiny_http::StatusCode(resp.status).default_reason_phrase();
    // A version tiny_http parsed: 1.0 or 1.1 (it answers 505 to others itself).
    let _ = write!(
        out,
        "HTTP/{}.{} {} {reason}\r\nDate: ",
        version.0, version.1, resp.status
    );
    http_date(&mut out);
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(resp.content_type.as_bytes());
    if !no_body {
        let _ = write!(out, "\r\nContent-Length: {}", resp.body.len());
    }
    out.extend_from_slice(b"\r\n");
    for (name, value) in &resp.headers {
        if is_token(name) && is_field_value(value) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        } else {
            log::warn!("dropped an invalid response header {name:?}");
        }
    }
    out.extend_from_slice(b"\r\n");
    if !head_only && !no_body {
        out.extend_from_slice(&resp.body);
    }
    out
}

/// A header name: RFC 9110 `token`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value we send: visible ASCII and inner spaces or tabs, never CR or LF.
pub(crate) fn is_field_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

thread_local! {
    /// The `Date` value of the current second on this thread: (unix second, IMF-fixdate).
    static DATE: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
}

/// Appends the current time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), formatted
/// once a second per thread.
fn http_date(out: &mut Vec<u8>) {
    let now = jiff::Timestamp::now();
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != now.as_second() {
            *cached = (
                now.as_second(),
                now.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            );
        }
        out.extend_from_slice(cached.1.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &[u8], headers: &[(&str, &str)]) -> Resp {
        let mut r = Resp::empty(status);
        r.body = body.to_vec();
        r.headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        r
    }

    fn text(v: Vec<u8>) -> String {
        String::from_utf8(v).expect("ascii")
    }

    #[test]
    fn a_json_answer_has_its_length_headers_and_body_after_one_blank_line() {
        let mut r = resp(201, br#"{"a":1}"#, &[("X-Request-ID", "abc")]);
        r.content_type = "application/json";
        let out = text(encode(tiny_http::HTTPVersion(1, 1), r, false));
        let (head, body) = out.split_once("\r\n\r\n").expect("blank line");
        assert_eq!(body, r#"{"a":1}"#);
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(lines[0], "HTTP/1.1 201 Created");
        assert!(lines[1].starts_with("Date: ") && lines[1].ends_with(" GMT"));
        assert_eq!(lines[1].len(), "Date: Sun, 06 Nov 1994 08:49:37 GMT".len());
        assert_eq!(
            &lines[2..],
            [
                "Content-Type: application/json",
                "Content-Length: 7",
                "X-Request-ID: abc"
            ]
        );
    }

    #[test]
    fn head_keeps_the_length_and_drops_the_body_and_204_has_neither() {
        let out = text(encode(
            tiny_http::HTTPVersion(1, 0),
            resp(200, b"hello", &[]),
            true,
        ));
        assert!(out.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(out.contains("\r\nContent-Length: 5\r\n"));
        assert!(out.ends_with("\r\n\r\n"));
        let out = text(encode(
            tiny_http::HTTPVersion(1, 1),
            resp(204, b"", &[]),
            false,
        ));
        assert!(!out.contains("Content-Length"));
        assert!(out.ends_with("\r\n\r\n"));
    }

    #[test]
    fn a_header_that_could_split_the_head_is_dropped() {
        let r = resp(
            200,
            b"x",
            &[
                ("X-Ok", "fine"),
                ("X-Bad", "a\r\nSet-Cookie: x=1"),
                ("Bad Name", "v"),
                ("X-Utf8", "é"),
            ],
        );
        let out = text(encode(tiny_http::HTTPVersion(1, 1), r, false));
        assert!(out.contains("\r\nX-Ok: fine\r\n"));
        assert!(
            !out.contains("Set-Cookie") && !out.contains("Bad Name") && !out.contains("X-Utf8")
        );
    }
}
