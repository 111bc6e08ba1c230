//! `next_upstream`: what sends a request on to its group's next server, written as nginx
//! writes `proxy_next_upstream` / `uwsgi_next_upstream`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The cases in which a request goes on to the group's next server, each server being
/// tried at most once: `error` (the server closed or reset the connection before a whole
/// answer head), `timeout` (`upstream_read_timeout` passed while waiting for the head; a
/// request whose sending timed out does not go on), `invalid_header` (a head that does not parse), `http_500`,
/// `http_502`, `http_503`, `http_504`, `http_403`, `http_404`, `http_429` (the last server's
/// answer is relayed whatever its status), and `non_idempotent` (POST, PATCH and the
/// like may go again once sent, which by default they do not: the app may have acted on
/// them). `off` (or an empty list) is none. nginx's default: `error timeout`.
///
/// A server that refuses the connection, or does not accept it within
/// `upstream_connect_timeout`, is passed over whatever this says: the request never
/// reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextUpstream {
    bits: u16,
}

const ERROR: u16 = 1;
const TIMEOUT: u16 = 1 << 1;
const INVALID_HEADER: u16 = 1 << 2;
const NON_IDEMPOTENT: u16 = 1 << 3;

/// Each word, its bit and, for `http_NNN`, its status; in nginx's order.
const WORDS: [(&str, u16, u16); 11] = [
    ("error", ERROR, 0),
    ("timeout", TIMEOUT, 0),
    ("invalid_header", INVALID_HEADER, 0),
    ("http_500", 1 << 4, 500),
    ("http_502", 1 << 5, 502),
    ("http_503", 1 << 6, 503),
    ("http_504", 1 << 7, 504),
    ("http_403", 1 << 8, 403),
    ("http_404", 1 << 9, 404),
    ("http_429", 1 << 10, 429),
    ("non_idempotent", NON_IDEMPOTENT, 0),
];

impl NextUpstream {
    /// nginx's default: `error timeout`.
    pub const DEFAULT: NextUpstream = NextUpstream {
        bits: ERROR | TIMEOUT,
    };

    /// On a connection closed or reset before a whole answer head.
    pub fn on_error(self) -> bool {
        self.bits & ERROR != 0
    }

    /// On `upstream_read_timeout` passing before a whole answer head.
    pub fn on_timeout(self) -> bool {
        self.bits & TIMEOUT != 0
    }

    /// On an answer head that does not parse.
    pub fn on_invalid_header(self) -> bool {
        self.bits & INVALID_HEADER != 0
    }

    /// On an answer with this status.
    pub fn on_status(self, status: u16) -> bool {
        // Most answers are none of these: no scan for them.
        (403..=504).contains(&status)
            && WORDS
                .iter()
                .any(|&(_, bit, code)| code == status && self.bits & bit != 0)
    }

    /// Whether a request whose method is not idempotent may go again once sent.
    pub fn non_idempotent(self) -> bool {
        self.bits & NON_IDEMPOTENT != 0
    }

    /// Whether nginx would count a server's answer of this status as a failure
    /// (`max_fails`): a listed 5xx or 429, never 403 or 404.
    pub fn status_is_failure(status: u16) -> bool {
        matches!(status, 500 | 502 | 503 | 504 | 429)
    }
}

impl FromStr for NextUpstream {
    type Err = String;

    /// Words separated by spaces or commas, as in nginx's directive: `error timeout
    /// http_502`; `off` alone.
    fn from_str(s: &str) -> Result<NextUpstream, String> {
        let words: Vec<&str> = s.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        let mut bits = 0;
        for word in &words {
            match word.parse::<Word>()? {
                Word::Off if words.len() > 1 => {
                    return Err("`off` stands alone: it means none of the others".to_owned());
                }
                Word::Off => {}
                Word::Bit(bit) => bits |= bit,
            }
        }
        Ok(NextUpstream { bits })
    }
}

/// One word of the setting.
enum Word {
    Off,
    Bit(u16),
}

impl FromStr for Word {
    type Err = String;

    fn from_str(word: &str) -> Result<Word, String> {
        if super::values::is_off(word) {
            return Ok(Word::Off);
        }
        WORDS
            .iter()
            .find(|(name, ..)| name.eq_ignore_ascii_case(word))
            .map(|&(_, bit, _)| Word::Bit(bit))
            .ok_or_else(|| {
                let known: Vec<&str> = WORDS.iter().map(|(name, ..)| *name).collect();
                format!(
                    "unknown case {word:?} (known: {}, or off)",
                    known.join(", ")
                )
            })
    }
}

impl fmt::Display for NextUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words = WORDS.iter().filter(|&&(_, bit, _)| self.bits & bit != 0);
        match words.next() {
            None => f.write_str("off"),
            Some((first, ..)) => {
                f.write_str(first)?;
                words.try_for_each(|(word, ..)| write!(f, " {word}"))
            }
        }
    }
}

impl<'de> Deserialize<'de> for NextUpstream {
    /// A list of words (`["error", "timeout", "http_502"]`) or one string of them.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NextUpstream, D::Error> {
        d.deserialize_any(WordsVisitor)
    }
}

struct WordsVisitor;

impl<'de> serde::de::Visitor<'de> for WordsVisitor {
    type Value = NextUpstream;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list such as [\"error\", \"timeout\", \"http_502\"], or \"off\"")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<NextUpstream, E> {
        s.parse().map_err(E::custom)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<NextUpstream, A::Error> {
        let mut words = Vec::new();
        while let Some(word) = seq.next_element::<String>()? {
            if word.contains([' ', ',']) {
                return Err(serde::de::Error::custom(format!(
                    "{word:?}: one case per list item"
                )));
            }
            words.push(word);
        }
        words.join(" ").parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for NextUpstream {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn words_as_nginx_writes_them() {
        let n: NextUpstream = "error timeout http_502".parse().unwrap();
        assert!(n.on_error() && n.on_timeout() && n.on_status(502));
        assert!(!n.on_invalid_header() && !n.on_status(503) && !n.non_idempotent());
        assert_eq!(n.to_string(), "error timeout http_502");
        assert_eq!("error,timeout".parse(), Ok(NextUpstream::DEFAULT));
        let all: NextUpstream = WORDS
            .iter()
            .map(|w| w.0)
            .collect::<Vec<_>>()
            .join(" ")
            .parse()
            .unwrap();
        for code in [500, 502, 503, 504, 403, 404, 429] {
            assert!(all.on_status(code), "{code}");
        }
        assert!(!all.on_status(200) && !all.on_status(501));
    }

    #[test]
    fn off_is_none_and_stands_alone() {
        let off: NextUpstream = "off".parse().unwrap();
        assert!(!off.on_error() && !off.on_timeout() && !off.on_status(502));
        assert_eq!(off.to_string(), "off");
        assert_eq!("".parse(), Ok(off));
        assert!(
            "off error"
                .parse::<NextUpstream>()
                .unwrap_err()
                .contains("alone")
        );
        assert!(
            "error http_501"
                .parse::<NextUpstream>()
                .unwrap_err()
                .contains("http_501")
        );
    }

    #[test]
    fn a_list_or_a_string_in_the_file() {
        #[derive(Deserialize)]
        struct T {
            n: NextUpstream,
        }
        let list: T = toml::from_str("n = [\"error\", \"http_503\"]").unwrap();
        assert_eq!(list.n.to_string(), "error http_503");
        let text: T = toml::from_str("n = \"off\"").unwrap();
        assert_eq!(text.n.to_string(), "off");
        let empty: T = toml::from_str("n = []").unwrap();
        assert_eq!(empty.n.to_string(), "off");
        assert!(toml::from_str::<T>("n = [\"error timeout\"]").is_err());
        assert!(toml::from_str::<T>("n = 3").is_err());
    }
}
