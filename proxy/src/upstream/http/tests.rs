use super::*;
use crate::http::{Limits, parse_request};

fn env() -> HeadEnv<'static> {
    HeadEnv {
        method: None,
        query: None,
        client_ip: "203.0.113.7".parse().unwrap(),
        request_id: b"0123456789abcdef0123456789abcdef",
        https: false,
        client_cert: ClientCert::NotAsked,
        trusted_peer: false,
        real_ip_header: b"x-forwarded-for",
        forwarded_host: None,
        default_host: b"127.0.0.1:8080",
        allow_underscores: false,
        body_len: None,
        upgrade: false,
        keep_alive: true,
        path: None,
        set: &[],
    }
}

/// The head ringway sends for the client's `request`, as text.
fn encode(request: &[u8], env: &HeadEnv<'_>) -> String {
    let mut input = request.to_vec();
    let mut headers = Vec::new();
    let Ok(crate::http::Status::Complete(head)) =
        parse_request(&mut input, &Limits::default(), &mut headers)
    else {
        panic!(
            "bad request in test: {:?}",
            String::from_utf8_lossy(request)
        )
    };
    let env = HeadEnv {
        upgrade: env.upgrade && wants_upgrade(&input, &headers),
        ..*env
    };
    let mut out = Vec::new();
    encode_request_head(&input, &head, &headers, &env, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn the_request_line_and_host_are_kept_and_ringway_names_the_client() {
    let head = encode(
        b"GET /a/../b%20c?x=1&y HTTP/1.1\r\nHost: app.example\r\nAccept: */*\r\nCookie: a=1\r\n\r\n",
        &env(),
    );
    assert_eq!(
        head,
        "GET /a/../b%20c?x=1&y HTTP/1.1\r\nHost: app.example\r\nAccept: */*\r\nCookie: a=1\r\n\
         X-Forwarded-For: 203.0.113.7\r\nX-Real-IP: 203.0.113.7\r\nX-Forwarded-Proto: http\r\n\
         X-Forwarded-Host: app.example\r\nX-Request-ID: 0123456789abcdef0123456789abcdef\r\n\r\n"
    );
}

/// A fragment never reaches the app: ringway's routes matched the path before it, and
/// uvicorn's h11 takes `/x#/../reports/q3.pdf` whole as the path, which Starlette's
/// StaticFiles resolves to `reports/q3.pdf`.
#[test]
fn the_fragment_stays_behind() {
    for (request, line) in [
        (
            &b"GET /x#/../reports/q3.pdf HTTP/1.1\r\n"[..],
            "GET /x HTTP/1.1",
        ),
        (b"GET /x?a=1#/../r HTTP/1.1\r\n", "GET /x?a=1 HTTP/1.1"),
        (b"GET /x/# HTTP/1.1\r\n", "GET /x/ HTTP/1.1"),
    ] {
        let request = [request, &b"Host: app.example\r\n\r\n"[..]].concat();
        let head = encode(&request, &env());
        assert!(head.starts_with(&format!("{line}\r\n")), "{head}");
    }
}

/// After an X-Accel-Redirect a fallback app is asked with the query the redirect named, in
/// place of the client's: what a request line cannot carry escaped, its own escapes kept.
#[test]
fn a_query_in_place_of_the_clients_is_escaped_for_the_request_line() {
    let request = b"GET /accel?to=x HTTP/1.1\r\nHost: a\r\n\r\n";
    let redirected = |query| HeadEnv {
        path: Some((&b""[..], &b"/media/a b"[..])),
        query,
        ..env()
    };
    let line = |env: &HeadEnv<'_>| encode(request, env).lines().next().map(str::to_owned);
    assert_eq!(
        line(&redirected(Some(b"w=1 x#y&z=%20\x80"))).as_deref(),
        Some("GET /media/a%20b?w=1%20x%23y&z=%20%80 HTTP/1.1")
    );
    assert_eq!(
        line(&redirected(Some(b""))).as_deref(),
        Some("GET /media/a%20b HTTP/1.1")
    );
    assert_eq!(
        line(&redirected(None)).as_deref(),
        Some("GET /media/a%20b?to=x HTTP/1.1")
    );
}

/// nginx's `proxy_set_header`: the operator's value replaces the client's copies (any
/// spelling) and ringway's own; an empty one leaves the header out; Host goes first.
#[test]
fn the_operators_headers_replace_the_clients_and_ringways() {
    let set = [
        ("X-Script-Name".to_owned(), "/app".to_owned()),
        ("x-forwarded-proto".to_owned(), "https".to_owned()),
        ("Accept-Encoding".to_owned(), String::new()),
        ("Host".to_owned(), "backend.internal".to_owned()),
    ];
    let head = encode(
        b"GET / HTTP/1.1\r\nHost: app.example\r\nX-Script-Name: /evil\r\n\
          accept-encoding: gzip\r\nAccept: */*\r\n\r\n",
        &HeadEnv { set: &set, ..env() },
    );
    assert_eq!(
        head,
        "GET / HTTP/1.1\r\nHost: backend.internal\r\nAccept: */*\r\n\
         X-Forwarded-For: 203.0.113.7\r\nX-Real-IP: 203.0.113.7\r\n\
         X-Forwarded-Host: app.example\r\nX-Request-ID: 0123456789abcdef0123456789abcdef\r\n\
         X-Script-Name: /app\r\nx-forwarded-proto: https\r\n\r\n"
    );
}

/// nginx's `proxy_pass http://app/v1/;` in `location /api/`: the route's path replaced, the
/// rest of the normalised path escaped again, the query as sent.
#[test]
fn an_upstream_path_replaces_the_routes_path() {
    let request = b"GET /api/a/../b%20c/%0D%0A?x=1&y HTTP/1.1\r\nHost: h\r\n\r\n";
    // The normalised path is /api/b c/\r\n; the route's path, /api/.
    let replaced = HeadEnv {
        path: Some((b"/v1/", b"b c/\r\n")),
        ..env()
    };
    let head = encode(request, &replaced);
    assert!(
        head.starts_with("GET /v1/b%20c/%0D%0A?x=1&y HTTP/1.1\r\nHost: h\r\n"),
        "{head}"
    );
    let root = HeadEnv {
        path: Some((b"/", b"")),
        ..env()
    };
    let head = encode(b"GET /api/ HTTP/1.1\r\nHost: h\r\n\r\n", &root);
    assert!(head.starts_with("GET / HTTP/1.1\r\n"), "{head}");
}

#[test]
fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
    let head = encode(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 300\r\n\
          Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\n\
          X-Secret: s\r\nX-Kept: k\r\n\r\n",
        &env(),
    );
    for gone in [
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "TE:",
        "Trailer",
        "Upgrade",
        "X-Secret",
    ] {
        assert!(!head.contains(gone), "{gone} passed on:\n{head}");
    }
    assert!(head.contains("X-Kept: k\r\n"), "{head}");
}

#[test]
fn the_clients_forwarding_headers_are_replaced() {
    let head = encode(
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\nX-Real-IP: 1.2.3.4\r\n\
          X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nX-Request-ID: mine\r\n\
          X_Forwarded_For: 5.6.7.8\r\n\r\n",
        &env(),
    );
    for spoofed in ["1.2.3.4", "evil", "mine", "5.6.7.8", "https"] {
        assert!(!head.contains(spoofed), "{spoofed} passed on:\n{head}");
    }
    assert_eq!(head.matches("X-Forwarded-For: 203.0.113.7\r\n").count(), 1);
    assert_eq!(head.matches("X-Forwarded-Host: h\r\n").count(), 1);
}

/// Found by review: with underscores allowed, `X_Real_IP` passed as itself, beside
/// ringway's X-Real-IP, to a server that may fold `_` into `-`.
#[test]
fn underscore_spellings_of_guarded_headers_are_dropped_too() {
    let request = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nX_Real_IP: 1.1.1.1\r\n\
                    X_Forwarded_Proto: https\r\nX_Forwarded_Ssl: on\r\nX_Request_ID: mine\r\n\
                    Transfer_Encoding: chunked\r\nContent_Length: 99\r\nX_Forwarded_Host: evil\r\n\
                    SCRIPT_NAME: /pub\r\nPath_Info: /admin\r\nX_Kept: k\r\n\r\n";
    let allow = HeadEnv {
        allow_underscores: true,
        ..env()
    };
    let head = encode(request, &allow);
    for spoofed in [
        "1.1.1.1",
        "https",
        "X_Forwarded_Ssl",
        "mine",
        "chunked",
        "99",
        "evil",
        // gunicorn's WSGI SCRIPT_NAME and PATH_INFO from a trusted peer (found by review).
        "/pub",
        "/admin",
    ] {
        assert!(!head.contains(spoofed), "{spoofed} passed on:\n{head}");
    }
    assert!(head.contains("X_Kept: k\r\n"), "{head}");
}

#[test]
fn proxy_and_unvouched_scheme_claims_never_reach_the_server() {
    let request = b"GET / HTTP/1.1\r\nHost: h\r\nProxy: http://evil:1\r\nX-Forwarded-Ssl: on\r\n\
                    X-Forwarded-Protocol: ssl\r\nX-Forwarded-Proto: https\r\n\
                    X-Forwarded-Port: 1\r\nX-Forwarded-Prefix: /p\r\n\r\n";
    let head = encode(request, &env());
    for spoofed in [
        "evil",
        "X-Forwarded-Ssl",
        "X-Forwarded-Protocol",
        "https",
        "X-Forwarded-Port",
        "X-Forwarded-Prefix",
    ] {
        assert!(!head.contains(spoofed), "{spoofed} passed on:\n{head}");
    }
    // A trusted proxy's scheme headers are its word; Proxy never goes.
    let trusted = HeadEnv {
        trusted_peer: true,
        ..env()
    };
    let head = encode(request, &trusted);
    assert!(!head.contains("evil"), "{head}");
    assert!(head.contains("X-Forwarded-Ssl: on\r\n"), "{head}");
    assert!(head.contains("X-Forwarded-Protocol: ssl\r\n"), "{head}");
    assert_eq!(head.matches("X-Forwarded-Proto: ").count(), 1, "{head}");
    assert!(head.contains("X-Forwarded-Proto: https\r\n"), "{head}");
}

/// Found by review: RFC 7239's Forwarded says all the X-Forwarded-* headers say, and
/// passed from anyone; and behind a trusted proxy that passes underscore names on, its
/// client's `X_Forwarded_Ssl` went beside the proxy's own.
#[test]
fn forwarded_passes_only_from_a_trusted_proxy_and_underscore_claims_never() {
    let request = b"GET / HTTP/1.1\r\nHost: h\r\nForwarded: for=6.6.6.6;proto=https\r\n\
                    X_Forwarded_Ssl: on\r\nX_Forwarded_Prefix: /evil\r\n\
                    X-Forwarded-Port: 443\r\n\r\n";
    let head = encode(
        request,
        &HeadEnv {
            allow_underscores: true,
            ..env()
        },
    );
    for spoofed in ["6.6.6.6", "X_Forwarded_Ssl", "/evil", "443"] {
        assert!(!head.contains(spoofed), "{spoofed} passed on:\n{head}");
    }
    let head = encode(
        request,
        &HeadEnv {
            allow_underscores: true,
            trusted_peer: true,
            ..env()
        },
    );
    assert!(
        head.contains("Forwarded: for=6.6.6.6;proto=https\r\n"),
        "{head}"
    );
    assert!(head.contains("X-Forwarded-Port: 443\r\n"), "{head}");
    for spoofed in ["X_Forwarded_Ssl", "/evil"] {
        assert!(!head.contains(spoofed), "{spoofed} passed on:\n{head}");
    }
}

/// Found by review: old proxy snippets' scheme headers and the configured
/// `real_ip_header` passed from any client.
#[test]
fn other_scheme_claims_and_the_real_ip_header_pass_from_trusted_peers_only() {
    let request = b"GET / HTTP/1.1\r\nHost: h\r\nX-Scheme: https\r\nFront-End-Https: on\r\n\
                    X-Forwarded-Scheme: https\r\nCF-Connecting-IP: 6.6.6.6\r\n\
                    X-Script-Name: //evil.example\r\n\r\n";
    let behind_cloudflare = HeadEnv {
        real_ip_header: b"cf-connecting-ip",
        ..env()
    };
    let head = encode(request, &behind_cloudflare);
    for spoofed in [
        "X-Scheme",
        "Front-End-Https",
        "X-Forwarded-Scheme",
        "6.6.6.6",
        "evil.example",
    ] {
        assert!(!head.contains(spoofed), "{spoofed} passed on:\n{head}");
    }
    let trusted = HeadEnv {
        trusted_peer: true,
        ..behind_cloudflare
    };
    let head = encode(request, &trusted);
    for kept in [
        "X-Scheme: https",
        "Front-End-Https: on",
        "CF-Connecting-IP: 6.6.6.6",
        "X-Script-Name: //evil.example",
    ] {
        assert!(head.contains(kept), "{kept} left out:\n{head}");
    }
}

#[test]
fn a_trusted_proxy_names_the_scheme_only_with_http_or_https() {
    let trusted = HeadEnv {
        trusted_peer: true,
        ..env()
    };
    for (sent, https, want) in [
        ("HTTPS", false, "https"),
        (" http ", true, "http"),
        ("ftp", false, "http"),
        ("https, http", true, "https"),
        ("ftp", true, "https"),
    ] {
        let request = format!("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: {sent}\r\n\r\n");
        let head = encode(request.as_bytes(), &HeadEnv { https, ..trusted });
        assert_eq!(head.matches("X-Forwarded-Proto: ").count(), 1, "{head}");
        assert!(
            head.contains(&format!("X-Forwarded-Proto: {want}\r\n")),
            "{sent:?} over https={https}: {head}"
        );
    }
}

#[test]
fn names_with_other_characters_than_letters_digits_and_dashes_are_dropped() {
    let head = encode(
        b"GET / HTTP/1.1\r\nHost: h\r\nX.Foo: dot\r\nX~Foo: tilde\r\nX-Foo2: ok\r\n\r\n",
        &env(),
    );
    assert!(!head.contains("dot") && !head.contains("tilde"), "{head}");
    assert!(head.contains("X-Foo2: ok\r\n"), "{head}");
}

#[test]
fn a_tls_client_is_https() {
    let head = encode(
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        &HeadEnv {
            https: true,
            ..env()
        },
    );
    assert!(head.contains("X-Forwarded-Proto: https\r\n"), "{head}");
}

fn a_cert() -> crate::tls::PeerCert {
    crate::tls::PeerCert {
        subject: "CN=alice,O=Example".to_owned(),
        issuer: "CN=Example CA".to_owned(),
        serial: "1A2B".to_owned(),
        fingerprint: "00ff".to_owned(),
        pem: Some("-----BEGIN CERTIFICATE-----\nMIIB+/=\n-----END CERTIFICATE-----\n".to_owned()),
    }
}

#[test]
fn a_verified_client_certificate_is_told_and_a_clients_claims_are_not() {
    let request = b"GET / HTTP/1.1\r\nHost: h\r\nX-SSL-Client-Verify: forged\r\n\
                    x-ssl-client-s-dn: CN=root\r\nX-SSL-Clientele: kept\r\n\r\n";
    let cert = a_cert();
    let head = encode(
        request,
        &HeadEnv {
            https: true,
            client_cert: ClientCert::Verified(&cert),
            ..env()
        },
    );
    assert!(
        !head.contains("forged") && !head.contains("CN=root"),
        "{head}"
    );
    for line in [
        "X-SSL-Client-Verify: SUCCESS\r\n",
        "X-SSL-Client-S-DN: CN=alice,O=Example\r\n",
        "X-SSL-Client-I-DN: CN=Example CA\r\n",
        "X-SSL-Client-Serial: 1A2B\r\n",
        "X-SSL-Client-Fingerprint: 00ff\r\n",
        "X-SSL-Client-Cert: -----BEGIN%20CERTIFICATE-----%0AMIIB%2B%2F%3D%0A-----END%20CERTIFICATE-----%0A\r\n",
        "X-SSL-Clientele: kept\r\n",
    ] {
        assert!(head.contains(line), "{line:?} in {head}");
    }
    // Over plain HTTP (certificates asked for on the TLS listener): nothing said, the
    // client's claims still dropped; certificates not asked for: a header like any other.
    let plain = encode(
        request,
        &HeadEnv {
            client_cert: ClientCert::Plain,
            ..env()
        },
    );
    assert!(
        !plain.to_ascii_lowercase().contains("x-ssl-client-"),
        "{plain}"
    );
    // Certificates not asked for: a trusted proxy's claims pass, anyone else's do not
    // (found by review: a client's reached the app).
    let not_asked = encode(request, &env());
    assert!(
        !not_asked.contains("forged") && not_asked.contains("X-SSL-Clientele: kept\r\n"),
        "{not_asked}"
    );
    let from_trusted = encode(
        request,
        &HeadEnv {
            trusted_peer: true,
            ..env()
        },
    );
    assert!(
        from_trusted.contains("X-SSL-Client-Verify: forged\r\n"),
        "{from_trusted}"
    );
    let none = encode(
        request,
        &HeadEnv {
            https: true,
            client_cert: ClientCert::Absent,
            ..env()
        },
    );
    assert!(none.contains("X-SSL-Client-Verify: NONE\r\n"), "{none}");
    assert!(!none.contains("X-SSL-Client-S-DN"), "{none}");
}

#[test]
fn a_body_goes_with_its_length_whatever_the_client_framed() {
    let body = HeadEnv {
        body_len: Some(11),
        ..env()
    };
    let head = encode(
        b"POST /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
        &body,
    );
    assert!(head.starts_with("POST /f HTTP/1.1\r\n"), "{head}");
    assert!(head.ends_with("Content-Length: 11\r\n\r\n"), "{head}");
    assert!(
        !head.contains("chunked") && !head.contains("Expect"),
        "{head}"
    );
}

#[test]
fn an_http_1_0_request_without_host_gets_one_and_absolute_targets_become_origin_form() {
    let head = encode(b"GET /x HTTP/1.0\r\n\r\n", &env());
    assert!(
        head.starts_with("GET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"),
        "{head}"
    );
    let head = encode(
        b"GET http://app.example/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
        &env(),
    );
    assert!(
        head.starts_with("GET /p?q=1 HTTP/1.1\r\nHost: app.example\r\n"),
        "{head}"
    );
    assert!(!head.contains("other"), "{head}");
}

#[test]
fn without_a_pool_the_upstream_is_told_to_close() {
    let head = encode(
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        &HeadEnv {
            keep_alive: false,
            ..env()
        },
    );
    assert!(head.ends_with("Connection: close\r\n\r\n"), "{head}");
}

#[test]
fn an_upgrade_is_passed_on_only_when_asked_for() {
    let ws = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
               Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let head = encode(
        ws,
        &HeadEnv {
            upgrade: true,
            ..env()
        },
    );
    assert!(head.contains("Upgrade: websocket\r\n"), "{head}");
    assert!(head.ends_with("Connection: upgrade\r\n\r\n"), "{head}");
    assert!(head.contains("Sec-WebSocket-Key: k\r\n"), "{head}");
    // h2c is never an upgrade: HTTP/2 would reach the app past ringway (module note).
    for h2c in ["h2c", "websocket, h2c", "H2C"] {
        let request = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n\
             Upgrade: {h2c}\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
        );
        let head = encode(
            request.as_bytes(),
            &HeadEnv {
                upgrade: true,
                ..env()
            },
        );
        assert!(
            !head.contains("Upgrade") && !head.contains("upgrade") && !head.contains("HTTP2"),
            "{h2c}: {head}"
        );
    }
    // A handshake's fields without an upgrade are dropped, as on the uwsgi path (an old
    // gunicorn reads 8 bytes of body after `Sec-WebSocket-Key1`; found by review).
    let plain = b"GET / HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key1: a\r\n\
                  Sec-WebSocket-Key: k\r\n\r\n";
    let head = encode(plain, &env());
    assert!(
        !head.to_ascii_lowercase().contains("sec-websocket"),
        "{head}"
    );
    // Upgrade without Connection naming it is no upgrade request.
    let half = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n";
    let head = encode(
        half,
        &HeadEnv {
            upgrade: true,
            ..env()
        },
    );
    assert!(
        !head.contains("Upgrade") && !head.contains("upgrade"),
        "{head}"
    );
}

#[test]
fn a_kept_connection_needs_http_1_1_a_framed_body_and_no_close() {
    let answer = |response: &[u8], to_head: bool| {
        let mut headers = Vec::new();
        let Ok(crate::http::Status::Complete(head)) =
            http::parse_response(response, to_head, &mut headers)
        else {
            panic!("bad response in test")
        };
        keeps_connection(&head, response, &headers)
    };
    let keeps = |response: &[u8]| answer(response, false);
    // A HEAD's answer: kept only when its length says no body could follow.
    assert!(answer(
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        true
    ));
    assert!(!answer(
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
        true
    ));
    assert!(!answer(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n",
        true
    ));
    assert!(answer(b"HTTP/1.1 304 Not Modified\r\n\r\n", true));
    assert!(keeps(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    assert!(keeps(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    ));
    assert!(keeps(b"HTTP/1.1 204 No Content\r\n\r\n"));
    assert!(!keeps(b"HTTP/1.1 200 OK\r\n\r\nuntil close"));
    assert!(!keeps(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    assert!(!keeps(
        b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\n\r\nok"
    ));
}

/// Found by review: a trusted proxy's X-Forwarded-Port passed on beside ringway's own
/// X-Forwarded-Host, a host and port that did not go together.
#[test]
fn a_trusted_proxys_forwarded_host_is_its_word() {
    let request = b"GET / HTTP/1.1\r\nHost: internal:8080\r\nX-Forwarded-Host: public.example\r\n\
                    X-Forwarded-Port: 443\r\n\r\n";
    let trusted = HeadEnv {
        trusted_peer: true,
        forwarded_host: Some(b"public.example"),
        ..env()
    };
    let head = encode(request, &trusted);
    assert_eq!(head.matches("X-Forwarded-Host: ").count(), 1, "{head}");
    assert!(
        head.contains("X-Forwarded-Host: public.example\r\n"),
        "{head}"
    );
    assert!(head.contains("X-Forwarded-Port: 443\r\n"), "{head}");
    let head = encode(request, &env());
    assert!(
        head.contains("X-Forwarded-Host: internal:8080\r\n"),
        "{head}"
    );
    assert!(!head.contains("X-Forwarded-Port"), "{head}");
}
