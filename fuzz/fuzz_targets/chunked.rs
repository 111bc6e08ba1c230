//! The chunked decoder (`http::ChunkedDecoder`) on any bytes, a request's and an answer's
//! (whose trailers and line ends are looser): one call, in place, and fed in pieces cut at
//! pseudo-random points and byte by byte, as reads deliver a body. All give the same data,
//! the same end and the same error. Then the input's bytes as a body:
//! chunked with pseudo-random sizes, extensions and trailers, decoded back to themselves.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::http::{ChunkedDecoder, DecodeProgress, HttpError, MAX_EXTENSIONS, MAX_TRAILERS};
use ringway_fuzz::{Rng, random_pieces};

/// What decoding a whole input gave: the data, the bytes consumed and whether the body
/// ended; or the error.
type Outcome = Result<(Vec<u8>, usize, bool), HttpError>;

/// A fresh decoder of one kind.
type Make = fn() -> ChunkedDecoder;

fuzz_target!(|data: &[u8]| {
    let mut rng = Rng::from_input(data);
    let pieces = random_pieces(data, &mut rng);
    for make in [ChunkedDecoder::new as Make, ChunkedDecoder::for_answer] {
        let whole = one_call(data, make);
        assert_eq!(in_place(data, make), whole, "in place");
        assert_eq!(in_pieces(&pieces, make), whole, "in pieces");
        if data.len() <= 1024 {
            let bytes: Vec<&[u8]> = data.chunks(1).collect();
            assert_eq!(in_pieces(&bytes, make), whole, "byte by byte");
        }
    }
    round_trip(data, &mut rng);
});

fn one_call(data: &[u8], make: Make) -> Outcome {
    // The decoder appends: what was in `out` before stays, also on an error.
    let mut out = b"before".to_vec();
    let mut decoder = make();
    let result = decoder.decode(data, &mut out);
    assert!(out.starts_with(b"before"));
    let out = out.split_off(6);
    match result {
        Ok(DecodeProgress { consumed, done }) => {
            check_progress(data.len(), out.len(), consumed, done);
            if done {
                // A finished decoder takes nothing more.
                let mut more = Vec::new();
                let after = decoder.decode(b"1\r\nx\r\n", &mut more);
                assert_eq!(
                    after,
                    Ok(DecodeProgress {
                        consumed: 0,
                        done: true
                    })
                );
                assert!(more.is_empty());
            }
            Ok((out, consumed, done))
        }
        Err(err) => {
            assert!(out.is_empty(), "data left behind by an error");
            Err(err)
        }
    }
}

fn check_progress(input: usize, produced: usize, consumed: usize, done: bool) {
    assert!(consumed <= input, "consumed {consumed} of {input}");
    assert!(
        produced <= consumed,
        "{produced} bytes of data from {consumed}"
    );
    if !done {
        assert_eq!(consumed, input, "an unfinished body leaves input unread");
    }
}

fn in_place(data: &[u8], make: Make) -> Outcome {
    let mut buf = data.to_vec();
    let (produced, progress) = make().decode_in_place(&mut buf)?;
    check_progress(data.len(), produced, progress.consumed, progress.done);
    assert_eq!(
        buf[progress.consumed..],
        data[progress.consumed..],
        "bytes after the body were touched"
    );
    Ok((buf[..produced].to_vec(), progress.consumed, progress.done))
}

fn in_pieces(pieces: &[&[u8]], make: Make) -> Outcome {
    let mut decoder = make();
    let mut out = Vec::new();
    let mut consumed = 0;
    for piece in pieces {
        let before = out.len();
        let progress = decoder.decode(piece, &mut out)?;
        check_progress(
            piece.len(),
            out.len() - before,
            progress.consumed,
            progress.done,
        );
        consumed += progress.consumed;
        if progress.done {
            return Ok((out, consumed, true));
        }
    }
    Ok((out, consumed, false))
}

/// Chunks `body` as a sender may, then decodes it: the body comes back, and what follows
/// the body is left for the next message.
fn round_trip(body: &[u8], rng: &mut Rng) {
    let mut encoded = Vec::new();
    let mut extensions = 0;
    let mut at = 0;
    while at < body.len() {
        let len = (1 + rng.below(64)).min(body.len() - at);
        let digits = format!("{len:x}");
        let zeros = rng.below(17 - digits.len());
        encoded.extend(std::iter::repeat_n(b'0', zeros));
        if rng.one_in(2) {
            encoded.extend_from_slice(digits.as_bytes());
        } else {
            encoded.extend_from_slice(digits.to_ascii_uppercase().as_bytes());
        }
        if rng.one_in(4) && extensions + 8 <= MAX_EXTENSIONS {
            encoded.extend_from_slice(b" ;a=\"b\"");
            extensions += 7;
        }
        let line_end: &[u8] = if rng.one_in(8) { b"\n" } else { b"\r\n" };
        encoded.extend_from_slice(line_end);
        encoded.extend_from_slice(&body[at..at + len]);
        encoded.extend_from_slice(b"\r\n");
        at += len;
    }
    encoded.extend_from_slice(b"0\r\n");
    let mut trailers = 0;
    while rng.one_in(2) && trailers + 8 <= MAX_TRAILERS {
        encoded.extend_from_slice(b"T: v\r\n");
        trailers += 4;
    }
    encoded.extend_from_slice(b"\r\n");
    let end = encoded.len();
    encoded.extend_from_slice(b"GET / HTTP/1.1\r\n");

    let pieces = random_pieces(&encoded, rng);
    for make in [ChunkedDecoder::new as Make, ChunkedDecoder::for_answer] {
        let decoded = in_pieces(&pieces, make);
        assert_eq!(decoded, Ok((body.to_vec(), end, true)), "round trip");
        assert_eq!(one_call(&encoded, make), Ok((body.to_vec(), end, true)));
    }
}
