//! The access log sent to syslog (nginx's `access_log syslog:server=...`): the datagrams
//! nginx sends for the same requests, byte for byte but for the times; a route's own
//! server over a unix socket; a server that is not there yet costs lines, counted, and
//! says so once, never the requests.

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use ringway_tests::{App, Nginx, Req, Ringway, Uwsgi, roundtrip};

/// How long a datagram may take (lines go out at least every second).
const WITHIN: Duration = Duration::from_secs(10);

fn udp_server() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_read_timeout(Some(WITHIN)).expect("timeout");
    socket
}

/// The next `n` datagrams.
fn receive(n: usize, recv: impl Fn(&mut [u8]) -> std::io::Result<usize>) -> Vec<String> {
    let mut buf = vec![0u8; 70_000];
    (0..n)
        .map(|i| {
            let len = recv(&mut buf).unwrap_or_else(|e| panic!("datagram {i} of {n}: {e}"));
            String::from_utf8_lossy(&buf[..len]).into_owned()
        })
        .collect()
}

/// `<PRI>Mmm dd hh:mm:ss ` split off a datagram: the priority, the time and the rest.
fn split_header(datagram: &str) -> (&str, &str, &str) {
    let (priority, after) = datagram
        .split_once('>')
        .unwrap_or_else(|| panic!("no <PRI>: {datagram:?}"));
    let time = after
        .get(..15)
        .unwrap_or_else(|| panic!("no time: {datagram:?}"));
    let rest = after.get(15..).unwrap_or_default();
    (priority, time, rest)
}

/// RFC 3164's `Mmm dd hh:mm:ss`, the day padded with a space.
fn is_syslog_time(t: &str) -> bool {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = t.as_bytes();
    b.len() == 15
        && MONTHS.contains(&&t[..3])
        && b[3] == b' '
        && (b[4] == b' ' || b[4].is_ascii_digit())
        && b[5].is_ascii_digit()
        && b[6] == b' '
        && t[7..].bytes().enumerate().all(|(i, c)| match i {
            2 | 5 => c == b':',
            _ => c.is_ascii_digit(),
        })
}

/// The line with its `[$time_local]` masked.
fn masked(line: &str) -> String {
    match (line.find('['), line.find(']')) {
        (Some(open), Some(close)) if open < close => {
            format!("{}[TIME]{}", &line[..open], &line[close + 1..])
        }
        _ => line.to_owned(),
    }
}

#[test]
fn syslog_datagrams_are_nginx_s() {
    let uwsgi = Uwsgi::start(App::Raw);
    let (to_nginx, to_ringway) = (udp_server(), udp_server());
    let params = "facility=local0,severity=notice,tag=web_1";
    let nginx = Nginx::start_with_server_directives(
        uwsgi.socket(),
        &format!(
            "access_log syslog:server={},{params};",
            to_nginx.local_addr().expect("addr")
        ),
    );
    let ringway = Ringway::with(&uwsgi)
        .arg(
            "--access-log",
            &format!(
                "syslog:server={},{params}",
                to_ringway.local_addr().expect("addr")
            ),
        )
        .start();
    let requests = [
        Req::get("/"),
        Req::get("/environ/a?q=1").header("User-Agent", "agent \"quoted\"\\"),
        Req::get("/no/such/page").header("Referer", "https://example.com/from"),
    ];
    for req in &requests {
        let (n, r) = (roundtrip(nginx.addr(), req), roundtrip(ringway.addr(), req));
        assert_eq!(n.status, r.status, "nginx {n:?}\nringway {r:?}");
    }
    let from_nginx = receive(requests.len(), |buf| to_nginx.recv(buf));
    let from_ringway = receive(requests.len(), |buf| to_ringway.recv(buf));
    for (n, r) in from_nginx.iter().zip(&from_ringway) {
        let (n_priority, n_time, n_rest) = split_header(n);
        let (r_priority, r_time, r_rest) = split_header(r);
        assert_eq!(r_priority, "<133", "local0.notice: {r:?}");
        assert_eq!(n_priority, r_priority, "\nnginx   {n:?}\nringway {r:?}");
        assert!(
            is_syslog_time(n_time) && is_syslog_time(r_time),
            "{n:?}\n{r:?}"
        );
        assert!(!r.ends_with('\n'), "no newline in a datagram: {r:?}");
        // ` HOSTNAME TAG: ` and the combined line, the time inside it masked.
        assert_eq!(
            masked(n_rest),
            masked(r_rest),
            "\nnginx   {n:?}\nringway {r:?}"
        );
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let first = &from_ringway[0];
    assert!(
        first.contains(&format!(
            " {} web_1: 127.0.0.1 - - [",
            hostname.trim().to_lowercase()
        )),
        "{first:?}"
    );
}

#[test]
fn a_route_s_own_syslog_server_takes_its_lines() {
    let uwsgi = Uwsgi::start(App::Raw);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("log");
    let api = UnixDatagram::bind(&path).expect("bind");
    api.set_read_timeout(Some(WITHIN)).expect("timeout");
    let main = udp_server();
    let ringway = Ringway::with_config(format!(
        "access_log = \"syslog:server={}\"\n\
         [upstreams.app]\nservers = [\"{}\"]\n\
         [[routes]]\npath = \"/environ/api/\"\nupstream = \"app\"\n\
         access_log = \"syslog:server=unix:{},tag=api,nohostname\"\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n",
        main.local_addr().expect("addr"),
        uwsgi.upstream(),
        path.display(),
    ))
    .start();
    for path in ["/environ/api/users", "/environ/page"] {
        assert_eq!(
            roundtrip(ringway.addr(), &Req::get(path)).status,
            200,
            "{path}"
        );
    }
    let [api_line] = &receive(1, |buf| api.recv(buf))[..] else {
        unreachable!()
    };
    let (priority, _, rest) = split_header(api_line);
    assert_eq!(priority, "<190", "local7.info by default: {api_line:?}");
    assert!(
        rest.starts_with(" api: 127.0.0.1 - - [") && rest.contains("\"GET /environ/api/users "),
        "{api_line:?}"
    );
    let [main_line] = &receive(1, |buf| main.recv(buf))[..] else {
        unreachable!()
    };
    assert!(main_line.contains(" nginx: 127.0.0.1 "), "{main_line:?}");
    assert!(main_line.contains("\"GET /environ/page "), "{main_line:?}");
    // One line each: nothing else arrives.
    main.set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    let mut buf = [0u8; 1024];
    assert!(main.recv(&mut buf).is_err(), "one line only");
}

#[test]
fn a_syslog_server_not_there_yet_costs_lines_not_requests() {
    let uwsgi = Uwsgi::start(App::Raw);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("log");
    let ringway = Ringway::with(&uwsgi)
        .arg(
            "--access-log",
            &format!("syslog:server=unix:{}", path.display()),
        )
        .start();
    let ask = |agent: &str| {
        let r = roundtrip(
            ringway.addr(),
            &Req::get("/environ/x").header("User-Agent", agent),
        );
        assert_eq!(r.status, 200, "{r:?}");
    };
    // Lines over three seconds: three batches at least, each lost.
    for _ in 0..6 {
        ask("lost");
        std::thread::sleep(Duration::from_millis(500));
    }
    let failed = ringway_tests::wait::poll_until(WITHIN, || {
        ringway.stderr().contains("access log write failed")
    });
    let stderr = ringway.stderr();
    assert!(failed, "the loss is said:\n{stderr}");
    let said = stderr.matches("access log write failed").count();
    assert!(
        said <= 2,
        "said once per 5 s, not per batch: {said}\n{stderr}"
    );
    // The daemon comes up: the next lines reach it.
    let server = UnixDatagram::bind(&path).expect("bind");
    server.set_read_timeout(Some(WITHIN)).expect("timeout");
    ask("found");
    let lines = receive(1, |buf| server.recv(buf));
    assert!(lines[0].contains("\"found\""), "{lines:?}");
}
