//! Request framing (RFC 9112 section 6.3) that tiny_http does not enforce, and what happens to
//! a connection whose framing is ambiguous.
//!
//! Why it lives here and not in tiny_http: `tiny_http_fork` 0.12.17 (the latest release of the
//! fork, and upstream tiny_http 0.12.0 is older) takes the *first* `Content-Length`, reads one
//! that does not parse as "no body", accepts `+44`, and only refuses `Content-Length` with
//! `Transfer-Encoding` when the length parses. No setting changes that. Worse for us, its
//! per-connection thread parses the next pipelined request as soon as the current body is
//! buffered, before any handler sees the current one; so when we learn that request N was
//! ambiguous, the bytes after it may already be request N+1 in the queue, and tiny_http keeps
//! the connection open. Our layer therefore does three things:
//!
//! 1. `fault` finds every ambiguity from the headers tiny_http hands us (it exposes lookup by
//!    name only, so duplicates are found by hiding each match in a copy).
//! 2. `Intake` is consulted by the worker that pops a request *while it still holds the pop
//!    lock*; tiny_http's queue is FIFO and requests of one connection are queued in order, so
//!    the verdict on N (and the mark on its connection) exists before any worker can pop N+1.
//!    Every later request from a marked connection is discarded unseen: no route, no answer.
//! 3. `close` shuts the connection down after our single 400, on a duplicate of the socket
//!    found by its addresses (tiny_http does not lend us the socket).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tiny_http::{Header, Headers};

/// How long a connection stays marked after its last refused or discarded request: long
/// enough for everything it had pipelined to leave the queue.
const MARK_TTL: Duration = Duration::from_secs(60);

/// Why a request's framing is refused, if it is.
pub(crate) fn fault(headers: &Headers) -> Option<&'static str> {
    let lengths = values(headers, "Content-Length");
    let encodings = values(headers, "Transfer-Encoding");
    if lengths.len() > 1 {
        return Some("more than one Content-Length");
    }
    if let Some(len) = lengths.first() {
        // Plain digits that fit: tiny_http reads an overflowing length as "no body".
        if len.is_empty()
            || !len.bytes().all(|b| b.is_ascii_digit())
            || len.parse::<usize>().is_err()
        {
            return Some("Content-Length is not plain digits");
        }
        if !encodings.is_empty() {
            return Some("both Content-Length and Transfer-Encoding");
        }
    }
    if encodings.len() > 1 {
        // A proxy joins them into one list; tiny_http reads only the first.
        return Some("more than one Transfer-Encoding");
    }
    None
}

/// Every value of a header, in order. `Headers::get` returns only the first, so look it up in
/// a copy, hide the match under another name, and look again.
fn values(headers: &Headers, name: &str) -> Vec<String> {
    if headers.get(name).is_none() {
        return Vec::new();
    }
    let Ok(hidden) = Header::from_bytes(&b"X-Framing-Counted"[..], &b"1"[..]) else {
        return Vec::new();
    };
    let mut copy = headers.clone();
    let mut out = Vec::new();
    while let Some(h) = copy.get_header_mut(name) {
        out.push(h.value.as_str().to_string());
        *h = hidden.clone();
    }
    out
}

/// What a worker does with a request it popped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Admit,
    /// Answer 400 and close the connection.
    Refuse(&'static str),
    /// Pipelined behind a refused request: never routed, never answered.
    Discard,
}

/// Connections whose framing was refused, by peer address. Only touched under the pop lock.
#[derive(Default)]
pub(crate) struct Intake {
    marked: HashMap<SocketAddr, Instant>,
}

impl Intake {
    pub(crate) fn admit(&mut self, rq: &tiny_http::Request) -> Verdict {
        let peer = rq.remote_addr().copied();
        let now = Instant::now();
        if let Some(peer) = peer
            && let Some(seen) = self.marked.get_mut(&peer)
        {
            if now.duration_since(*seen) < MARK_TTL {
                *seen = now;
                return Verdict::Discard;
            }
            self.marked.remove(&peer);
        }
        let Some(reason) = fault(rq.headers()) else {
            return Verdict::Admit;
        };
        if let Some(peer) = peer {
            if self.marked.len() >= 1024 {
                self.marked
                    .retain(|_, seen| now.duration_since(*seen) < MARK_TTL);
            }
            self.marked.insert(peer, now);
        }
        Verdict::Refuse(reason)
    }
}

/// The server side of the TCP connection between `local` (our listener) and `peer`, as a
/// duplicate descriptor we own; `None` if it is gone. Linux only (`/proc/self/fd`); costs a
/// few system calls per open descriptor, paid only for a refused request.
fn find_socket(local: SocketAddr, peer: SocketAddr) -> Option<socket2::Socket> {
    use std::os::fd::{BorrowedFd, RawFd};
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|t| t.as_os_str().as_encoded_bytes().starts_with(b"socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor is used for one `fcntl(F_DUPFD_CLOEXEC)` only. If another
        // thread closed it meanwhile the call fails (EBADF); if the number was reused, the
        // duplicate is of some other open file, which the address checks below reject before
        // anything is done with it. No I/O ever happens on the borrowed number itself.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let Ok(owned) = borrowed.try_clone_to_owned() else {
            continue;
        };
        let sock = socket2::Socket::from(owned);
        let peer_ok = sock.peer_addr().ok().and_then(|a| a.as_socket()) == Some(peer);
        let local_ok = sock
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| {
                a.port() == local.port() && (local.ip().is_unspecified() || a.ip() == local.ip())
            });
        if peer_ok && local_ok {
            return Some(sock);
        }
    }
    None
}

/// The connection of a refused request, found before its answer is written.
pub(crate) struct Closing(Option<socket2::Socket>);

impl Closing {
    /// Stops reading first: tiny_http drains a declared body when the request is dropped, and
    /// with the read side shut that drain ends at once instead of waiting on the client.
    pub(crate) fn begin(local: SocketAddr, peer: Option<SocketAddr>) -> Closing {
        let sock = peer.and_then(|p| find_socket(local, p));
        match &sock {
            Some(s) => {
                let _ = s.shutdown(std::net::Shutdown::Read);
            }
            None => log::warn!("refused framing from {peer:?}: connection not found to close"),
        }
        Closing(sock)
    }

    /// Sends FIN after our answer, while tiny_http still waits for our writer to finish, so
    /// nothing it writes on this connection afterwards (its own 400 for the cut-off stream)
    /// reaches the client.
    pub(crate) fn finish(self) {
        if let Some(s) = self.0 {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> Headers {
        let mut h = Headers::new();
        for l in lines {
            h.push(l.parse().expect("header"));
        }
        h
    }

    #[test]
    fn ambiguous_framing_is_found() {
        for (lines, want) in [
            (&["Content-Length: 0", "Content-Length: 44"][..], true),
            (&["Content-Length: 44", "Content-Length: 44"], true),
            (&["Content-Length: +44"], true),
            (&["Content-Length: 0x2c"], true),
            (&["Content-Length: 4 4"], true),
            (&["Content-Length: 99999999999999999999999"], true),
            (
                &["Content-Length: 0x2c", "Transfer-Encoding: chunked"],
                true,
            ),
            (
                &["Transfer-Encoding: chunked", "Transfer-Encoding: gzip"],
                true,
            ),
            (&["Content-Length: 44"], false),
            (&["Transfer-Encoding: chunked"], false),
            (&["Host: x"], false),
        ] {
            assert_eq!(fault(&headers(lines)).is_some(), want, "{lines:?}");
        }
    }
}
