//! A minimal blocking HTTP/2 client for the probe of the HTTP/2 case: one GET on a TLS
//! connection that negotiated `h2`, its status and its body, so that the probe checks the
//! answer as the HTTP/1.1 probes do ([`crate::client`]).
//!
//! Why not the `h2` crate (ringway's): it is async, and the harness's clients are blocking
//! rustls sessions. One request needs little of the protocol: the preface, a SETTINGS frame
//! and a window large enough for the answer, a HEADERS frame whose fields are all literal
//! (no dynamic table, no Huffman), then frames read until the stream ends. Of the answer's
//! header block only `:status` is read, which comes first (RFC 9113 §8.3): an index of HPACK's
//! static table, or a literal of three digits, perhaps Huffman-coded.

use std::io::{Read, Write};

use anyhow::{Context, Result, bail};

use crate::client::Answer;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The stream of the one request.
const STREAM: u32 = 1;
/// The flow-control window the client opens (stream and connection): larger than any
/// answer a probe reads, so that the client never has to send WINDOW_UPDATE.
const WINDOW: u32 = 16 * 1024 * 1024;
/// SETTINGS_INITIAL_WINDOW_SIZE.
const INITIAL_WINDOW_SIZE: u16 = 0x4;
/// The largest frame the client accepts: the default SETTINGS_MAX_FRAME_SIZE, which it
/// leaves as it is.
const MAX_FRAME: usize = 16 * 1024;
/// The largest answer body a probe takes.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// `:status` values by their index in HPACK's static table (RFC 7541, appendix A).
const STATIC_STATUS: [(u64, u16); 7] = [
    (8, 200),
    (9, 204),
    (10, 206),
    (11, 304),
    (12, 400),
    (13, 404),
    (14, 500),
];

/// Sends `GET path` for `authority` on a connection that negotiated h2 and reads the answer.
pub fn get<S: Read + Write>(stream: &mut S, authority: &str, path: &str) -> Result<Answer> {
    let mut out = PREFACE.to_vec();
    let mut settings = INITIAL_WINDOW_SIZE.to_be_bytes().to_vec();
    settings.extend_from_slice(&WINDOW.to_be_bytes());
    frame(&mut out, SETTINGS, 0, 0, &settings);
    // The connection's window starts at 65535 whatever SETTINGS say.
    frame(
        &mut out,
        WINDOW_UPDATE,
        0,
        0,
        &(WINDOW - 65_535).to_be_bytes(),
    );
    frame(
        &mut out,
        HEADERS,
        END_STREAM | END_HEADERS,
        STREAM,
        &request_block(authority, path),
    );
    stream.write_all(&out).context("write the HTTP/2 request")?;
    stream.flush().context("flush the HTTP/2 request")?;
    read_answer(stream)
}

/// The request's header block: `:method GET` and `:scheme https` indexed, `:path` and
/// `:authority` literal without indexing (name indexed, value not Huffman-coded).
fn request_block(authority: &str, path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x87];
    for (name_index, value) in [(4u64, path), (1, authority)] {
        integer(&mut block, 0x00, 4, name_index);
        integer(&mut block, 0x00, 7, value.len() as u64);
        block.extend_from_slice(value.as_bytes());
    }
    block
}

/// Appends one frame.
fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK integer with a `prefix`-bit prefix after the pattern bits `first`.
fn integer(out: &mut Vec<u8>, first: u8, prefix: u32, value: u64) {
    let max = (1u64 << prefix) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Reads frames until the request's stream ends: the status from its first header block,
/// the body from its DATA frames. SETTINGS and PING are acknowledged; RST_STREAM and
/// GOAWAY are errors.
fn read_answer<S: Read + Write>(stream: &mut S) -> Result<Answer> {
    let mut status = None;
    let mut block = Vec::new();
    let mut body = Vec::new();
    loop {
        let (kind, flags, id, payload) = read_frame(stream)?;
        match kind {
            SETTINGS if flags & ACK == 0 => {
                let mut ack = Vec::new();
                frame(&mut ack, SETTINGS, ACK, 0, &[]);
                stream.write_all(&ack).context("acknowledge SETTINGS")?;
            }
            PING if flags & ACK == 0 => {
                let mut pong = Vec::new();
                frame(&mut pong, PING, ACK, 0, &payload);
                stream.write_all(&pong).context("answer PING")?;
            }
            GOAWAY => bail!("GOAWAY (error code {})", error_code(&payload, 4)),
            RST_STREAM if id == STREAM => {
                bail!("RST_STREAM (error code {})", error_code(&payload, 0))
            }
            HEADERS | CONTINUATION if id == STREAM => {
                let fragment = if kind == HEADERS {
                    unpadded(&payload, flags, flags & PRIORITY != 0)?
                } else {
                    &payload[..]
                };
                block.extend_from_slice(fragment);
                if flags & END_HEADERS != 0 {
                    // The first block is the answer's head; a later one, trailers.
                    if status.is_none() {
                        status = Some(decode_status(&block)?);
                    }
                    block.clear();
                }
                if kind == HEADERS && flags & END_STREAM != 0 {
                    break;
                }
            }
            DATA if id == STREAM => {
                body.extend_from_slice(unpadded(&payload, flags, false)?);
                if body.len() > MAX_BODY {
                    bail!("an answer over {MAX_BODY} bytes");
                }
                if flags & END_STREAM != 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    let status = status.context("the stream ended without a header block")?;
    Ok(Answer {
        status,
        body,
        closes: false,
    })
}

/// One frame: type, flags, stream, payload.
fn read_frame<S: Read>(stream: &mut S) -> Result<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    stream
        .read_exact(&mut head)
        .context("read a frame header")?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    if len > MAX_FRAME {
        bail!("a frame of {len} bytes, over the {MAX_FRAME} the client allows");
    }
    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    stream
        .read_exact(&mut payload)
        .with_context(|| format!("read a frame of {len} bytes"))?;
    Ok((head[3], head[4], id, payload))
}

/// The frame's payload without its padding (and, for HEADERS with PRIORITY, its 5 bytes
/// of priority).
fn unpadded(payload: &[u8], flags: u8, priority: bool) -> Result<&[u8]> {
    let (pad, rest) = if flags & PADDED != 0 {
        let (&pad, rest) = payload
            .split_first()
            .context("a padded frame without padding")?;
        (usize::from(pad), rest)
    } else {
        (0, payload)
    };
    let rest = if priority {
        rest.get(5..)
            .context("a HEADERS frame too short for its priority")?
    } else {
        rest
    };
    rest.len()
        .checked_sub(pad)
        .map(|end| &rest[..end])
        .context("padding longer than the frame")
}

/// The error code of RST_STREAM (at 0) or GOAWAY (at 4, after the last stream id).
fn error_code(payload: &[u8], at: usize) -> u32 {
    payload
        .get(at..at + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// `:status` from the start of an answer's header block (after any dynamic table size
/// update).
fn decode_status(block: &[u8]) -> Result<u16> {
    let mut at = 0;
    loop {
        let first = *block.get(at).context("an empty header block")?;
        if first & 0x80 != 0 {
            let index = read_integer(block, &mut at, 7)?;
            return STATIC_STATUS
                .iter()
                .find(|(i, _)| *i == index)
                .map(|(_, status)| *status)
                .with_context(|| format!("the first header field (index {index}) is not :status"));
        }
        if first & 0xe0 == 0x20 {
            // A dynamic table size update.
            read_integer(block, &mut at, 5)?;
            continue;
        }
        // A literal: with incremental indexing (6-bit index), else 4-bit.
        let prefix = if first & 0xc0 == 0x40 { 6 } else { 4 };
        let index = read_integer(block, &mut at, prefix)?;
        if !(8..=14).contains(&index) {
            bail!("the first header field (name index {index}) is not :status");
        }
        let huffman = block.get(at).is_some_and(|b| b & 0x80 != 0);
        let len = read_integer(block, &mut at, 7)? as usize;
        let value = block
            .get(at..at + len)
            .context("a :status value past the header block")?;
        let text = if huffman {
            huffman_digits(value)?
        } else {
            String::from_utf8_lossy(value).into_owned()
        };
        return text
            .parse()
            .with_context(|| format!("a :status of {text:?}"));
    }
}

/// An HPACK integer with a `prefix`-bit prefix at `block[*at]`; `at` moves past it.
fn read_integer(block: &[u8], at: &mut usize, prefix: u32) -> Result<u64> {
    let max = (1u64 << prefix) - 1;
    let first = *block.get(*at).context("an integer past the header block")?;
    *at += 1;
    let mut value = u64::from(first) & max;
    if value < max {
        return Ok(value);
    }
    for shift in (0..63).step_by(7) {
        let byte = *block.get(*at).context("an integer past the header block")?;
        *at += 1;
        value += u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    bail!("an HPACK integer too long")
}

/// Decimal digits in HPACK's Huffman code (RFC 7541, appendix B): `0`–`2` are the 5-bit
/// codes 0–2, `3`–`9` the 6-bit codes 25–31; the rest of the last byte is padding of ones.
fn huffman_digits(code: &[u8]) -> Result<String> {
    let bits: Vec<bool> = code
        .iter()
        .flat_map(|byte| (0..8).rev().map(move |i| byte >> i & 1 == 1))
        .collect();
    let take = |at: usize, n: usize| -> Option<u8> {
        bits.get(at..at + n)
            .map(|b| b.iter().fold(0u8, |v, &bit| v << 1 | u8::from(bit)))
    };
    let mut text = String::new();
    let mut at = 0;
    while at < bits.len() {
        let rest = &bits[at..];
        if rest.len() < 8 && rest.iter().all(|&b| b) {
            break;
        }
        match (take(at, 5), take(at, 6)) {
            (Some(five @ 0..=2), _) => {
                text.push(char::from(b'0' + five));
                at += 5;
            }
            (_, Some(six @ 25..=31)) => {
                text.push(char::from(b'3' + six - 25));
                at += 6;
            }
            _ => bail!("a Huffman-coded :status that is not digits"),
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{self, Cursor};

    /// A server's bytes to read from, and what the client writes.
    struct Duplex {
        input: Cursor<Vec<u8>>,
        written: Vec<u8>,
    }

    impl Read for Duplex {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Duplex {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn reads_status_and_body_across_frames() -> Result<()> {
        let mut server = Vec::new();
        frame(&mut server, SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
        frame(&mut server, WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]);
        // :status 200 indexed, then the body in two DATA frames, the first padded.
        frame(&mut server, HEADERS, END_HEADERS, STREAM, &[0x88]);
        frame(&mut server, DATA, PADDED, STREAM, b"\x02Hello, \0\0");
        frame(&mut server, DATA, END_STREAM, STREAM, b"World!");
        let mut io = Duplex {
            input: Cursor::new(server),
            written: Vec::new(),
        };
        let answer = get(&mut io, "localhost:8443", "/")?;
        assert_eq!(
            (answer.status, answer.body.as_slice()),
            (200, &b"Hello, World!"[..])
        );
        assert!(io.written.starts_with(PREFACE));
        // The request's fields, then the SETTINGS acknowledgement.
        let ack = [0, 0, 0, SETTINGS, ACK, 0, 0, 0, 0];
        assert!(io.written.ends_with(&ack));
        Ok(())
    }

    #[test]
    fn a_reset_stream_is_an_error() {
        let mut server = Vec::new();
        frame(&mut server, RST_STREAM, 0, STREAM, &[0, 0, 0, 2]);
        let mut io = Duplex {
            input: Cursor::new(server),
            written: Vec::new(),
        };
        let err = get(&mut io, "localhost", "/").expect_err("reset");
        assert!(err.to_string().contains("error code 2"), "{err}");
    }

    #[test]
    fn decodes_literal_and_huffman_statuses() -> Result<()> {
        assert_eq!(decode_status(&[0x8d])?, 404);
        // A table size update, then a literal without indexing: "502" as is.
        assert_eq!(decode_status(&[0x20, 0x08, 0x03, b'5', b'0', b'2'])?, 502);
        // With incremental indexing, Huffman: "502" = 011011 00000 00010.
        assert_eq!(decode_status(&[0x48, 0x82, 0x6c, 0x02])?, 502);
        // "200" = 00010 00000 00000, and one bit of padding.
        assert_eq!(decode_status(&[0x48, 0x82, 0x10, 0x01])?, 200);
        assert!(decode_status(&[0x82]).is_err(), ":method is not :status");
        Ok(())
    }

    #[test]
    fn encodes_the_request_literally() {
        let block = request_block("localhost:8443", "/bytes/65536");
        let mut want = vec![0x82, 0x87, 0x04, 12];
        want.extend_from_slice(b"/bytes/65536");
        want.extend_from_slice(&[0x01, 14]);
        want.extend_from_slice(b"localhost:8443");
        assert_eq!(block, want);
        let mut long = Vec::new();
        integer(&mut long, 0, 7, 200);
        assert_eq!(long, [0x7f, 73]);
    }
}
