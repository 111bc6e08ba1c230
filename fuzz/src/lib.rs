//! What the fuzz targets share: a deterministic pseudo-random source (split points and
//! spellings derive from the input, so a crash always reproduces from its file alone), an
//! independent uwsgi packet decoder, and the byte checks several targets make.

use ringway::http::Span;

/// A small deterministic generator (splitmix64), seeded from the input.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with a hash (FNV-1a) of `data`.
    pub fn from_input(data: &[u8]) -> Rng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in data {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Rng(h)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.bits() % n as u64) as usize
        }
    }

    /// True about once in `n` times.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// Cuts `data` into consecutive pieces at pseudo-random points (empty pieces included, as a
/// read of 0 new bytes can happen).
pub fn random_pieces<'d>(data: &'d [u8], rng: &mut Rng) -> Vec<&'d [u8]> {
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let len = match rng.below(4) {
            0 => 0,
            1 => 1,
            2 => rng.below(8),
            _ => rng.below(data.len() - at + 1),
        };
        let end = (at + len).min(data.len());
        pieces.push(&data[at..end]);
        at = end;
    }
    pieces.push(&data[at..]);
    pieces
}

/// Prefix lengths worth parsing a head at: every one for a short head; else both sides of
/// each line ending and some pseudo-random ones.
pub fn prefix_lengths(data: &[u8], end: usize, rng: &mut Rng) -> Vec<usize> {
    let end = end.min(data.len());
    if end <= 256 {
        return (0..end).collect();
    }
    let mut at: Vec<usize> = (0..end)
        .filter(|&i| data[i] == b'\n' || data[i] == b'\r')
        .flat_map(|i| [i, i + 1])
        .filter(|&k| k < end)
        .collect();
    at.extend((0..32).map(|_| rng.below(end)));
    at.push(end - 1);
    at
}

/// Asserts `span` lies within `buf[..end]` and is well ordered.
pub fn assert_span_in(span: Span, end: usize, what: &str) {
    assert!(span.start <= span.end, "{what}: span {span:?} reversed");
    assert!(span.end as usize <= end, "{what}: span {span:?} past {end}");
}

/// RFC 9110 tchar.
pub fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `value` without leading and trailing SP / HTAB.
pub fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// Whether the comma list `value` has `token` (case-insensitive).
pub fn list_has(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|e| trim_ows(e).eq_ignore_ascii_case(token))
}

/// One uwsgi var, decoded.
pub type Var = (Vec<u8>, Vec<u8>);

/// Decodes a uwsgi packet (header and vars block) written by ringway, independently of its
/// writer: `modifier1 (0) | u16 LE datasize | modifier2 (0)`, then `u16 LE key length, key,
/// u16 LE value length, value` until exactly `datasize` bytes are used.
pub fn decode_uwsgi(packet: &[u8]) -> Result<Vec<Var>, String> {
    let [m1, lo, hi, m2, block @ ..] = packet else {
        return Err(format!("{} bytes: no header", packet.len()));
    };
    if (*m1, *m2) != (0, 0) {
        return Err(format!("modifiers {m1} {m2}"));
    }
    let size = usize::from(u16::from_le_bytes([*lo, *hi]));
    if size != block.len() {
        return Err(format!("datasize {size}, block of {} bytes", block.len()));
    }
    let mut rest = block;
    let mut vars = Vec::new();
    while !rest.is_empty() {
        let key = take_field(&mut rest)?;
        let value = take_field(&mut rest)?;
        vars.push((key, value));
    }
    Ok(vars)
}

/// One length-prefixed field off the front of `rest`.
fn take_field(rest: &mut &[u8]) -> Result<Vec<u8>, String> {
    let (len, tail) = rest
        .split_at_checked(2)
        .ok_or_else(|| "a length cut short".to_owned())?;
    let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
    let (field, tail) = tail
        .split_at_checked(len)
        .ok_or_else(|| format!("a field of {len} bytes with {} left", tail.len()))?;
    *rest = tail;
    Ok(field.to_vec())
}

/// Text for an assertion message.
pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
