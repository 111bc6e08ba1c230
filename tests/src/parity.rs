//! Environ parity: the requests sent through ringway and through nginx to the same uWSGI, and
//! the one allowlist of the vars where the two legitimately differ.
//!
//! The cases port what nginx-tests' `uwsgi.t` and `uwsgi_body.t` exercise (GET, HEAD, query
//! strings and escapes, bodies of several sizes including empty, chunked bodies, bodies in
//! several pieces) and add the corners of the vars (docs/ARCHITECTURE.md): methods, encoded paths, unicode,
//! repeated headers, cookies, odd but legal headers, HTTP/1.0.

use std::net::SocketAddr;
use std::thread::sleep;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::client::{Conn, Req};
use crate::data::pattern;

/// One request of the parity test.
#[derive(Debug, Clone)]
pub struct Case {
    /// Name, used in messages and by [`ALLOWED_DIFFERENCES`].
    pub name: &'static str,
    /// Method (HEAD answers carry the environ in the `X-Environ` header).
    pub method: &'static str,
    /// Bytes on the wire.
    pub wire: Vec<u8>,
    /// Sent in this many writes, 10 ms apart (1: one write).
    pub writes: usize,
}

impl Case {
    fn req(name: &'static str, req: Req) -> Case {
        let method = match req.method() {
            "HEAD" => "HEAD",
            _ => "OTHER",
        };
        Case {
            name,
            method,
            wire: req.to_bytes(),
            writes: 1,
        }
    }

    fn raw(name: &'static str, wire: &[u8]) -> Case {
        Case {
            name,
            method: "OTHER",
            wire: wire.to_vec(),
            writes: 1,
        }
    }

    fn in_writes(mut self, writes: usize) -> Case {
        self.writes = writes;
        self
    }
}

/// What one side must send for an allowlisted var.
#[derive(Debug, Clone, Copy)]
pub enum Want {
    /// Anything (or nothing).
    Any,
    /// Exactly this value.
    Exact(&'static str),
    /// No such var.
    Absent,
    /// A request ID: 32 lowercase hex digits (a new one per request, so never equal).
    RequestId,
}

impl Want {
    /// Whether `value` satisfies this.
    pub fn accepts(self, value: Option<&Value>) -> bool {
        match self {
            Want::Any => true,
            Want::Exact(want) => value.and_then(Value::as_str) == Some(want),
            Want::Absent => value.is_none(),
            Want::RequestId => value.and_then(Value::as_str).is_some_and(|id| {
                id.len() == 32
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            }),
        }
    }
}

/// Which cases an allowlist entry covers.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// Every case.
    Every,
    /// Only the cases with these names.
    Cases(&'static [&'static str]),
}

/// The cases with a chunked request body.
const CHUNKED_CASES: &[&str] = &[
    "uwsgi_body.t: chunked",
    "uwsgi_body.t: chunked with extension and trailer",
    "uwsgi_body.t: chunked, several chunks",
    "uwsgi_body.t: chunked, empty",
    "uwsgi_body.t: chunked body in pieces",
];

/// One var where ringway and nginx may differ, and why.
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    /// The environ key.
    pub key: &'static str,
    /// The cases it applies to.
    pub scope: Scope,
    /// What ringway must send instead of nginx's value.
    pub ringway: Want,
    /// What nginx 1.22 sends (checked too, so the reason stays true).
    pub nginx: Want,
    /// Why they differ.
    pub reason: &'static str,
}

/// THE allowlist: every key not listed here (for the case at hand) must be equal through
/// ringway and through nginx. Add an entry only with its reason; never loosen the comparison
/// elsewhere.
pub const ALLOWED_DIFFERENCES: &[Allowed] = &[
    Allowed {
        key: "REMOTE_PORT",
        scope: Scope::Every,
        ringway: Want::Any,
        nginx: Want::Any,
        reason: "the client's ephemeral port: each side gets its own connection",
    },
    Allowed {
        key: "SERVER_PORT",
        scope: Scope::Every,
        ringway: Want::Any,
        nginx: Want::Any,
        reason: "each proxy listens on its own free port",
    },
    Allowed {
        key: "HTTP_X_REQUEST_ID",
        scope: Scope::Every,
        ringway: Want::RequestId,
        nginx: Want::RequestId,
        reason: "each side makes a new random ID per request (nginx's $request_id, passed by \
                 the reference's uwsgi_param; ringway's own): both 128 bits in hex, and a \
                 client's X-Request-ID replaced on both",
    },
    Allowed {
        key: "HTTP_X_MULTI",
        scope: Scope::Cases(&["repeated header"]),
        ringway: Want::Exact("one, two"),
        nginx: Want::Exact("two"),
        reason: "nginx 1.22 sends a repeated header as repeated vars and uWSGI keeps the \
                 last; ringway joins the values with \", \" (RFC 9110 5.3, newer nginx too)",
    },
    Allowed {
        key: "HTTP_COOKIE",
        scope: Scope::Cases(&["two Cookie headers"]),
        ringway: Want::Exact("a=1; b=2"),
        nginx: Want::Exact("b=2"),
        reason: "as for repeated headers, but Cookie is joined with \"; \" (RFC 6265 5.4): \
                 with nginx 1.22 the app loses all cookies but the last header's",
    },
    Allowed {
        key: "HTTP_HOST",
        scope: Scope::Cases(&["Host with port and capitals"]),
        ringway: Want::Exact("Example.COM:8080"),
        nginx: Want::Exact("example.com"),
        reason: "Debian's uwsgi_params send HTTP_HOST as $host (lower-cased, port dropped, \
                 a workaround for absolute-form targets); ringway passes the Host header as \
                 sent, like upstream nginx's uwsgi_params and uWSGI's own router",
    },
    Allowed {
        key: "HTTP_HOST",
        scope: Scope::Cases(&["HTTP/1.0 without Host"]),
        ringway: Want::Absent,
        nginx: Want::Exact("localhost"),
        reason: "with no Host header nginx's $host falls back to its server_name; ringway \
                 sends an HTTP_ var only for a header the client sent",
    },
    Allowed {
        key: "HTTP_X_FORWARDED_PROTO",
        scope: Scope::Cases(&["X-Forwarded-Proto from the client"]),
        ringway: Want::Absent,
        nginx: Want::Exact("https"),
        reason: "security rule (docs/ARCHITECTURE.md): X-Forwarded-Proto/-Ssl from a client that is not a \
                 --trusted-proxy are removed; the stock uwsgi_params pass them through",
    },
    Allowed {
        key: "wsgi.url_scheme",
        scope: Scope::Cases(&["X-Forwarded-Proto from the client"]),
        ringway: Want::Exact("http"),
        nginx: Want::Exact("https"),
        reason: "uWSGI derives the scheme from HTTP_X_FORWARDED_PROTO: through nginx any \
                 client can make a plain-HTTP request look like https to the app",
    },
    Allowed {
        key: "HTTP_TRANSFER_ENCODING",
        scope: Scope::Cases(CHUNKED_CASES),
        ringway: Want::Absent,
        nginx: Want::Exact("chunked"),
        reason: "both proxies de-chunk the body and send it with CONTENT_LENGTH; nginx still \
                 forwards the client's Transfer-Encoding header, which no longer describes \
                 what uWSGI receives (an app trusting it would look for chunks); ringway \
                 drops it with the framing it replaced",
    },
];

/// The allowlist entry for `key` in `case`, if any.
pub fn allowed(case: &str, key: &str) -> Option<&'static Allowed> {
    ALLOWED_DIFFERENCES.iter().find(|a| {
        a.key == key
            && match a.scope {
                Scope::Every => true,
                Scope::Cases(names) => names.contains(&case),
            }
    })
}

/// Sends `case` on a new connection to `addr` and returns the environ the app saw.
pub fn environ_via(addr: SocketAddr, case: &Case) -> Result<Map<String, Value>, String> {
    let mut conn = Conn::open(addr);
    let piece = case.wire.len().div_ceil(case.writes.max(1)).max(1);
    for (i, part) in case.wire.chunks(piece).enumerate() {
        if i > 0 {
            sleep(Duration::from_millis(10));
        }
        conn.send(part).map_err(|e| format!("send: {e}"))?;
    }
    let r = conn
        .read_response_to(case.method)
        .map_err(|e| format!("response: {e}"))?;
    if r.status != 200 {
        return Err(format!("status {}: {r:?}", r.status));
    }
    let json = if case.method == "HEAD" {
        r.header("x-environ")
            .ok_or_else(|| format!("HEAD answer without X-Environ: {r:?}"))?
            .into_bytes()
    } else {
        r.body.clone()
    };
    match serde_json::from_slice(&json) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(format!("not a JSON object: {r:?}")),
    }
}

/// The parity cases (more than 30).
pub fn cases() -> Vec<Case> {
    let long_value = "v".repeat(2000);
    let many_headers = (0..40).fold(Req::get("/environ/many"), |r, i| {
        r.header(&format!("X-Header-{i}"), &format!("value {i}"))
    });
    let body_10k = pattern(10_000);
    let body_100k = pattern(100_000);
    vec![
        // uwsgi.t
        Case::req("uwsgi.t: GET /", Req::get("/environ")),
        Case::req("uwsgi.t: HEAD", Req::new("HEAD", "/environ")),
        Case::req("uwsgi.t: query", Req::get("/environ?foo=bar&baz")),
        Case::req(
            "uwsgi.t: escapes in path and query",
            Req::get("/environ/a%20b?x=%20y%3D"),
        ),
        // uwsgi_body.t
        Case::req("uwsgi_body.t: body", Req::post("/environ", b"foobar")),
        Case::req("uwsgi_body.t: empty body", Req::post("/environ", b"")),
        Case::req("uwsgi_body.t: 1-byte body", Req::post("/environ", b"x")),
        Case::req("uwsgi_body.t: 10k body", Req::post("/environ", &body_10k)),
        Case::req(
            "uwsgi_body.t: body over nginx's 64k buffer",
            Req::post("/environ", &body_100k),
        ),
        Case::req(
            "uwsgi_body.t: chunked",
            Req::post("/environ", b"").chunked(&[b"foobar"]),
        ),
        Case::req(
            "uwsgi_body.t: chunked, several chunks",
            Req::post("/environ", b"").chunked(&[b"foo", b"bar", &body_10k]),
        ),
        Case::req(
            "uwsgi_body.t: chunked, empty",
            Req::post("/environ", b"").chunked(&[]),
        ),
        Case::req(
            "uwsgi_body.t: body in pieces",
            Req::post("/environ", &body_10k),
        )
        .in_writes(4),
        Case::req(
            "uwsgi_body.t: chunked body in pieces",
            Req::post("/environ", b"").chunked(&[&body_10k[..3000], &body_10k[3000..]]),
        )
        .in_writes(5),
        // Methods.
        Case::req(
            "PUT with body",
            Req::new("PUT", "/environ").body(b"{\"a\":1}"),
        ),
        Case::req("DELETE", Req::new("DELETE", "/environ/item/7")),
        Case::req(
            "PATCH with body",
            Req::new("PATCH", "/environ").body(b"patch"),
        ),
        Case::req("OPTIONS", Req::new("OPTIONS", "/environ")),
        Case::req("HEAD with query", Req::new("HEAD", "/environ?h=1")),
        Case::req(
            "POST form",
            Req::post("/environ", b"a=1&b=2")
                .header("Content-Type", "application/x-www-form-urlencoded"),
        ),
        // Query strings and paths.
        Case::req("empty query", Req::get("/environ?")),
        Case::req("query of just &", Req::get("/environ?&")),
        Case::req(
            "unicode query, encoded",
            Req::get("/environ?name=J%C3%BCrgen&e=%E2%82%AC"),
        ),
        Case::raw(
            "unicode query, raw UTF-8",
            "GET /environ?name=Jürgen HTTP/1.1\r\nHost: localhost\r\n\r\n".as_bytes(),
        ),
        // Bytes above 0x7F unencoded in the target (an old client's Latin-1): nginx passes
        // them on as sent.
        Case::raw(
            "Latin-1 path and query, raw bytes",
            b"GET /environ/caf\xe9?q=\xe9t\xe9&r=\xff HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ),
        Case::req("encoded letters", Req::get("/%65nviron/%41%42")),
        Case::req("encoded slash", Req::get("/environ/a%2Fb")),
        Case::req("encoded space and plus", Req::get("/environ/a%20b+c")),
        Case::req("dot segments", Req::get("/environ/a/./b/../c")),
        Case::req("encoded dot segments", Req::get("/environ/a/%2e%2e/b")),
        Case::req("double slashes", Req::get("//environ//x//y")),
        Case::req("dot segment above a prefix", Req::get("/x/../environ")),
        // Headers.
        Case::req(
            "repeated header",
            Req::get("/environ")
                .header("X-Multi", "one")
                .header("X-Multi", "two"),
        ),
        Case::req(
            "one Cookie header",
            Req::get("/environ").header("Cookie", "a=1; b=2"),
        ),
        Case::req(
            "two Cookie headers",
            Req::get("/environ")
                .header("Cookie", "a=1")
                .header("Cookie", "b=2"),
        ),
        Case::req(
            "empty header value",
            Req::get("/environ").header("X-Empty", ""),
        ),
        Case::req(
            "tab in a value",
            Req::get("/environ").header("X-Tab", "a\tb"),
        ),
        Case::req(
            "long header value",
            Req::get("/environ").header("X-Long", &long_value),
        ),
        Case::req("many headers", many_headers),
        Case::req(
            "header name case",
            Req::get("/environ")
                .header("x-lower", "1")
                .header("X-UPPER", "2")
                .header("x-MiXeD", "3"),
        ),
        Case::req(
            "browser-like headers",
            Req::get("/environ?q=1")
                .header(
                    "User-Agent",
                    "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
                )
                .header("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")
                .header("Accept-Language", "de-DE,de;q=0.9,en;q=0.5")
                .header("Accept-Encoding", "gzip, deflate, br")
                .header("Referer", "http://localhost/start?x=1")
                .header("If-None-Match", "\"abc\""),
        ),
        Case::req(
            "Host with port and capitals",
            Req::get("/environ").host(Some("Example.COM:8080")),
        ),
        Case::req(
            "Content-Type without body",
            Req::get("/environ").header("Content-Type", "text/plain"),
        ),
        Case::req("GET with a body", Req::get("/environ").body(b"abc")),
        Case::raw(
            "uwsgi_body.t: chunked with extension and trailer",
            b"POST /environ HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
              3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
        ),
        // ignore_invalid_headers on (nginx's default): these names are dropped, the request
        // served.
        Case::raw(
            "header names with characters no token has",
            b"GET /environ HTTP/1.1\r\nHost: localhost\r\nX@A: 1\r\nX/Y: 2\r\n{x}=y: 3\r\n\
              X-Kept: 4\r\n\r\n",
        ),
        // Control bytes other than NUL, CR and LF in a value: nginx passes them on, after a
        // name it drops too.
        Case::raw(
            "control bytes in header values",
            b"GET /environ HTTP/1.1\r\nHost: localhost\r\nX@A: 1\x01\r\n\
              User-Agent: a\x01b\x7f\r\nX-Color: \x1b[31mred\r\n\r\n",
        ),
        // Security-relevant headers.
        Case::req(
            "X-Forwarded-Proto from the client",
            Req::get("/environ").header("X-Forwarded-Proto", "https"),
        ),
        Case::req(
            "X-Forwarded-For from the client",
            Req::get("/environ").header("X-Forwarded-For", "203.0.113.9, 10.0.0.1"),
        ),
        Case::req(
            "two X-Forwarded-For headers",
            Req::get("/environ")
                .header("X-Forwarded-For", "203.0.113.9")
                .header("X-Forwarded-For", "10.0.0.1"),
        ),
        Case::req(
            "X-Real-IP from the client",
            Req::get("/environ").header("X-Real-IP", "203.0.113.9"),
        ),
        Case::req(
            "X-Request-ID from the client",
            Req::get("/environ").header("X-Request-ID", "chosen-by-the-client"),
        ),
        Case::req(
            "underscore in a header name",
            Req::get("/environ").header("X_Foo", "1"),
        ),
        Case::req(
            "header named like a uWSGI magic var",
            Req::get("/environ").header("UWSGI-File", "/etc/passwd"),
        ),
        Case::raw(
            "obs-text in a header value",
            b"GET /environ HTTP/1.1\r\nHost: localhost\r\nX-Latin: caf\xe9\r\n\r\n",
        ),
        Case::raw(
            "absolute-form target",
            b"GET http://localhost/environ?abs=1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ),
        // HTTP/1.0.
        Case::req("HTTP/1.0 with Host", Req::get("/environ?v=10").http10()),
        Case::req(
            "HTTP/1.0 without Host",
            Req::get("/environ").http10().host(None),
        ),
        Case::req("HTTP/1.0 POST", Req::post("/environ", b"ten").http10()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scoped_allowlist_entry_names_a_case() {
        let names: Vec<_> = cases().iter().map(|c| c.name).collect();
        assert!(names.len() >= 30);
        for entry in ALLOWED_DIFFERENCES {
            if let Scope::Cases(scoped) = entry.scope {
                for case in scoped {
                    assert!(
                        names.contains(case),
                        "allowlist names unknown case {case:?}"
                    );
                }
            }
        }
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "case names are unique");
    }
}
