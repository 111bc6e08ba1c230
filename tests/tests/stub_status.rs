//! The status page (`stub_status = true`, nginx's `stub_status`), against nginx's own page in
//! the same test: the same client actions (two connections that send nothing, one kept
//! alive after a request, one with half a head, one request at the app, the page's own)
//! read the same figures from both, in the same format. The nginx exporter for Prometheus,
//! as its users run it, reads ringway's page as it reads nginx's.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ringway_tests::tls::tool;
use ringway_tests::wait::{poll_until, stop_child};
use ringway_tests::{App, Conn, Nginx, Req, Response, Ringway, Uwsgi};

const SOON: Duration = Duration::from_secs(10);

/// nginx's page, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Page {
    active: u64,
    accepts: u64,
    handled: u64,
    requests: u64,
    reading: u64,
    writing: u64,
    waiting: u64,
}

/// Reads a page of nginx's exact layout (each line of figures ends with a space); `None`
/// for anything else.
fn parse(text: &str) -> Option<Page> {
    let numbers = |line: &str| -> Option<Vec<u64>> {
        line.split(' ')
            .filter(|w| w.bytes().all(|b| b.is_ascii_digit()) && !w.is_empty())
            .map(|w| w.parse().ok())
            .collect()
    };
    let mut lines = text.split_inclusive('\n');
    let active = lines
        .next()?
        .strip_prefix("Active connections: ")?
        .strip_suffix(" \n")?
        .parse()
        .ok()?;
    (lines.next()? == "server accepts handled requests\n").then_some(())?;
    let counts = lines.next()?.strip_prefix(' ')?.strip_suffix(" \n")?;
    let [accepts, handled, requests] = numbers(counts)?[..] else {
        return None;
    };
    let phases = lines.next()?;
    let mut words = phases.strip_suffix(" \n")?.split(' ');
    let mut labelled = |label: &str| -> Option<u64> {
        (words.next()? == label).then_some(())?;
        words.next()?.parse().ok()
    };
    let (reading, writing, waiting) = (
        labelled("Reading:")?,
        labelled("Writing:")?,
        labelled("Waiting:")?,
    );
    lines.next().is_none().then_some(Page {
        active,
        accepts,
        handled,
        requests,
        reading,
        writing,
        waiting,
    })
}

/// The page, asked on the monitor's kept connection.
fn status(monitor: &mut Conn) -> (Response, Option<Page>) {
    monitor
        .send(&Req::get("/nginx_status").to_bytes())
        .expect("send");
    let r = monitor.read_response().expect("the status page");
    let page = parse(&r.text());
    (r, page)
}

/// What the page reads while the clients of [`held_clients`] are held: besides the
/// monitor's kept connection (writing its own request), two quiet new connections and one
/// kept alive after its request wait, one reads half a head, one request is at the app.
const HELD: (u64, u64, u64, u64) = (6, 1, 2, 3);

/// The clients of the scenario, held open while the page is read.
struct Held {
    _quiet: Vec<TcpStream>,
    _kept: Conn,
    _partial: TcpStream,
    _slow: Conn,
}

fn held_clients(addr: SocketAddr) -> Held {
    let quiet = (0..2)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let mut kept = Conn::open(addr);
    kept.send(&Req::get("/").to_bytes()).expect("send");
    let r = kept.read_response().expect("an answer");
    assert_eq!(r.status, 200, "{r:?}");
    let mut partial = TcpStream::connect(addr).expect("connect");
    partial
        .write_all(b"GET / HTTP/1.1\r\nHo")
        .expect("half a head");
    let mut slow = Conn::open(addr);
    slow.send(&Req::get("/slow?ms=4000").to_bytes())
        .expect("send");
    Held {
        _quiet: quiet,
        _kept: kept,
        _partial: partial,
        _slow: slow,
    }
}

/// The nginx exporter for Prometheus (Debian's `prometheus-nginx-exporter`), reading the
/// page at `scrape_uri`; killed on drop.
struct Exporter {
    child: Child,
    addr: SocketAddr,
}

impl Exporter {
    fn start(scrape_uri: &str) -> Exporter {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(tool(
            "prometheus-nginx-exporter",
            "prometheus-nginx-exporter",
        ))
        .arg(format!("-nginx.scrape-uri={scrape_uri}"))
        .arg(format!("-web.listen-address={addr}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning prometheus-nginx-exporter");
        Exporter { child, addr }
    }

    /// Its `/metrics` text, once it answers.
    fn scrape(&self) -> Option<String> {
        let mut stream = TcpStream::connect(self.addr).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: e\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        text.starts_with("HTTP/1.0 200").then_some(text)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        stop_child(&mut self.child, libc::SIGKILL, Duration::from_secs(1), true);
    }
}

/// The value of a series without labels in exposition text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Runs the scenario on the proxy at `addr`, the exporter reading the page while the
/// clients are held: the first page, the one that read [`HELD`], and how many pages were
/// asked between the two.
fn scenario(proxy: &str, addr: SocketAddr) -> (Page, Page, u64) {
    let mut monitor = Conn::open(addr);
    let (r, before) = status(&mut monitor);
    assert_eq!(r.status, 200, "{proxy}: {r:?}");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/plain"),
        "{proxy}: {r:?}"
    );
    let before = before.unwrap_or_else(|| panic!("{proxy}: not nginx's page: {:?}", r.text()));
    let held = held_clients(addr);
    let mut polls = 0;
    let mut last = None;
    let settled = poll_until(SOON, || {
        polls += 1;
        let (_, page) = status(&mut monitor);
        last = page;
        page.is_some_and(|p| (p.active, p.reading, p.writing, p.waiting) == HELD)
    });
    let after = last.unwrap_or_else(|| panic!("{proxy}: no page"));
    assert!(
        settled,
        "{proxy}: (active, reading, writing, waiting) {:?}, expected {HELD:?}: {after:?}",
        (after.active, after.reading, after.writing, after.waiting)
    );

    // The exporter reads the page as its users run it (its own connection adds one).
    let exporter = Exporter::start(&format!("http://{addr}/nginx_status"));
    let mut text = String::new();
    let scraped = poll_until(SOON, || {
        text = exporter.scrape().unwrap_or_default();
        sample(&text, "nginx_up") == Some(1.0)
    });
    assert!(scraped, "{proxy}: the exporter reads the page:\n{text}");
    assert_eq!(
        sample(&text, "nginx_connections_reading"),
        Some(1.0),
        "{proxy}:\n{text}"
    );
    assert!(
        sample(&text, "nginx_connections_waiting") >= Some(3.0),
        "{proxy}:\n{text}"
    );
    assert!(
        sample(&text, "nginx_http_requests_total") > Some(after.requests as f64),
        "{proxy}: the exporter's request counted too:\n{text}"
    );
    drop(held);
    (before, after, polls)
}

/// Both proxies, one uWSGI: the same figures, the same format; the allow list and the
/// methods as nginx's.
#[test]
fn the_status_page_reads_as_nginx_s_for_the_same_clients() {
    let uwsgi = Uwsgi::start(App::Raw);
    let nginx = Nginx::start_with_locations(
        uwsgi.socket(),
        "location = /nginx_status { stub_status; allow 127.0.0.1; deny all; }",
    );
    let ringway = Ringway::with_config(format!(
        "[upstreams.app]\nservers = [\"{}\"]\n\
         [[routes]]\npath = \"/nginx_status\"\nexact = true\nstub_status = true\n\
         allow = [\"127.0.0.1\"]\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n",
        uwsgi.upstream()
    ))
    .arg("--metrics", "127.0.0.1:0")
    .flag("--no-ebpf")
    .start();

    let mut read = Vec::new();
    for (proxy, addr) in [("nginx", nginx.addr()), ("ringway", ringway.addr())] {
        let (before, after, polls) = scenario(proxy, addr);
        // Five connections since the first page; their three requests (the half head's
        // too, as nginx counts it from its first byte) and the pages asked since.
        assert_eq!(after.accepts - before.accepts, 5, "{proxy}: {after:?}");
        assert_eq!(after.handled, after.accepts, "{proxy}: {after:?}");
        assert_eq!(
            after.requests - before.requests,
            3 + polls,
            "{proxy}: {before:?} {after:?}"
        );
        read.push((after.active, after.reading, after.writing, after.waiting));

        let mut monitor = Conn::open(addr);
        let head = Req::new("HEAD", "/nginx_status");
        monitor.send(&head.to_bytes()).expect("send");
        let r = monitor.read_response_to("HEAD").expect("HEAD");
        assert_eq!((r.status, r.body.len()), (200, 0), "{proxy}: {r:?}");
        let r = ringway_tests::roundtrip(addr, &Req::post("/nginx_status", b"x"));
        assert_eq!(r.status, 405, "{proxy}: {r:?}");
        let mut stranger = Conn::open_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), addr);
        stranger
            .send(&Req::get("/nginx_status").to_bytes())
            .expect("send");
        let r = stranger.read_response().expect("an answer");
        assert_eq!(r.status, 403, "{proxy}: {r:?}");
    }
    assert_eq!(read[0], read[1], "nginx's figures, then ringway's");

    // The same gauges in ringway's own metrics, once the clients are gone: nothing
    // reading or being served (the page's monitor connections closed too).
    let metrics = ringway.metrics_addr();
    let mut text = String::new();
    let settled = poll_until(SOON, || {
        text = ringway_tests::roundtrip(metrics, &Req::get("/metrics")).text();
        ["reading", "writing", "waiting"].iter().all(|state| {
            sample(
                &text,
                &format!("ringway_connections_by_state{{state=\"{state}\"}}"),
            ) == Some(0.0)
        })
    });
    assert!(settled, "{text}");
}
