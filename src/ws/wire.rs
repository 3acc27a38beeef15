//! The bytes under a WebSocket. A chat answer's pieces are written to the socket by the
//! thread that reads them from the upstream (`Outlet`), beside the socket's own thread and
//! its tungstenite: one hop less per piece than handing each over (`benches/chat.rs`, README
//! "Chat streaming"). So every write, tungstenite's and the outlet's, goes through one lock
//! (`Outbox`) on a blocking socket, which keeps each frame whole, and the outlet writes only
//! for the answer the socket thread named (`begin`), so no piece follows the frame that ends
//! or cancels its answer.

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};

use socket2::SockRef;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

/// The stream tungstenite reads and writes. The socket stays blocking (writes wait at most
/// the socket's write timeout); a read that must not wait asks the kernel not to
/// (`MSG_DONTWAIT`) instead of switching the socket to non-blocking, which would switch the
/// outlet's writes too.
pub(crate) struct Wire {
    stream: TcpStream,
    out: Arc<Mutex<Outbox>>,
    /// Reads return `WouldBlock` at once instead of waiting up to the read timeout.
    pub(crate) dont_wait: bool,
}

/// Everything written to the socket, under one lock.
pub(crate) struct Outbox {
    stream: TcpStream,
    /// The answer whose pieces the outlet may write, and its text shown so far.
    answer: Option<u64>,
    shown: String,
    /// A write failed or timed out: a frame may be cut, nothing more may follow.
    broken: bool,
}

fn lock(out: &Mutex<Outbox>) -> MutexGuard<'_, Outbox> {
    out.lock().unwrap_or_else(|p| p.into_inner())
}

impl Outbox {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let written = self.stream.write_all(buf);
        self.broken = written.is_err();
        written
    }
}

impl Wire {
    pub(crate) fn new(stream: TcpStream) -> io::Result<Wire> {
        let writer = stream.try_clone()?;
        Ok(Wire {
            stream,
            out: Arc::new(Mutex::new(Outbox {
                stream: writer,
                answer: None,
                shown: String::new(),
                broken: false,
            })),
            dont_wait: false,
        })
    }

    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    pub(crate) fn outlet(&self) -> Outlet {
        Outlet(self.out.clone())
    }

    pub(crate) fn is_broken(&self) -> bool {
        lock(&self.out).broken
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.dont_wait {
            return (&self.stream).read(buf);
        }
        // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and `recv` only writes into the
        // buffer, so an initialised buffer stays initialised.
        let buf = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
        SockRef::from(&self.stream).recv_with_flags(buf, libc::MSG_DONTWAIT)
    }
}

impl Write for Wire {
    /// Writes all of `buf` or fails: tungstenite hands over whole frames, and a part written
    /// here with the rest left for later would let an outlet's frame into the gap.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(&self.out).write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the pieces of one answer from another thread (the upstream's reader).
#[derive(Clone)]
pub(crate) struct Outlet(Arc<Mutex<Outbox>>);

impl Outlet {
    /// From now on the pieces of answer `id` may be written; `shown` is what it showed before.
    pub(crate) fn begin(&self, id: u64, shown: &str) {
        let mut out = lock(&self.0);
        out.answer = Some(id);
        out.shown.clear();
        out.shown.push_str(shown);
    }

    /// Writes the next piece of answer `id` as the text frame `frame(shown so far, piece)`.
    /// False when that answer is no longer the one shown, or the socket failed.
    pub(crate) fn show(
        &self,
        id: u64,
        piece: String,
        frame: impl FnOnce(&str, String) -> String,
    ) -> bool {
        let mut out = lock(&self.0);
        if out.answer != Some(id) || out.broken {
            return false;
        }
        out.shown.push_str(&piece);
        let text = frame(&out.shown, piece);
        let mut bytes = Vec::with_capacity(text.len() + 10);
        if Frame::message(text.into_bytes(), OpCode::Data(Data::Text), true)
            .format(&mut bytes)
            .is_err()
        {
            return false;
        }
        out.write_all(&bytes).is_ok()
    }

    /// Stops writing the pieces of answer `id`: what it showed, if it was the one shown.
    pub(crate) fn end(&self, id: u64) -> Option<String> {
        let mut out = lock(&self.0);
        if out.answer != Some(id) {
            return None;
        }
        out.answer = None;
        Some(std::mem::take(&mut out.shown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (Wire, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (server, _) = l.accept().expect("accept");
        (Wire::new(server).expect("wire"), client)
    }

    #[test]
    fn a_read_that_must_not_wait_returns_at_once_and_the_socket_stays_blocking() {
        let (mut wire, mut client) = pair();
        wire.dont_wait = true;
        let mut buf = [0u8; 8];
        let e = wire.read(&mut buf).expect_err("nothing sent yet");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        client.write_all(b"abc").expect("send");
        client.flush().expect("flush");
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(wire.read(&mut buf).expect("read"), 3);
        assert_eq!(&buf[..3], b"abc");
    }

    #[test]
    fn the_outlet_writes_only_the_answer_begun_and_keeps_what_it_showed() {
        let (wire, mut client) = pair();
        let outlet = wire.outlet();
        assert!(!outlet.show(1, "x".into(), |s, p| format!("{s}|{p}")));
        outlet.begin(1, "");
        assert!(outlet.show(1, "ab".into(), |s, p| format!("{s}|{p}")));
        assert!(outlet.show(1, "c".into(), |s, p| format!("{s}|{p}")));
        assert!(!outlet.show(2, "z".into(), |s, p| format!("{s}|{p}")));
        assert_eq!(outlet.end(2), None);
        assert_eq!(outlet.end(1).as_deref(), Some("abc"));
        assert!(!outlet.show(1, "d".into(), |s, p| format!("{s}|{p}")));
        // Two unmasked text frames: 0x81, the length, the payload.
        let mut got = [0u8; 2 + 5 + 2 + 5];
        client.read_exact(&mut got).expect("frames");
        assert_eq!(&got, b"\x81\x05ab|ab\x81\x05abc|c");
    }
}
