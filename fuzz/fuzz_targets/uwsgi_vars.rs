//! Round trip: the uwsgi vars ringway encodes decode back to what went in.
//!
//! Two layers, on the same input. The packet writer (`uwsgi::PacketWriter`): the input's
//! lines as key/value pairs, written through each of its three calls, decode (with this
//! crate's own decoder) to the same pairs, with the datasize in the header; or the writer
//! refuses exactly when the block would pass its limit. Then the request: when the input
//! is a head ringway accepts, `uwsgi::encode_request` under several environments (trusted
//! peer or not, underscores allowed or not, TLS, a mount point, operator params) decodes
//! to the vars the request and the environment say, in order: nginx's `uwsgi_params`, one
//! `HTTP_` var per forwarded header (repeats joined), the params last and in place of
//! ringway's own of the same name. Client bytes never name a var outside `HTTP_`.

#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use ringway::http::parse_request;
use ringway::http::{BodyFraming, HeaderSpan, Limits, RequestHead, Status, host_without_port};
use ringway::uwsgi::{
    MAX_VARS, PacketWriter, RequestEnv, UwsgiError, encode_request, normalize_path,
};
use ringway_fuzz::{Var, decode_uwsgi, show};

/// The vars ringway itself writes (nginx's `uwsgi_params`).
const OWN: [&str; 15] = [
    "QUERY_STRING",
    "REQUEST_METHOD",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "REQUEST_URI",
    "PATH_INFO",
    "SCRIPT_NAME",
    "DOCUMENT_ROOT",
    "SERVER_PROTOCOL",
    "REQUEST_SCHEME",
    "HTTPS",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "SERVER_PORT",
    "SERVER_NAME",
];

fuzz_target!(|data: &[u8]| {
    packet_round_trip(data);
    request_round_trip(data);
});

fn packet_round_trip(data: &[u8]) {
    let limit = match data.first().map(|b| b % 4) {
        Some(1) => 65535,
        Some(2) => 1 << 20,
        Some(3) => 64,
        _ => 4096,
    };
    let capped = limit.min(65535);
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let vars: Vec<(&[u8], &[u8])> = lines
        .chunks(2)
        .map(|pair| (pair[0], pair.get(1).copied().unwrap_or_default()))
        .collect();
    let mut out = b"left over".to_vec();
    let mut writer = PacketWriter::begin(&mut out, limit);
    let mut block = 0;
    for (i, &(key, value)) in vars.iter().enumerate() {
        let written = match i % 3 {
            0 => writer.var(key, value),
            1 => writer.var_with(key, |o| {
                o.extend_from_slice(value);
                Ok(())
            }),
            _ => writer.var_with_key(
                |o| o.extend_from_slice(key),
                |o| {
                    o.extend_from_slice(value);
                    Ok(())
                },
            ),
        };
        let grown = block + 4 + key.len() + value.len();
        let fits = grown <= capped && key.len() <= 65535 && value.len() <= 65535;
        match written {
            Ok(()) => {
                assert!(fits, "a var past the limit {capped} was written");
                assert!(i < MAX_VARS, "var {} written", i + 1);
                block = grown;
            }
            Err(UwsgiError::TooManyVars { limit }) => {
                assert_eq!((i, limit), (MAX_VARS, MAX_VARS), "refused as var {}", i + 1);
                return;
            }
            Err(UwsgiError::VarsTooLarge { size, limit }) => {
                assert!(!fits, "a var within the limit was refused");
                assert_eq!(limit, capped);
                assert!(size > block);
                return;
            }
            Err(other) => panic!("{other}"),
        }
    }
    let len = writer.finish().expect("a block within the limit");
    assert_eq!((len, out.len()), (4 + block, 4 + block));
    let decoded = decode_uwsgi(&out).unwrap_or_else(|e| panic!("the packet does not decode: {e}"));
    let wanted: Vec<Var> = vars.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    assert_eq!(decoded, wanted);
}

/// One environment a request may be encoded in.
struct Setting {
    peer: &'static str,
    local: &'static str,
    https: bool,
    trusted_peer: bool,
    allow_underscores: bool,
    upgrading: bool,
    server_name: Option<&'static str>,
    mounted: bool,
    params: &'static [(&'static str, &'static str)],
    max_vars: usize,
}

const SETTINGS: [Setting; 3] = [
    Setting {
        peer: "192.0.2.7:50000",
        local: "192.0.2.1:80",
        https: false,
        trusted_peer: false,
        allow_underscores: false,
        upgrading: false,
        server_name: None,
        mounted: false,
        params: &[],
        max_vars: 4096,
    },
    Setting {
        peer: "[2001:db8::7]:1",
        local: "[::1]:443",
        https: true,
        trusted_peer: true,
        allow_underscores: true,
        upgrading: true,
        server_name: Some("example.org"),
        mounted: true,
        params: &[
            ("UWSGI_SCHEME", "https"),
            ("HTTP_X_FORWARDED_PROTO", "https"),
            ("REMOTE_ADDR", "10.9.9.9"),
            ("HTTP_HOST", "app.internal"),
        ],
        max_vars: 65535,
    },
    Setting {
        peer: "10.0.0.1:8080",
        local: "127.0.0.1:8000",
        https: false,
        trusted_peer: true,
        allow_underscores: false,
        upgrading: false,
        server_name: None,
        mounted: true,
        params: &[("SCRIPT_NAME", "/mounted"), ("HTTPS", "on")],
        max_vars: 512,
    },
];

fn request_round_trip(data: &[u8]) {
    let mut buf = data.to_vec();
    let mut headers = Vec::new();
    let Ok(Status::Complete(head)) = parse_request(&mut buf, &Limits::default(), &mut headers)
    else {
        return;
    };
    let mut path = Vec::new();
    if normalize_path(head.path.of(&buf), &mut path).is_err() {
        return;
    }
    for setting in &SETTINGS {
        encode_one(&buf, &head, &headers, &path, setting);
    }
}

fn encode_one(buf: &[u8], head: &RequestHead, headers: &[HeaderSpan], path: &[u8], s: &Setting) {
    // A mount point is the first segment of the path, as a route's script_name would be.
    let mount = match path[1..].iter().position(|&b| b == b'/') {
        Some(i) if s.mounted && i > 0 => Some(&path[..=i]),
        _ => None,
    };
    let path_info = &path[mount.map_or(0, <[u8]>::len)..];
    let params: Vec<(String, String)> = s
        .params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let peer: SocketAddr = s.peer.parse().expect("an address");
    let local: SocketAddr = s.local.parse().expect("an address");
    // Behind a trusted proxy the real client is another address, whose port is known when
    // the proxy gave one (REMOTE_PORT empty when not); some requests carry an ID, and some
    // (a proxy's, kept) none here.
    let (client_ip, client_port) = if s.trusted_peer {
        let port = (buf.len() % 3 == 0).then_some(51234);
        ("198.51.100.7".parse().expect("an address"), port)
    } else {
        (peer.ip(), Some(peer.port()))
    };
    let request_id: &[u8] = if s.mounted {
        b"0af3c2d1e4b5a69788796a5b4c3d2e1f"
    } else {
        b""
    };
    let env = RequestEnv {
        path_info,
        method: None,
        query: None,
        script_name: mount,
        params: &params,
        client_ip,
        client_port,
        request_id,
        local,
        https: s.https,
        http2: false,
        client_cert: Default::default(),
        document_root: "/srv/www",
        server_name: s.server_name,
        trusted_peer: s.trusted_peer,
        // The default, or a header of a CDN's the app may read itself.
        real_ip_header: if s.mounted {
            b"cf-connecting-ip"
        } else {
            b"x-forwarded-for"
        },
        // Both ways: a trusted proxy's host the exchange vouched for, or none.
        forwarded_host: (s.trusted_peer && buf.len() % 2 == 0).then_some(&b"public.example"[..]),
        allow_underscores: s.allow_underscores,
        upgrading: s.upgrading,
    };
    let content_length = match head.body {
        BodyFraming::None => None,
        BodyFraming::Length(n) => Some(n),
        BodyFraming::Chunked => Some(buf.len() as u64),
    };
    let mut out = Vec::new();
    let len = match encode_request(
        buf,
        head,
        headers,
        &env,
        content_length,
        s.max_vars,
        &mut out,
    ) {
        Ok(len) => len,
        Err(UwsgiError::VarsTooLarge { size, limit }) => {
            assert!(size > limit && limit == s.max_vars.min(65535));
            return;
        }
        Err(UwsgiError::TooManyVars { limit }) => {
            let wanted = expected(buf, head, headers, &env, content_length);
            assert!(
                limit == MAX_VARS && wanted.len() > MAX_VARS,
                "{} vars refused as too many",
                wanted.len()
            );
            return;
        }
        Err(err) => panic!("{err}"),
    };
    assert_eq!(len, out.len());
    assert!(len - 4 <= s.max_vars);
    let vars = decode_uwsgi(&out).unwrap_or_else(|e| panic!("the packet does not decode: {e}"));

    // Client bytes never name a var of uWSGI's own (UWSGI_FILE, UWSGI_SETENV, ...).
    for (key, _) in &vars {
        let known = key.starts_with(b"HTTP_")
            || OWN.iter().any(|k| k.as_bytes() == &key[..])
            || s.params.iter().any(|(k, _)| k.as_bytes() == &key[..]);
        assert!(known, "var {:?} from {:?}", show(key), show(buf));
    }

    let wanted = expected(buf, head, headers, &env, content_length);
    assert_eq!(
        vars.iter()
            .map(|(k, v)| (show(k), show(v)))
            .collect::<Vec<_>>(),
        wanted
            .iter()
            .map(|(k, v)| (show(k), show(v)))
            .collect::<Vec<_>>(),
        "vars of {:?}",
        show(buf)
    );
    assert_eq!(vars, wanted);
}

/// The vars the request and the environment call for, in ringway's order.
fn expected(
    buf: &[u8],
    head: &RequestHead,
    headers: &[HeaderSpan],
    env: &RequestEnv<'_>,
    content_length: Option<u64>,
) -> Vec<Var> {
    let param = |key: &str| env.params.iter().any(|(k, _)| k == key);
    let mut vars: Vec<Var> = Vec::new();
    let mut own = |key: &str, value: Vec<u8>| {
        if !param(key) {
            vars.push((key.as_bytes().to_vec(), value));
        }
    };
    let header = |name: &[u8]| {
        headers
            .iter()
            .find(|h| h.name.of(buf).eq_ignore_ascii_case(name))
            .map(|h| h.value.of(buf).to_vec())
    };
    own("QUERY_STRING", head.query.of(buf).to_vec());
    own("REQUEST_METHOD", head.method_span.of(buf).to_vec());
    own("CONTENT_TYPE", header(b"content-type").unwrap_or_default());
    own(
        "CONTENT_LENGTH",
        content_length
            .map(|n| n.to_string().into_bytes())
            .unwrap_or_default(),
    );
    let mut uri = Vec::new();
    if head.path.is_empty() {
        uri.push(b'/');
    }
    uri.extend_from_slice(&buf[head.path.start as usize..head.target.end as usize]);
    own("REQUEST_URI", uri);
    own("PATH_INFO", env.path_info.to_vec());
    if let Some(mount) = env.script_name {
        own("SCRIPT_NAME", mount.to_vec());
    }
    own("DOCUMENT_ROOT", env.document_root.as_bytes().to_vec());
    own("SERVER_PROTOCOL", head.version.as_str().as_bytes().to_vec());
    own(
        "REQUEST_SCHEME",
        if env.https {
            b"https".to_vec()
        } else {
            b"http".to_vec()
        },
    );
    if env.https {
        own("HTTPS", b"on".to_vec());
    }
    own("REMOTE_ADDR", env.client_ip.to_string().into_bytes());
    own(
        "REMOTE_PORT",
        env.client_port
            .map(|port| port.to_string().into_bytes())
            .unwrap_or_default(),
    );
    own("SERVER_PORT", env.local.port().to_string().into_bytes());
    let server_name = match (env.server_name, head.host) {
        (Some(name), _) => name.as_bytes().to_vec(),
        (None, Some(host)) => {
            let name = host_without_port(host.of(buf));
            name.strip_suffix(b".").unwrap_or(name).to_ascii_lowercase()
        }
        (None, None) => env.local.ip().to_string().into_bytes(),
    };
    own("SERVER_NAME", server_name);

    for (i, h) in headers.iter().enumerate() {
        let name = h.name.of(buf);
        let key: Vec<u8> = b"HTTP_"
            .iter()
            .copied()
            .chain(name.iter().map(|&b| {
                if b == b'-' {
                    b'_'
                } else {
                    b.to_ascii_uppercase()
                }
            }))
            .collect();
        // A guarded name is matched as the app sees it: `_` for `-`, any case.
        let spelled: Vec<u8> = name
            .iter()
            .map(|&b| {
                if b == b'_' {
                    b'-'
                } else {
                    b.to_ascii_lowercase()
                }
            })
            .collect();
        let is = |d: &&[u8]| spelled == *d;
        let dropped = [
            &b"content-length"[..],
            b"content-type",
            b"transfer-encoding",
            b"proxy",
            b"x-forwarded-for",
            b"x-real-ip",
            b"x-request-id",
            b"x-forwarded-host",
            // Written by ringway itself, as it read a trusted proxy's.
            b"x-forwarded-proto",
        ]
        .iter()
        .any(is)
            // A WebSocket handshake reaches the app only in a request asking to switch.
            || (!env.upgrading && (spelled == b"upgrade" || spelled.starts_with(b"sec-websocket-")))
            // Claims about a client certificate (none asked for here): a trusted proxy's.
            || ((!env.trusted_peer || name.contains(&b'_')) && spelled.starts_with(b"x-ssl-client-"))
            // An HTTP/2 stream's Connection is ringway's own.
            || (env.http2 && spelled == b"connection")
            // As nginx's ignore_invalid_headers: letters, digits, `-` (and `_` if allowed).
            || !name.iter().all(|&b| {
                b.is_ascii_alphanumeric() || b == b'-' || (b == b'_' && env.allow_underscores)
            })
            // Claims about the URL: only from a trusted proxy, and only spelled with dashes.
            || ((!env.trusted_peer || name.contains(&b'_'))
                && [
                    &b"x-forwarded-proto"[..],
                    b"x-forwarded-ssl",
                    b"x-forwarded-protocol",
                    b"x-forwarded-scheme",
                    b"x-scheme",
                    b"front-end-https",
                    b"x-forwarded-port",
                    b"x-forwarded-prefix",
                    b"x-script-name",
                    b"forwarded",
                    env.real_ip_header,
                ]
                .iter()
                .any(is));
        let replaced = env.params.iter().any(|(k, _)| k.as_bytes() == &key[..]);
        let same = |other: &HeaderSpan| other.name.of(buf).eq_ignore_ascii_case(name);
        let repeat = headers[..i].iter().any(same);
        if dropped || replaced || repeat {
            continue;
        }
        let value = if name.eq_ignore_ascii_case(b"host") {
            head.host.unwrap_or(h.value).of(buf).to_vec()
        } else {
            let separator: &[u8] = if name.eq_ignore_ascii_case(b"cookie") {
                b"; "
            } else {
                b", "
            };
            let values: Vec<&[u8]> = headers[i..]
                .iter()
                .filter(|o| same(o))
                .map(|o| o.value.of(buf))
                .collect();
            // uWSGI reads HTTPS from this one by prefix: the trusted proxy's own, last.
            if name.eq_ignore_ascii_case(b"x-forwarded-ssl") {
                values.last().map(|v| v.to_vec()).unwrap_or_default()
            } else {
                values.join(separator)
            }
        };
        vars.push((key, value));
    }
    // The client's identity is ringway's to say: the client's X-Forwarded-For with the
    // real client's address appended, the real client IP, the request's ID.
    let mut forwarded = Vec::new();
    for h in headers {
        let value = h.value.of(buf).trim_ascii();
        if h.name.of(buf).eq_ignore_ascii_case(b"x-forwarded-for") && !value.is_empty() {
            forwarded.extend_from_slice(value);
            forwarded.extend_from_slice(b", ");
        }
    }
    forwarded.extend_from_slice(env.client_ip.to_string().as_bytes());
    let mut identity = vec![
        ("HTTP_X_FORWARDED_FOR", forwarded),
        ("HTTP_X_REAL_IP", env.client_ip.to_string().into_bytes()),
    ];
    if !env.request_id.is_empty() {
        identity.push(("HTTP_X_REQUEST_ID", env.request_id.to_vec()));
    }
    if let Some(host) = env.forwarded_host {
        identity.push(("HTTP_X_FORWARDED_HOST", host.to_vec()));
    }
    // A trusted proxy's last X-Forwarded-Proto, when it says http or https.
    let claimed = headers
        .iter()
        .filter(|h| h.name.of(buf).eq_ignore_ascii_case(b"x-forwarded-proto"))
        .next_back()
        .map(|h| h.value.of(buf).trim_ascii().to_ascii_lowercase());
    if let Some(scheme) = claimed.filter(|c| env.trusted_peer && (c == b"http" || c == b"https")) {
        identity.push(("HTTP_X_FORWARDED_PROTO", scheme));
    }
    for (key, value) in identity {
        if !param(key) {
            vars.push((key.as_bytes().to_vec(), value));
        }
    }
    for (k, v) in env.params {
        vars.push((k.as_bytes().to_vec(), v.as_bytes().to_vec()));
    }
    vars
}
