use super::*;

/// Feeds `input` in pieces cut at `cuts`, the way the driver would (it re-offers the
/// unconsumed tail with the next read). Returns the body, the bytes left after it, and
/// whether it was done.
fn decode_split(input: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, Vec<u8>, bool), HttpError> {
    let mut dec = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut last = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        pending.extend_from_slice(&input[last..cut]);
        last = cut;
        let p = dec.decode(&pending, &mut out)?;
        pending.drain(..p.consumed);
        if p.done {
            pending.extend_from_slice(&input[last..]);
            return Ok((out, pending, true));
        }
    }
    Ok((out, pending, false))
}

fn decode_all(input: &[u8]) -> Result<(Vec<u8>, Vec<u8>, bool), HttpError> {
    decode_split(input, &[])
}

const BODY: &[u8] = b"4\r\nWiki\r\n5;name=val\r\npedia\r\nE \r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: a\r\n\r\nNEXT";
const DECODED: &[u8] = b"Wikipedia in\r\n\r\nchunks.";

#[test]
fn decodes_a_body_and_leaves_the_next_message() {
    assert_eq!(
        decode_all(BODY),
        Ok((DECODED.to_vec(), b"NEXT".to_vec(), true))
    );
}

#[test]
fn same_result_for_every_split_point() {
    for cut in 0..=BODY.len() {
        assert_eq!(
            decode_split(BODY, &[cut]),
            Ok((DECODED.to_vec(), b"NEXT".to_vec(), true)),
            "cut at {cut}"
        );
    }
    for a in 0..=BODY.len() {
        for b in a..=BODY.len() {
            let got = decode_split(BODY, &[a, b]).map(|r| r.0);
            assert_eq!(
                got.as_deref().map_err(|e| *e),
                Ok(DECODED),
                "cuts at {a}, {b}"
            );
        }
    }
}

#[test]
fn byte_by_byte() {
    let mut dec = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut consumed = 0;
    let mut done = false;
    for (i, b) in BODY.iter().enumerate() {
        let p = dec.decode(std::slice::from_ref(b), &mut out).unwrap();
        consumed += p.consumed;
        if p.done {
            assert_eq!(&BODY[i + 1..], b"NEXT");
            done = true;
            break;
        }
        assert_eq!(p.consumed, 1, "byte {i}");
    }
    assert!(done);
    assert_eq!(consumed, BODY.len() - 4);
    assert_eq!(out, DECODED);
    // Once done, nothing more is consumed.
    let p = dec.decode(b"more", &mut out).unwrap();
    assert_eq!(
        p,
        DecodeProgress {
            consumed: 0,
            done: true
        }
    );
}

#[test]
fn empty_input_consumes_nothing() {
    let mut dec = ChunkedDecoder::new();
    let mut out = Vec::new();
    assert_eq!(
        dec.decode(b"", &mut out),
        Ok(DecodeProgress {
            consumed: 0,
            done: false
        })
    );
}

macro_rules! chunked_cases {
    ($($name:ident: $input:expr => $want:expr;)*) => {$(
        #[test]
        fn $name() {
            let input: &[u8] = $input;
            let want: Result<&[u8], HttpError> = $want;
            let got = decode_all(input).and_then(|(body, _, done)| {
                assert!(done, "not done: {:?}", String::from_utf8_lossy(input));
                Ok(body)
            });
            assert_eq!(got.as_deref().map_err(|e| *e), want, "{:?}", String::from_utf8_lossy(input));
        }
    )*};
}

chunked_cases! {
    only_last_chunk: b"0\r\n\r\n" => Ok(b"");
    upper_and_lower_hex: b"a\r\n0123456789\r\nB\r\n0123456789a\r\n0\r\n\r\n" => Ok(b"01234567890123456789a");
    leading_zeros: b"0004\r\nabcd\r\n0000\r\n\r\n" => Ok(b"abcd");
    sixteen_digits_zero: b"0000000000000001\r\nx\r\n0\r\n\r\n" => Ok(b"x");
    lf_only_size_lines: b"3\nabc\r\n0\n\n" => Ok(b"abc");
    extension_on_last_chunk: b"0;a=b;c\r\n\r\n" => Ok(b"");
    space_before_extension: b"3 \t;ext\r\nabc\r\n0\r\n\r\n" => Ok(b"abc");
    space_before_line_end: b"3 \r\nabc\r\n0\r\n\r\n" => Ok(b"abc");
    trailers_dropped: b"1\r\nz\r\n0\r\nA: 1\r\nB: 2\n\r\n" => Ok(b"z");
    data_may_hold_crlf: b"2\r\n\r\n\r\n0\r\n\r\n" => Ok(b"\r\n");
    empty_size: b"\r\n" => Err(HttpError::BadSyntax);
    extension_without_size: b";a\r\n" => Err(HttpError::BadSyntax);
    not_hex: b"g\r\n" => Err(HttpError::BadSyntax);
    sign: b"+1\r\nx\r\n0\r\n\r\n" => Err(HttpError::BadSyntax);
    seventeen_digits: b"00000000000000001\r\nx\r\n0\r\n\r\n" => Err(HttpError::BadSyntax);
    over_i64: b"8000000000000000\r\n" => Err(HttpError::BadSyntax);
    max_u64: b"ffffffffffffffff\r\n" => Err(HttpError::BadSyntax);
    space_inside_size: b"1 1\r\nx\r\n" => Err(HttpError::BadSyntax);
    bare_cr_after_size: b"1\rx\r\n" => Err(HttpError::BareCr);
    bare_cr_in_extension: b"1;a\rb\r\nx\r\n0\r\n\r\n" => Err(HttpError::BareCr);
    ctl_in_extension: b"1;a\0\r\nx\r\n0\r\n\r\n" => Err(HttpError::BadSyntax);
    data_longer_than_size: b"1\r\nxy\r\n0\r\n\r\n" => Err(HttpError::BadSyntax);
    lf_only_after_data: b"1\r\nx\n0\r\n\r\n" => Err(HttpError::BadSyntax);
    cr_without_lf_after_data: b"1\r\nx\rX0\r\n\r\n" => Err(HttpError::BadSyntax);
    bare_cr_in_trailer: b"0\r\nA: 1\rB\r\n\r\n" => Err(HttpError::BareCr);
    bare_cr_at_end: b"0\r\n\rX" => Err(HttpError::BareCr);
    nul_in_trailer: b"0\r\nA: \0\r\n\r\n" => Err(HttpError::BadSyntax);
}

#[test]
fn largest_chunk_size_is_accepted() {
    let mut dec = ChunkedDecoder::new();
    let mut out = Vec::new();
    let p = dec.decode(b"7fffffffffffffff\r\nabc", &mut out).unwrap();
    assert_eq!(
        p,
        DecodeProgress {
            consumed: 21,
            done: false
        }
    );
    assert_eq!(out, b"abc");
}

#[test]
fn extension_bytes_are_bounded() {
    let make = |n: usize| {
        let mut b = b"1;".to_vec();
        b.extend(std::iter::repeat_n(b'e', n - 1));
        b.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        b
    };
    // ';' and what follows count.
    assert_eq!(
        decode_all(&make(MAX_EXTENSIONS)).map(|r| r.0),
        Ok(b"x".to_vec())
    );
    assert_eq!(
        decode_all(&make(MAX_EXTENSIONS + 1)),
        Err(HttpError::BadSyntax)
    );
    // The bound is for the whole body, not per chunk.
    let mut many = Vec::new();
    for _ in 0..=MAX_EXTENSIONS / 8 {
        many.extend_from_slice(b"1;abcdefg\r\nx\r\n");
    }
    assert_eq!(decode_all(&many), Err(HttpError::BadSyntax));
}

#[test]
fn whitespace_after_a_size_shares_the_extensions_bound() {
    // Spaces after a size add nothing to the body: without a bound a client could send them
    // forever under the body size limit.
    let make = |spaces: usize, ext: &[u8]| {
        let mut b = b"1".to_vec();
        b.extend(std::iter::repeat_n(b' ', spaces));
        b.extend_from_slice(ext);
        b.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        b
    };
    assert_eq!(
        decode_all(&make(MAX_EXTENSIONS, b"")).map(|r| r.0),
        Ok(b"x".to_vec())
    );
    assert_eq!(
        decode_all(&make(MAX_EXTENSIONS + 1, b"")),
        Err(HttpError::BadSyntax)
    );
    assert_eq!(
        decode_all(&make(MAX_EXTENSIONS, b";")),
        Err(HttpError::BadSyntax)
    );
    assert_eq!(
        decode_all(&make(1, b"; a=b")).map(|r| r.0),
        Ok(b"x".to_vec())
    );
}

#[test]
fn trailer_bytes_are_bounded() {
    let make = |n: usize| {
        let mut b = b"0\r\nX: ".to_vec();
        b.extend(std::iter::repeat_n(b't', n - 3));
        b.extend_from_slice(b"\r\n\r\n");
        b
    };
    assert_eq!(decode_all(&make(MAX_TRAILERS)).map(|r| r.2), Ok(true));
    assert_eq!(
        decode_all(&make(MAX_TRAILERS + 1)),
        Err(HttpError::BadSyntax)
    );
}

#[test]
fn partial_body_is_not_done() {
    for n in 0..BODY.len() - 4 {
        let (_, _, done) = decode_all(&BODY[..n]).unwrap();
        assert!(!done, "prefix {n}");
    }
}

#[test]
fn hostile_bytes_never_panic() {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = b"0123456789abcdefF\r\n;= \t\0xz";
    let mut out = Vec::new();
    let mut input = Vec::new();
    for _ in 0..20_000 {
        input.clear();
        for _ in 0..(next() % 64) {
            input.push(alphabet[(next() as usize) % alphabet.len()]);
        }
        let mut dec = ChunkedDecoder::new();
        out.clear();
        let mut pos = 0;
        while pos < input.len() {
            let end = (pos + 1 + (next() as usize) % 8).min(input.len());
            match dec.decode(&input[pos..end], &mut out) {
                Ok(p) => {
                    assert!(p.consumed <= end - pos);
                    pos += p.consumed;
                    if p.done || p.consumed == 0 {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        assert!(out.len() <= input.len());
    }
}

/// Found by review: an upstream's chunk data ended by a bare LF (nginx takes it), and a
/// trailer section over 8 KiB, a trailer line that long or one with a control byte cut the
/// answer; a request's keep the bounds.
#[test]
fn an_answer_may_end_chunk_data_with_lf_and_its_trailers_are_skipped_as_they_come() {
    let lf = b"3\r\nabc\n2\r\nde\n0\r\n\r\n";
    let mut out = Vec::new();
    let progress = ChunkedDecoder::for_answer().decode(lf, &mut out).unwrap();
    assert!(progress.done);
    assert_eq!(out, b"abcde");
    assert_eq!(
        ChunkedDecoder::new().decode(lf, &mut Vec::new()),
        Err(HttpError::BadSyntax)
    );
    let mut trailers = b"1\r\nx\r\n0\r\n".to_vec();
    for _ in 0..4 {
        trailers.extend_from_slice(b"X: ");
        trailers.extend(std::iter::repeat_n(b't', MAX_TRAILERS - 3));
        trailers.extend_from_slice(b"\r\n");
    }
    trailers.extend_from_slice(b"Long: ");
    trailers.extend(std::iter::repeat_n(b'l', 3 * MAX_TRAILERS));
    trailers.extend_from_slice(b"\r\nOdd: a\x01b\x7f\r\n\r\n");
    let progress = ChunkedDecoder::for_answer()
        .decode(&trailers, &mut Vec::new())
        .unwrap();
    assert!(progress.done);
    assert_eq!(
        ChunkedDecoder::new().decode(&trailers, &mut Vec::new()),
        Err(HttpError::BadSyntax)
    );
}

/// Found by review: a server whose every chunk carries an extension had its answer cut
/// after 4 KiB of them; a request's body keeps the bound over the whole body.
#[test]
fn an_answers_extensions_are_bounded_per_line_a_requests_over_the_body() {
    let mut body = b"1;a=b\r\nx\r\n".repeat(2000);
    body.extend_from_slice(b"0\r\n\r\n");
    let mut out = Vec::new();
    let progress = ChunkedDecoder::for_answer()
        .decode(&body, &mut out)
        .unwrap();
    assert!(progress.done);
    assert_eq!(out, vec![b'x'; 2000]);
    assert_eq!(
        ChunkedDecoder::new().decode(&body, &mut Vec::new()),
        Err(HttpError::BadSyntax)
    );
    // One size line's extensions are still bounded in an answer.
    let mut long = b"1;".to_vec();
    long.extend_from_slice(&vec![b'a'; MAX_EXTENSIONS + 1]);
    long.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
    assert_eq!(
        ChunkedDecoder::for_answer().decode(&long, &mut Vec::new()),
        Err(HttpError::BadSyntax)
    );
}

#[test]
fn a_size_line_announces_its_chunk_before_the_data_comes() {
    let mut dec = ChunkedDecoder::new();
    let mut out = Vec::new();
    assert_eq!(dec.announced(), 0);
    dec.decode(b"4", &mut out).unwrap();
    assert_eq!(dec.announced(), 4, "the digits so far");
    dec.decode(b"00;x=1\r\n", &mut out).unwrap();
    assert_eq!(dec.announced(), 0x400, "the whole size line");
    dec.decode(b"abc", &mut out).unwrap();
    assert_eq!(dec.announced(), 0x400 - 3, "what is still to come");
    assert_eq!(out.len() as u64 + dec.announced(), 0x400);
}
