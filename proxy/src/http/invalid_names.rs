//! Header lines whose names are not tokens (`X@A: 1`, `X-\xC4rger: 1`). nginx's parser marks
//! such a line invalid and goes on: it drops it from a request (`ignore_invalid_headers on`,
//! its default) and passes it on in an upstream's answer. httparse refuses the whole head;
//! with these, a parser tries again leniently when such names are all that is wrong with
//! it, and only then: a well-formed head pays nothing.

/// How header lines whose names are not tokens are taken.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Names {
    /// Refused (httparse's default): every head is parsed so first.
    Strict,
    /// Left out, when such names are all that is wrong with the head
    /// ([`only_invalid_names_dropped`]): tried only after a strict parse refused a name.
    DropInvalid,
}

/// Whether the first header line whose name is not a token (the one a strict parse refused)
/// fails on a visible character, as `X@A: 1` does: nginx takes such a line. A space, a
/// control character, an empty name or a folded line is refused at once instead.
/// `blanks_before_colon`: the parser takes spaces and tabs between a name and its colon
/// (answers), so such a line's name is no bad one.
pub(super) fn first_bad_name_has_a_visible_char(head: &[u8], blanks_before_colon: bool) -> bool {
    let lines = head
        .split(|&b| b == b'\n')
        .skip_while(|line| line.is_empty() || *line == b"\r")
        .skip(1);
    for line in lines {
        let Some(at) = line.iter().position(|&b| !super::is_token(b)) else {
            return false;
        };
        let rest = line.get(at..).unwrap_or_default();
        let blanks = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        match rest.first() {
            Some(b':') if at == 0 => return false,
            Some(b':') => continue,
            Some(b' ' | b'\t')
                if blanks_before_colon && at > 0 && rest.get(blanks) == Some(&b':') =>
            {
                continue;
            }
            Some(&b) => return is_visible(b),
            None => return false,
        }
    }
    false
}

/// A byte nginx takes in a header name it marks invalid: printable ASCII, or not ASCII.
fn is_visible(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// Whether every header line of `head` that is not among `parsed` (the lines a lenient parse
/// kept, in order) is one nginx takes as an invalid name: a name of visible characters
/// (some of them not token characters, or it would have parsed), a colon, and a value of
/// field characters. httparse's lenient mode also skips lines nginx refuses (a space in a
/// name, a folded line, a bad value): with one of those, the head is refused still.
pub(super) fn only_invalid_names_dropped(head: &[u8], parsed: &[httparse::Header<'_>]) -> bool {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        // Empty lines before the request line, then the request or status line.
        .skip_while(|line| line.is_empty())
        .skip(1)
        .take_while(|line| !line.is_empty());
    let mut parsed = parsed.iter().peekable();
    lines.all(|line| {
        if parsed
            .next_if(|h| h.name.as_ptr() == line.as_ptr())
            .is_some()
        {
            return true;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default();
        let field = |b: &u8| *b == b'\t' || *b == b' ' || is_visible(*b);
        !name.is_empty() && name.iter().copied().all(is_visible) && value.iter().all(field)
    }) && parsed.next().is_none()
}
