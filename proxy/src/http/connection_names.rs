//! The hop-by-hop headers (RFC 9110 §7.6.1): the fixed ones, [`HOP_BY_HOP`], and the names
//! an upstream's Connection headers list; both stay behind. Gathered once per head, so that checking each of up to
//! 512 upstream header lines costs a few compares, not a scan of every line (the upstream
//! controls how many lines there are). The same for a request's headers sent on to an HTTP
//! upstream.

use std::cmp::Ordering;

use crate::http::HeaderSpan;
use crate::http::validate::list_elements;

/// The fields that only describe one connection, in lower case: not passed on, in either
/// direction, by either protocol (what ringway frames with it writes itself), but for
/// `Upgrade` on its way to an HTTP upstream that switches protocols, and back with its 101
/// (or a 426, which names what it asks for).
pub(crate) const HOP_BY_HOP: [&[u8]; 7] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
];

/// Whether the header `name` is one of [`HOP_BY_HOP`] (any case).
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// Names kept on the stack. An app names one or two hop-by-hop headers at most; past this
/// many, the names move to a sorted vector (bounded by the head's size) and are looked up by
/// binary search.
const INLINE: usize = 8;

/// The names the Connection headers list, case as sent.
pub(crate) struct ConnectionNames<'a> {
    inline: [&'a [u8]; INLINE],
    len: usize,
    /// Every name, sorted ignoring case, once there are more than [`INLINE`]; empty (no
    /// allocation) until then.
    many: Vec<&'a [u8]>,
}

impl<'a> ConnectionNames<'a> {
    /// The names listed by the Connection headers among `headers` (spans in `buf`).
    pub(crate) fn gather(buf: &'a [u8], headers: &[HeaderSpan]) -> Self {
        let mut names = ConnectionNames {
            inline: [&[]; INLINE],
            len: 0,
            many: Vec::new(),
        };
        for h in headers {
            if h.name.of(buf).eq_ignore_ascii_case(b"connection") {
                list_elements(h.value.of(buf)).for_each(|name| names.push(name));
            }
        }
        names.many.sort_unstable_by(|a, b| cmp_ignoring_case(a, b));
        names
    }

    fn push(&mut self, name: &'a [u8]) {
        if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = name;
            self.len += 1;
            return;
        }
        if self.many.is_empty() {
            self.many.extend_from_slice(&self.inline);
        }
        self.many.push(name);
    }

    /// Whether `name` is listed (ignoring case).
    pub(crate) fn contains(&self, name: &[u8]) -> bool {
        if self.many.is_empty() {
            self.inline
                .iter()
                .take(self.len)
                .any(|n| n.eq_ignore_ascii_case(name))
        } else {
            self.many
                .binary_search_by(|n| cmp_ignoring_case(n, name))
                .is_ok()
        }
    }
}

fn cmp_ignoring_case(a: &[u8], b: &[u8]) -> Ordering {
    a.iter()
        .map(u8::to_ascii_lowercase)
        .cmp(b.iter().map(u8::to_ascii_lowercase))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Status, parse_response};

    fn gathered(head: &[u8], check: impl FnOnce(&ConnectionNames<'_>)) {
        let mut headers = Vec::new();
        let Ok(Status::Complete(_)) = parse_response(head, false, &mut headers) else {
            panic!("bad upstream head")
        };
        check(&ConnectionNames::gather(head, &headers));
    }

    #[test]
    fn none_one_or_a_few() {
        gathered(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n", |names| {
            assert!(!names.contains(b"x-a"));
            assert!(
                names.many.capacity() == 0,
                "no allocation without Connection"
            );
        });
        gathered(
            b"HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nconnection: ,x-more ,\r\n\r\n",
            |names| {
                for name in [&b"close"[..], b"x-secret", b"X-SECRET", b"X-More"] {
                    assert!(names.contains(name), "{}", String::from_utf8_lossy(name));
                }
                assert!(!names.contains(b"x-secre"));
                assert!(!names.contains(b""));
                assert!(names.many.capacity() == 0, "a few names stay on the stack");
            },
        );
    }

    #[test]
    fn many_names_are_sorted_and_found_ignoring_case() {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..100 {
            head.extend_from_slice(format!("Connection: X-Hop-{i}, x-hop-{i}b\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        gathered(&head, |names| {
            assert_eq!(names.many.len(), 200);
            for i in 0..100 {
                assert!(names.contains(format!("x-HOP-{i}").as_bytes()), "{i}");
                assert!(names.contains(format!("X-Hop-{i}B").as_bytes()), "{i}b");
            }
            assert!(!names.contains(b"x-hop-100"));
            assert!(!names.contains(b"x-hop-"));
        });
    }
}
