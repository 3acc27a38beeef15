//! Server-sent events over any `BufRead`, as OpenAI-compatible servers stream them:
//! `data: {...}` lines, blank lines between events, `:` comment (keep-alive) lines, and a
//! final `data: [DONE]`. Lines are collected as bytes and decoded whole, so a multi-byte
//! character or a line split across network reads comes out intact.

use std::io::{self, BufRead};

/// A line longer than this is not an event we can use; refuse it instead of growing.
const MAX_LINE: usize = 1024 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SseEvent {
    /// One event's data (several `data:` lines joined with `\n`).
    Data(String),
    /// `data: [DONE]`.
    Done,
}

pub(crate) struct SseReader<R> {
    inner: R,
    line: Vec<u8>,
}

impl<R: BufRead> SseReader<R> {
    pub(crate) fn new(inner: R) -> SseReader<R> {
        SseReader {
            inner,
            line: Vec::with_capacity(1024),
        }
    }

    /// One line without its `\n` / `\r\n`; `None` at the end of the stream.
    fn read_line(&mut self) -> io::Result<Option<String>> {
        self.line.clear();
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                if self.line.is_empty() {
                    return Ok(None);
                }
                break;
            }
            match buf.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.line.extend_from_slice(&buf[..i]);
                    self.inner.consume(i + 1);
                    break;
                }
                None => {
                    let n = buf.len();
                    self.line.extend_from_slice(buf);
                    self.inner.consume(n);
                }
            }
            if self.line.len() > MAX_LINE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "event line too long",
                ));
            }
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        String::from_utf8(std::mem::take(&mut self.line))
            .map(Some)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "event is not UTF-8"))
    }

    /// The next event, or `None` when the stream ends (with or without `[DONE]`).
    pub(crate) fn next_event(&mut self) -> io::Result<Option<SseEvent>> {
        let mut data: Option<String> = None;
        loop {
            let Some(line) = self.read_line()? else {
                return Ok(data.map(SseEvent::Data));
            };
            if line.is_empty() {
                if let Some(d) = data.take() {
                    return Ok(Some(finish(d)));
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_str(), ""),
            };
            if field == "data" {
                match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some(value.to_string()),
                }
                // Servers that end events with a single newline still send one JSON per line.
                let whole = value == "[DONE]"
                    || (value.starts_with('{')
                        && serde_json::from_str::<serde_json::Value>(value).is_ok());
                if whole && let Some(d) = data.take() {
                    return Ok(Some(finish(d)));
                }
            }
            // `event:`, `id:`, `retry:` carry nothing we use.
        }
    }
}

fn finish(d: String) -> SseEvent {
    if d.trim() == "[DONE]" {
        SseEvent::Done
    } else {
        SseEvent::Data(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    /// A reader that hands out its bytes in fixed slices, like a network.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn events(text: &str, step: usize) -> Vec<SseEvent> {
        let r = BufReader::with_capacity(
            4,
            Trickle {
                data: text.as_bytes().to_vec(),
                pos: 0,
                step,
            },
        );
        let mut sse = SseReader::new(r);
        let mut out = Vec::new();
        while let Some(e) = sse.next_event().expect("valid stream") {
            out.push(e);
        }
        out
    }

    #[test]
    fn openai_stream_in_any_slicing() {
        let text =
            "data: {\"a\":\"₹5\"}\n\n: keep-alive\n\ndata: {\"b\":2}\r\n\r\ndata: [DONE]\n\n";
        for step in [1, 2, 3, 7, 100] {
            assert_eq!(
                events(text, step),
                vec![
                    SseEvent::Data("{\"a\":\"₹5\"}".into()),
                    SseEvent::Data("{\"b\":2}".into()),
                    SseEvent::Done
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn multi_line_data_and_other_fields() {
        let text = "event: x\nid: 1\ndata: line one\ndata: line two\n\n";
        assert_eq!(
            events(text, 5),
            vec![SseEvent::Data("line one\nline two".into())]
        );
    }

    #[test]
    fn a_stream_that_just_ends() {
        assert_eq!(events("data: {\"a\":1}\n\ndata: {\"b\"", 4).len(), 2);
        assert!(events("", 1).is_empty());
    }

    #[test]
    fn broken_utf8_is_an_error_not_a_panic() {
        let mut sse = SseReader::new(&b"data: \xff\xfe\n\n"[..]);
        assert!(sse.next_event().is_err());
    }
}
