//! nginx as the reference proxy: its own config in a temp dir, `uwsgi_pass` to a test uWSGI
//! with the stock `uwsgi_params` and the tuned buffers of docs/ARCHITECTURE.md, or
//! `proxy_pass` to an HTTP app server as gunicorn's and Granian's docs configure it.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::paths;
use crate::wait::{poll_until, stop_child};

const START_LIMIT: Duration = Duration::from_secs(10);
/// Tries when another process takes the free port between our probe and nginx's bind.
const PORT_TRIES: usize = 3;
/// The `server_name` nginx sends as SERVER_NAME; the parity test gives ringway the same one.
pub const SERVER_NAME: &str = "localhost";

/// A running nginx (master_process off); killed and reaped on drop, temp dir removed.
pub struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx in front of the uWSGI listening on `uwsgi_socket`, with the stock
    /// `uwsgi_params` plus the two lines that keep Content-Length and Content-Type from going
    /// out as `HTTP_CONTENT_LENGTH` / `HTTP_CONTENT_TYPE` too: stock nginx 1.22 sends them
    /// (see `nginx_stack.rs`), PEP 3333 forbids them, and the validator the apps run under
    /// would turn every request with a body into a 500. And the three lines an nginx user
    /// adds to pass the client's identity, which ringway always sends ([`IDENTITY_PARAMS`]).
    pub fn start(uwsgi_socket: &Path) -> Nginx {
        Nginx::start_config(uwsgi_socket, true, "")
    }

    /// Starts nginx with the stock `uwsgi_params` only (for pinning nginx's own behaviour;
    /// the uWSGI behind it must run without the validator).
    pub fn start_stock(uwsgi_socket: &Path) -> Nginx {
        Nginx::start_config(uwsgi_socket, false, "")
    }

    /// Like [`Nginx::start`], plus the app mounted at `mount` (`/api`) as nginx users mount
    /// one: `location /api/ { ...; uwsgi_param SCRIPT_NAME /api; uwsgi_modifier1 30; }` to
    /// the uWSGI at `mount_socket` (everything else still goes to `uwsgi_socket`). nginx
    /// itself sends PATH_INFO whole (`/api/x`); splitting it is left to uWSGI.
    pub fn start_mounted(uwsgi_socket: &Path, mount: &str, mount_socket: &Path) -> Nginx {
        let location = format!(
            "location {mount}/ {{
            {}
            uwsgi_param SCRIPT_NAME {mount};
            uwsgi_modifier1 30;
        }}",
            uwsgi_pass(mount_socket)
        );
        Nginx::start_with_locations(uwsgi_socket, &location)
    }

    /// Like [`Nginx::start`], plus `locations` (nginx text) in the server block, before the
    /// `location /` that passes to `uwsgi_socket`; see [`uwsgi_pass`] for their bodies.
    pub fn start_with_locations(uwsgi_socket: &Path, locations: &str) -> Nginx {
        Nginx::start_config(uwsgi_socket, true, locations)
    }

    /// Like [`Nginx::start`], plus `directives` (nginx text) in the server block, e.g.
    /// `access_log /tmp/x/access.log; client_max_body_size 1m;` (server-level directives
    /// override the http block's `access_log off` and body limit).
    pub fn start_with_server_directives(uwsgi_socket: &Path, directives: &str) -> Nginx {
        Nginx::start_config(uwsgi_socket, true, directives)
    }

    /// As [`Nginx::start_with_server_directives`], with `http` lines in the `http` block
    /// too (`log_format`, which only goes there).
    pub fn start_with_http_directives(uwsgi_socket: &Path, http: &str, server: &str) -> Nginx {
        let pass = format!("uwsgi_pass unix:{};", uwsgi_socket.display());
        Nginx::start_with(|dir, addr| config(dir, addr, &pass, true, server, http))
    }

    /// Starts nginx with `proxy_pass` to the HTTP app server at `app`: an `upstream` block
    /// with `keepalive 32`, `proxy_http_version 1.1`, `proxy_set_header Connection ""` and
    /// the usual Host / X-Forwarded-For / X-Forwarded-Proto / X-Real-IP lines
    /// ([`PROXY_PASS_LINES`]).
    pub fn start_proxy_pass(app: SocketAddr) -> Nginx {
        Nginx::start_proxy_pass_with_locations(app, "")
    }

    /// Like [`Nginx::start_proxy_pass`], plus `locations` (nginx text) in the server block,
    /// before the `location /`; `upstream app_http` names the app.
    pub fn start_proxy_pass_with_locations(app: SocketAddr, locations: &str) -> Nginx {
        Nginx::start_with(|dir, addr| proxy_pass_config(dir, addr, app, locations))
    }

    /// Starts nginx passing every request to a group of uWSGIs, `upstream app_group { server
    /// unix:...; ... }` (round robin; nginx's defaults `max_fails=1 fail_timeout=10s`), with
    /// `directives` in the location (`uwsgi_next_upstream error http_503;`, ...).
    pub fn start_uwsgi_group(sockets: &[&Path], directives: &str) -> Nginx {
        let servers: Vec<(&Path, &str)> = sockets.iter().map(|s| (*s, "")).collect();
        Nginx::start_uwsgi_group_with(&servers, directives)
    }

    /// As [`Nginx::start_uwsgi_group`], each socket with the parameters of its `server`
    /// line (`weight=3 backup`).
    pub fn start_uwsgi_group_with(servers: &[(&Path, &str)], directives: &str) -> Nginx {
        Nginx::start_uwsgi_group_balanced(servers, "", directives)
    }

    /// As [`Nginx::start_uwsgi_group_with`], with `method` (`ip_hash;`) in the `upstream`
    /// block.
    pub fn start_uwsgi_group_balanced(
        servers: &[(&Path, &str)],
        method: &str,
        directives: &str,
    ) -> Nginx {
        let servers: String = servers
            .iter()
            .map(|(s, params)| format!("server unix:{} {params};\n        ", s.display()))
            .collect();
        let group = format!("upstream app_group {{\n        {method}\n        {servers}}}");
        let pass = format!("{directives}\n            uwsgi_pass app_group;");
        Nginx::start_with(|dir, addr| config(dir, addr, &pass, true, "", &group))
    }

    /// Like [`Nginx::start_with_locations`], but listening with TLS and HTTP/2 as nginx 1.22
    /// writes it (`listen ADDR ssl http2;`), serving the certificate `cert` (PEM, with its
    /// chain) and its key `key`; [`Nginx::addr`] is then an HTTPS address.
    pub fn start_tls_http2(uwsgi_socket: &Path, cert: &Path, key: &Path, locations: &str) -> Nginx {
        Nginx::start_tls(
            uwsgi_socket,
            &TlsServer {
                cert,
                key,
                listen: "ssl http2",
                directives: "",
                locations,
                params: "",
            },
        )
    }

    /// nginx in front of the uWSGI at `uwsgi_socket` on one TLS address, as `server` says.
    pub fn start_tls(uwsgi_socket: &Path, server: &TlsServer<'_>) -> Nginx {
        let pass = format!(
            "{}\n            uwsgi_pass unix:{};",
            server.params,
            uwsgi_socket.display()
        );
        Nginx::start_with(|dir, addr| {
            let plain = format!("listen {addr};");
            let tls = format!(
                "listen {addr} {};\n        ssl_certificate {};\n        \
                 ssl_certificate_key {};\n        {}",
                server.listen,
                server.cert.display(),
                server.key.display(),
                server.directives
            );
            let conf = config(dir, addr, &pass, true, server.locations, "");
            assert!(conf.contains(&plain), "nginx.conf has {plain:?}:\n{conf}");
            conf.replacen(&plain, &tls, 1)
        })
    }

    fn start_config(uwsgi_socket: &Path, pep3333: bool, locations: &str) -> Nginx {
        let pass = format!("uwsgi_pass unix:{};", uwsgi_socket.display());
        Nginx::start_with(|dir, addr| config(dir, addr, &pass, pep3333, locations, ""))
    }

    /// Starts nginx with the config `conf` writes for its temp dir and listening address.
    fn start_with(conf: impl Fn(&Path, SocketAddr) -> String) -> Nginx {
        let mut last_log = String::new();
        for _ in 0..PORT_TRIES {
            match Nginx::try_start(&conf) {
                Ok(nginx) => return nginx,
                Err(log) => last_log = log,
            }
        }
        panic!("nginx did not start after {PORT_TRIES} tries; last error log:\n{last_log}");
    }

    fn try_start(conf: &impl Fn(&Path, SocketAddr) -> String) -> Result<Nginx, String> {
        let dir = tempfile::Builder::new()
            .prefix("ringway-nginx-")
            .tempdir()
            .expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let conf = conf(dir.path(), addr);
        fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
        let error_log = dir.path().join("error.log");
        let mut child = Command::new(paths::nginx_bin())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(&error_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join("stderr.log")).expect("stderr log"))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", paths::nginx_bin().display()));
        let mut exited = false;
        let ready = poll_until(START_LIMIT, || {
            if let Ok(Some(_)) = child.try_wait() {
                exited = true;
                return true;
            }
            TcpStream::connect(addr).is_ok()
        });
        let logs = || {
            let read = |name: &str| fs::read_to_string(dir.path().join(name)).unwrap_or_default();
            format!("{}{}", read("stderr.log"), read("error.log"))
        };
        if exited || !ready {
            let log = logs();
            stop_child(&mut child, libc::SIGKILL, Duration::from_secs(1), true);
            return Err(log);
        }
        Ok(Nginx { child, addr, dir })
    }

    /// Where nginx listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id (with `master_process off`, the one process that serves).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop_child(&mut self.child, libc::SIGTERM, Duration::from_secs(5), true);
    }
}

/// The two lines that keep Content-Length and Content-Type from also going out as HTTP_ vars:
/// an `HTTP_*` uwsgi_param hides the request header of that name; with an empty value and
/// `if_not_empty` the var is not sent at all.
const PEP3333_PARAMS: &str = "uwsgi_param HTTP_CONTENT_LENGTH \"\" if_not_empty;
            uwsgi_param HTTP_CONTENT_TYPE \"\" if_not_empty;";

/// What ringway tells every app about the client, as nginx users configure it: the client's
/// X-Forwarded-For with the peer appended, X-Real-IP, and a request ID per request (the
/// client's own X-Real-IP and X-Request-ID are hidden: an `HTTP_` param replaces the header).
pub const IDENTITY_PARAMS: &str = "uwsgi_param HTTP_X_FORWARDED_FOR $proxy_add_x_forwarded_for;
            uwsgi_param HTTP_X_REAL_IP $remote_addr;
            uwsgi_param HTTP_X_REQUEST_ID $request_id;";

/// A TLS `server` block for [`Nginx::start_tls`].
pub struct TlsServer<'a> {
    /// `ssl_certificate` and `ssl_certificate_key`.
    pub cert: &'a Path,
    pub key: &'a Path,
    /// What follows the address in `listen`: `ssl`, `ssl http2`.
    pub listen: &'a str,
    /// More lines of the server block (`ssl_verify_client on;`, ...).
    pub directives: &'a str,
    /// `location` blocks before `location /`.
    pub locations: &'a str,
    /// Lines of `location /` before its `uwsgi_pass` (`uwsgi_param ...;`).
    pub params: &'a str,
}

/// The body of a location passing to the uWSGI at `socket` as [`Nginx::start`] does: the
/// stock `uwsgi_params`, the two PEP 3333 lines, the identity lines, `uwsgi_pass`.
pub fn uwsgi_pass(socket: &Path) -> String {
    format!(
        "include /etc/nginx/uwsgi_params;
            {PEP3333_PARAMS}
            {IDENTITY_PARAMS}
            uwsgi_pass unix:{};",
        socket.display()
    )
}

/// nginx.conf; `pass` ends `location /` (its `uwsgi_pass`), `locations` go into the server
/// block before it, `upstreams` into the http block.
fn config(
    dir: &Path,
    addr: SocketAddr,
    pass: &str,
    pep3333: bool,
    locations: &str,
    upstreams: &str,
) -> String {
    let d = dir.display();
    let pep3333 = if pep3333 {
        format!("{PEP3333_PARAMS}\n            {IDENTITY_PARAMS}")
    } else {
        String::new()
    };
    let root = paths::document_root();
    let root = root.display();
    format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    # The tuned buffers of docs/ARCHITECTURE.md (nginx's defaults spill to temp files).
    client_body_buffer_size 64k;
    uwsgi_buffer_size 16k;
    uwsgi_buffers 8 16k;
    client_max_body_size 64m;
    {upstreams}
    server {{
        listen {addr};
        server_name {SERVER_NAME};
        root {root};
        {locations}
        location / {{
            include /etc/nginx/uwsgi_params;
            {pep3333}
            {pass}
        }}
    }}
}}
"
    )
}

/// The `location` lines of an nginx user's `proxy_pass` to a keep-alive HTTP upstream, as
/// gunicorn's and Granian's deployment docs write them.
pub const PROXY_PASS_LINES: &str = "proxy_pass http://app_http;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Real-IP $remote_addr;";

/// nginx.conf with `proxy_pass` to the HTTP app server at `app` through an `upstream` block
/// keeping 32 idle connections.
fn proxy_pass_config(dir: &Path, addr: SocketAddr, app: SocketAddr, locations: &str) -> String {
    let d = dir.display();
    format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_body_buffer_size 64k;
    proxy_buffer_size 16k;
    proxy_buffers 8 16k;
    client_max_body_size 64m;
    upstream app_http {{
        server {app};
        keepalive 32;
    }}
    server {{
        listen {addr};
        server_name {SERVER_NAME};
        {locations}
        location / {{
            {PROXY_PASS_LINES}
        }}
    }}
}}
"
    )
}
