//! TLS end to end: certificates made in the test (rcgen, and the openssl CLI for the key
//! formats rcgen does not write), and real TLS clients run as processes: curl, `openssl
//! s_client` (and `s_server` as a reference server), Python's `ssl` module
//! (`tests/tools/tls_client.py`) and sslscan. Every process is bounded in time and killed on
//! drop; a missing tool fails the test with the package to install (CI installs them all).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber, date_time_ymd,
};
use serde_json::Value;
use tempfile::TempDir;

use crate::client::{Conn, Req, roundtrip};
use crate::paths;
use crate::wait::{poll_until, stop_child};

/// Longest any one client process may run (a 10 MiB transfer through a debug build included).
pub const TOOL_LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Tools

/// The path of `name` on PATH (or in /usr/bin, /usr/sbin); panics naming the Debian
/// package to install when it is missing: a missing tool is a failure, never a skip.
pub fn tool(name: &str, package: &str) -> PathBuf {
    let dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    dirs.into_iter()
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found on PATH: `apt-get install {package}` (.ci/run installs it; \
                 the tests that need it are not skipped without it)"
            )
        })
}

/// What a finished process left.
pub struct Ran {
    /// The command, for messages.
    pub what: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its stderr, as text.
    pub stderr: String,
}

impl Ran {
    /// stdout as text (lossy).
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stdout and stderr together, as text.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.out(), self.stderr)
    }

    /// Panics with the output unless the process exited 0.
    pub fn success(self) -> Ran {
        assert!(self.status.success(), "{self:?}");
        self
    }
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let out = self.out();
        let shown = &out[..out.len().min(4000)];
        write!(
            f,
            "`{}` ended {}\n--- stdout ---\n{shown}\n--- stderr ---\n{}",
            self.what, self.status, self.stderr
        )
    }
}

/// Runs `cmd` with `input` on stdin (then closed), killing it after `limit` (a panic then,
/// with whatever it printed).
pub fn run(cmd: &mut Command, input: &[u8], limit: Duration) -> Ran {
    let what = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning `{what}`: {e}"));
    let stdout = collect(child.stdout.take().expect("piped stdout"));
    let stderr = collect(child.stderr.take().expect("piped stderr"));
    if let Some(mut stdin) = child.stdin.take() {
        // A process that exits without reading its input is no error of ours.
        let _ = stdin.write_all(input);
    }
    let mut status = None;
    poll_until(limit, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    let timed_out = status.is_none();
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        child.wait().expect("reap a killed child")
    });
    let ran = Ran {
        what,
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned(),
    };
    assert!(!timed_out, "killed after {limit:?}: {ran:?}");
    ran
}

/// A thread reading `pipe` to its end.
fn collect(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut all = Vec::new();
        let _ = pipe.read_to_end(&mut all);
        all
    })
}

/// `openssl ARGS`, which must succeed.
fn openssl(args: &[&str]) -> Ran {
    run(
        Command::new(tool("openssl", "openssl")).args(args),
        b"",
        TOOL_LIMIT,
    )
    .success()
}

// ---------------------------------------------------------------------------------------
// Certificates

/// A certificate and its key on disk, and what the test needs to recognise it.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The PEM certificate.
    pub cert: PathBuf,
    /// The PEM key.
    pub key: PathBuf,
    /// The certificate, DER: what a client is served.
    pub der: Vec<u8>,
    /// The serial number, upper-case hex as `openssl x509 -serial` prints it.
    pub serial: String,
    /// notAfter, seconds since the epoch.
    pub not_after: i64,
}

/// The key kinds the openssl CLI makes for [`Pki::issue_openssl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpensslKey {
    /// RSA 2048 in PKCS#1 (`BEGIN RSA PRIVATE KEY`), as `openssl genrsa -traditional`
    /// writes it.
    RsaPkcs1,
    /// ECDSA P-256 in SEC1 (`BEGIN EC PRIVATE KEY`), as `openssl ecparam -genkey` writes it.
    EcSec1,
}

/// A test certificate authority (ECDSA P-256, rcgen) in a temp dir, issuing leaf
/// certificates. Clients trust `ca.pem` only.
pub struct Pki {
    dir: TempDir,
    ca_cert: PathBuf,
    ca_key: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    /// A fresh CA.
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("ringway-pki-")
            .tempdir()
            .expect("temp dir");
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, "ringway test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = date_time_ymd(2024, 1, 1);
        params.not_after = date_time_ymd(2040, 1, 1);
        let cert = params.self_signed(&key).expect("CA certificate");
        let ca_cert = dir.path().join("ca.pem");
        let ca_key = dir.path().join("ca.key");
        std::fs::write(&ca_cert, cert.pem()).expect("write ca.pem");
        std::fs::write(&ca_key, key.serialize_pem()).expect("write ca.key");
        Pki {
            dir,
            ca_cert,
            ca_key,
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate clients are given (`--cacert`, `-CAfile`).
    pub fn ca(&self) -> &Path {
        &self.ca_cert
    }

    /// The temp dir the files are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// An ECDSA P-256 certificate for `names` (the first is also the CN) with `serial`,
    /// valid until `not_after` (year, month, day), key in PKCS#8, written to
    /// `STEM.pem` / `STEM.key` (replacing any earlier ones: that is how a renewal looks).
    pub fn issue(&self, stem: &str, names: &[&str], serial: u64, not_after: (i32, u8, u8)) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        params.serial_number = Some(SerialNumber::from(serial));
        params.not_before = date_time_ymd(2024, 1, 1);
        let (year, month, day) = not_after;
        params.not_after = date_time_ymd(year, month, day);
        self.sign(stem, &params, &key, serial)
    }

    /// `params` for `key`, signed by this CA, written to `STEM.pem` / `STEM.key`.
    fn sign(&self, stem: &str, params: &CertificateParams, key: &KeyPair, serial: u64) -> Leaf {
        let cert = params.signed_by(key, &self.issuer).expect("sign leaf");
        let leaf = Leaf {
            cert: self.dir.path().join(format!("{stem}.pem")),
            key: self.dir.path().join(format!("{stem}.key")),
            der: cert.der().to_vec(),
            serial: format!("{serial:X}"),
            not_after: params.not_after.unix_timestamp(),
        };
        std::fs::write(&leaf.cert, cert.pem()).expect("write cert");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write key");
        leaf
    }

    /// A client certificate (for TLS client authentication) with the subject `dn` (its
    /// attributes in order, the first the outermost) and `serial`, written to `STEM.pem` /
    /// `STEM.key`.
    pub fn issue_client(&self, stem: &str, dn: &[(DnType, &str)], serial: u64) -> Leaf {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        for (kind, value) in dn {
            params.distinguished_name.push(kind.clone(), *value);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.serial_number = Some(SerialNumber::from(serial));
        params.not_before = date_time_ymd(2024, 1, 1);
        params.not_after = date_time_ymd(2035, 1, 1);
        self.sign(stem, &params, &key, serial)
    }

    /// [`Pki::issue_client`] with the subject `CN=name`, valid until `not_after` only.
    pub fn issue_client_until(
        &self,
        stem: &str,
        name: &str,
        serial: u64,
        not_after: time::OffsetDateTime,
    ) -> Leaf {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.serial_number = Some(SerialNumber::from(serial));
        params.not_before = date_time_ymd(2024, 1, 1);
        params.not_after = not_after;
        self.sign(stem, &params, &key, serial)
    }

    /// A revocation list of this CA naming `serials`, written to `crl.pem`.
    pub fn revoke(&self, serials: &[u64]) -> PathBuf {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2024, 1, 1),
            next_update: date_time_ymd(2039, 1, 1),
            crl_number: SerialNumber::from(1),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|&serial| RevokedCertParams {
                    serial_number: SerialNumber::from(serial),
                    revocation_time: date_time_ymd(2024, 6, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).expect("sign CRL");
        let path = self.dir.path().join("crl.pem");
        std::fs::write(&path, crl.pem().expect("CRL PEM")).expect("write crl.pem");
        path
    }

    /// An ECDSA P-256 certificate for `name` issued by an intermediate CA (itself issued by
    /// this CA), written to `STEM.pem` as a chain: the certificate, then the intermediate.
    /// A client that trusts only [`Pki::ca`] verifies it only if both are served.
    pub fn issue_chained(&self, stem: &str, name: &str, serial: u64) -> Leaf {
        let key = KeyPair::generate().expect("intermediate key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "ringway test intermediate CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = date_time_ymd(2024, 1, 1);
        params.not_after = date_time_ymd(2039, 1, 1);
        let intermediate = params
            .signed_by(&key, &self.issuer)
            .expect("sign intermediate");
        let intermediate_issuer = Issuer::new(params, key);

        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.serial_number = Some(SerialNumber::from(serial));
        params.not_before = date_time_ymd(2024, 1, 1);
        params.not_after = date_time_ymd(2030, 1, 1);
        let cert = params
            .signed_by(&key, &intermediate_issuer)
            .expect("sign leaf");
        let leaf = Leaf {
            cert: self.dir.path().join(format!("{stem}.pem")),
            key: self.dir.path().join(format!("{stem}.key")),
            der: cert.der().to_vec(),
            serial: format!("{serial:X}"),
            not_after: params.not_after.unix_timestamp(),
        };
        std::fs::write(&leaf.cert, cert.pem() + &intermediate.pem()).expect("write chain");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write key");
        leaf
    }

    /// A certificate for `name` made with the openssl CLI, its key of `kind` (formats rcgen
    /// does not write), signed by this CA, valid 30 days.
    pub fn issue_openssl(&self, stem: &str, name: &str, kind: OpensslKey, serial: u64) -> Leaf {
        let path = |ext: &str| self.dir.path().join(format!("{stem}.{ext}"));
        let (key, cert, csr, der) = (path("key"), path("pem"), path("csr"), path("der"));
        let s = |p: &Path| p.to_str().expect("utf-8 temp path").to_owned();
        let (key_s, csr_s) = (s(&key), s(&csr));
        let (header, _) = match kind {
            OpensslKey::RsaPkcs1 => (
                "-----BEGIN RSA PRIVATE KEY-----",
                openssl(&["genrsa", "-traditional", "-out", &key_s, "2048"]),
            ),
            OpensslKey::EcSec1 => (
                "-----BEGIN EC PRIVATE KEY-----",
                openssl(&[
                    "ecparam",
                    "-genkey",
                    "-name",
                    "prime256v1",
                    "-noout",
                    "-out",
                    &key_s,
                ]),
            ),
        };
        let text = std::fs::read_to_string(&key).expect("read the key openssl wrote");
        assert!(
            text.starts_with(header),
            "openssl wrote a {kind:?} key not in the expected format ({header}):\n{text}"
        );
        let subject = format!("/CN={name}");
        let san = format!("subjectAltName=DNS:{name}");
        openssl(&[
            "req", "-new", "-key", &key_s, "-subj", &subject, "-addext", &san, "-out", &csr_s,
        ]);
        let serial_arg = format!("0x{serial:x}");
        self.sign_with_openssl(
            &csr_s,
            &serial_arg,
            &["-copy_extensions", "copyall"],
            (cert, key, der),
        )
    }

    /// Signs the request `csr` with this CA by the openssl CLI (serial `serial`, 30 days,
    /// `extra` arguments), writing the certificate PEM and DER to the paths of `files`
    /// (certificate, key, DER).
    fn sign_with_openssl(
        &self,
        csr: &str,
        serial: &str,
        extra: &[&str],
        (cert, key, der): (PathBuf, PathBuf, PathBuf),
    ) -> Leaf {
        let s = |p: &Path| p.to_str().expect("utf-8 temp path").to_owned();
        let (cert_s, der_s) = (s(&cert), s(&der));
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            self.ca_cert.to_str().expect("utf-8"),
            "-CAkey",
            self.ca_key.to_str().expect("utf-8"),
            "-set_serial",
            serial,
            "-days",
            "30",
            "-out",
            &cert_s,
        ];
        args.extend_from_slice(extra);
        openssl(&args);
        openssl(&["x509", "-in", &cert_s, "-outform", "DER", "-out", &der_s]);
        let end = openssl(&["x509", "-in", &cert_s, "-noout", "-enddate"]).out();
        let serial = serial
            .strip_prefix("0x")
            .map_or_else(|| serial.to_owned(), |hex| hex.to_ascii_uppercase());
        Leaf {
            der: std::fs::read(&der).expect("read DER"),
            cert,
            key,
            serial,
            not_after: parse_openssl_date(end.trim().trim_start_matches("notAfter=")),
        }
    }
}

impl Pki {
    /// A client certificate made with the openssl CLI: the subject `subject` in openssl's
    /// `-subj` form (`+` joins a multi-valued RDN), the serial `serial` as openssl reads it
    /// (`-255` too), valid 30 days, for client authentication.
    pub fn issue_client_openssl(&self, stem: &str, subject: &str, serial: &str) -> Leaf {
        let path = |ext: &str| self.dir.path().join(format!("{stem}.{ext}"));
        let (key, cert, csr, der, ext) = (
            path("key"),
            path("pem"),
            path("csr"),
            path("der"),
            path("ext"),
        );
        let s = |p: &Path| p.to_str().expect("utf-8 temp path").to_owned();
        let (key_s, csr_s, ext_s) = (s(&key), s(&csr), s(&ext));
        std::fs::write(&ext, "extendedKeyUsage=clientAuth\n").expect("write the extensions");
        openssl(&[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-noout",
            "-out",
            &key_s,
        ]);
        openssl(&[
            "req",
            "-new",
            "-key",
            &key_s,
            "-multivalue-rdn",
            "-subj",
            subject,
            "-out",
            &csr_s,
        ]);
        self.sign_with_openssl(&csr_s, serial, &["-extfile", &ext_s], (cert, key, der))
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

/// Seconds since the epoch of an openssl date, `Jan  2 03:04:05 2026 GMT`.
fn parse_openssl_date(text: &str) -> i64 {
    parse_date(text).unwrap_or_else(|| panic!("unexpected openssl date {text:?}"))
}

fn parse_date(text: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [month, day, time, year, "GMT"] = parts[..] else {
        return None;
    };
    let month = u8::try_from(MONTHS.iter().position(|m| *m == month)? + 1).ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms[..] else { return None };
    let midnight = date_time_ymd(year.parse().ok()?, month, day.parse().ok()?).unix_timestamp();
    Some(midnight + h * 3600 + m * 60 + s)
}

/// The `[tls]` table of a ringway config serving `certs` (the first the default), with
/// `extra` lines added to it (`redirect_http = true`, ...).
pub fn tls_toml(certs: &[&Leaf], extra: &str) -> String {
    let list: Vec<String> = certs
        .iter()
        .map(|c| {
            format!(
                "{{ cert = '{}', key = '{}' }}",
                c.cert.display(),
                c.key.display()
            )
        })
        .collect();
    format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [ {} ]\n{extra}\n",
        list.join(", ")
    )
}

// ---------------------------------------------------------------------------------------
// curl and openssl s_client

/// `curl -sS` with bounded connect and total times, and `args`.
pub fn curl(args: &[&str]) -> Ran {
    run(
        Command::new(tool("curl", "curl"))
            .args(["-sS", "--connect-timeout", "5", "--max-time", "50"])
            .args(args),
        b"",
        TOOL_LIMIT,
    )
}

/// `--resolve NAME:PORT:127.0.0.1` and the URL `https://NAME:PORT/PATH` for curl.
pub fn curl_target(name: &str, tls: SocketAddr, path: &str) -> [String; 3] {
    [
        "--resolve".to_owned(),
        format!("{name}:{}:{}", tls.port(), tls.ip()),
        format!("https://{name}:{}{path}", tls.port()),
    ]
}

/// From `curl -v` output: the TLS version and cipher of `* SSL connection using V / C`.
pub fn curl_tls(verbose: &str) -> Option<(String, String)> {
    let line = verbose
        .lines()
        .find(|l| l.starts_with("* SSL connection using "))?;
    let (version, cipher) = line
        .trim_start_matches("* SSL connection using ")
        .split_once(" / ")?;
    Some((version.trim().to_owned(), cipher.trim().to_owned()))
}

/// `openssl s_client -connect ADDR ARGS` with stdin closed at once: it handshakes, sees the
/// end of its input, and quits.
pub fn s_client(addr: SocketAddr, args: &[&str]) -> Ran {
    run(
        Command::new(tool("openssl", "openssl"))
            .args(["s_client", "-connect", &addr.to_string()])
            .args(args),
        b"",
        Duration::from_secs(20),
    )
}

/// The first certificate in `s_client -showcerts` output, as `openssl x509 -noout -serial
/// -subject` describes it: (serial, subject).
pub fn served_certificate(s_client_out: &str) -> (String, String) {
    let begin = "-----BEGIN CERTIFICATE-----";
    let end = "-----END CERTIFICATE-----";
    let start = s_client_out
        .find(begin)
        .unwrap_or_else(|| panic!("no certificate in s_client's output:\n{s_client_out}"));
    let stop = s_client_out[start..]
        .find(end)
        .map(|i| start + i + end.len())
        .unwrap_or_else(|| panic!("truncated certificate:\n{s_client_out}"));
    let pem = format!("{}\n", &s_client_out[start..stop]);
    let described = run(
        Command::new(tool("openssl", "openssl")).args(["x509", "-noout", "-serial", "-subject"]),
        pem.as_bytes(),
        Duration::from_secs(20),
    )
    .success()
    .out();
    let field = |name: &str| {
        described
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {described:?}"))
    };
    (field("serial="), field("subject="))
}

/// A serial as openssl prints it, compared without leading zeros.
pub fn same_serial(a: &str, b: &str) -> bool {
    a.trim_start_matches('0')
        .eq_ignore_ascii_case(b.trim_start_matches('0'))
}

/// `openssl s_server` as a reference TLS server (for proving what a client offers): its
/// stdin held open (it quits at the end of its input), killed on drop.
pub struct SServer {
    child: Child,
    _stdin: ChildStdin,
    addr: SocketAddr,
    out: Arc<Mutex<String>>,
}

impl SServer {
    /// Starts `openssl s_server` on a free port of 127.0.0.1 with `leaf` and `args`, and
    /// waits for its `ACCEPT` line.
    pub fn start(leaf: &Leaf, args: &[&str]) -> SServer {
        let mut last = String::new();
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut child = Command::new(tool("openssl", "openssl"))
                .args(["s_server", "-accept", &addr.to_string()])
                .arg("-cert")
                .arg(&leaf.cert)
                .arg("-key")
                .arg(&leaf.key)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn openssl s_server");
            let stdin = child.stdin.take().expect("piped stdin");
            let out = Arc::new(Mutex::new(String::new()));
            let (ready_tx, ready) = mpsc::channel();
            for pipe in [
                Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
                Box::new(child.stderr.take().expect("stderr")),
            ] {
                let (out, ready_tx) = (Arc::clone(&out), ready_tx.clone());
                thread::spawn(move || {
                    let mut pipe = std::io::BufReader::new(pipe);
                    let mut line = String::new();
                    while std::io::BufRead::read_line(&mut pipe, &mut line).unwrap_or(0) > 0 {
                        if line.starts_with("ACCEPT") {
                            let _ = ready_tx.send(());
                        }
                        out.lock().expect("lock").push_str(&line);
                        line.clear();
                    }
                });
            }
            if ready.recv_timeout(Duration::from_secs(10)).is_ok() {
                return SServer {
                    child,
                    _stdin: stdin,
                    addr,
                    out,
                };
            }
            stop_child(&mut child, libc::SIGKILL, Duration::from_secs(1), false);
            last = out.lock().expect("lock").clone();
        }
        panic!("openssl s_server did not start; its output:\n{last}");
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it printed so far.
    pub fn output(&self) -> String {
        self.out.lock().expect("lock").clone()
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        stop_child(
            &mut self.child,
            libc::SIGKILL,
            Duration::from_secs(1),
            false,
        );
    }
}

// ---------------------------------------------------------------------------------------
// Python's ssl module

/// `tests/tools/tls_client.py`.
fn tls_client_script() -> PathBuf {
    paths::workspace_root().join("tests/tools/tls_client.py")
}

/// The venv's Python (its `ssl` module is OpenSSL's).
pub fn python() -> PathBuf {
    paths::venv().join("bin/python3")
}

/// How the Python client connects.
#[derive(Debug, Clone, Default)]
pub struct PyOpts {
    /// SNI (and, with `cafile`, the name checked); `None`: no SNI.
    pub server_name: Option<String>,
    /// Verify the chain with this CA.
    pub cafile: Option<PathBuf>,
    /// Send the SNI but do not check the certificate's name.
    pub no_check_hostname: bool,
    /// Lowest and highest TLS version offered (`1.2`, `1.3`).
    pub tls_min: Option<&'static str>,
    /// See `tls_min`.
    pub tls_max: Option<&'static str>,
    /// ALPN protocols offered, comma-separated.
    pub alpn: Option<&'static str>,
    /// A client certificate and its key, presented when asked for.
    pub client: Option<Leaf>,
}

impl PyOpts {
    /// SNI `name`, verified against `ca`.
    pub fn verified(name: &str, ca: &Path) -> PyOpts {
        PyOpts {
            server_name: Some(name.to_owned()),
            cafile: Some(ca.to_path_buf()),
            ..PyOpts::default()
        }
    }

    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut push = |flag: &str, value: Option<String>| {
            if let Some(value) = value {
                args.push(flag.to_owned());
                args.push(value);
            }
        };
        push("--server-name", self.server_name.clone());
        push(
            "--cafile",
            self.cafile.as_ref().map(|p| p.display().to_string()),
        );
        push("--tls-min", self.tls_min.map(str::to_owned));
        push("--tls-max", self.tls_max.map(str::to_owned));
        push("--alpn", self.alpn.map(str::to_owned));
        if let Some(client) = &self.client {
            push("--cert", Some(client.cert.display().to_string()));
            push("--key", Some(client.key.display().to_string()));
        }
        if self.no_check_hostname {
            args.push("--no-check-hostname".to_owned());
        }
        args
    }
}

/// The ClientHello Python's ssl sends with `opts`, made in memory.
pub fn client_hello(opts: &PyOpts) -> Vec<u8> {
    let ran = run(
        Command::new(python())
            .arg(tls_client_script())
            .arg("hello")
            .args(opts.args()),
        b"",
        Duration::from_secs(20),
    )
    .success();
    decode_hex(ran.out().trim())
}

/// A handshake with `addr`, then one TCP write of the client's last flight, a close_notify and
/// `junk` bytes that are not TLS: `{"ok": true, "sent": N, "closed": bool}` (closed: the
/// server ended the connection within `timeout` seconds).
pub fn close_with_junk(addr: SocketAddr, opts: &PyOpts, junk: usize, timeout: u64) -> Value {
    let ran = run(
        Command::new(python())
            .arg(tls_client_script())
            .arg("close-with-junk")
            .args(["--connect", &addr.to_string()])
            .args(["--junk", &junk.to_string()])
            .args(["--timeout", &timeout.to_string()])
            .args(opts.args()),
        b"",
        Duration::from_secs(timeout + 20),
    )
    .success();
    serde_json::from_str(ran.out().trim()).unwrap_or_else(|e| panic!("{e}: {ran:?}"))
}

/// `GET path` on a Python ssl connection to `addr`, reading the raw stream to its end:
/// `{"ok": true, "status": "HTTP/1.1 200 OK", "body": BYTES, "records": [LENGTH, ..]}`, the
/// lengths of the application-data records the server sent (session tickets among them).
pub fn records(addr: SocketAddr, opts: &PyOpts, path: &str) -> Value {
    let ran = run(
        Command::new(python())
            .arg(tls_client_script())
            .arg("records")
            .args(["--connect", &addr.to_string()])
            .args(["--path", path])
            .args(opts.args()),
        b"",
        Duration::from_secs(30),
    )
    .success();
    serde_json::from_str(ran.out().trim()).unwrap_or_else(|e| panic!("{e}: {ran:?}"))
}

/// `count` uploads on one Python ssl connection to `addr`: `POST /echo` with a `size`-byte
/// body (byte i = i % 251) written `piece` bytes per ssl write (a TLS record each):
/// `{"ok": bool, "answers": ["HTTP/1.1 200 OK {json}", ..], "error": ..}`.
pub fn upload(addr: SocketAddr, opts: &PyOpts, size: usize, piece: usize, count: usize) -> Value {
    let ran = run(
        Command::new(python())
            .arg(tls_client_script())
            .arg("upload")
            .args(["--connect", &addr.to_string()])
            .args(["--size", &size.to_string()])
            .args(["--piece", &piece.to_string()])
            .args(["--count", &count.to_string()])
            .args(opts.args()),
        b"",
        Duration::from_secs(60),
    )
    .success();
    serde_json::from_str(ran.out().trim()).unwrap_or_else(|e| panic!("{e}: {ran:?}"))
}

/// Two connections of Python's ssl to `addr`, the second resuming the first's session, each
/// one `GET /` (`Connection: close`): `{"version": [..], "reused": [false, true], "status":
/// ["HTTP/1.1 200 OK", ..]}`.
pub fn resume(addr: SocketAddr, opts: &PyOpts) -> Value {
    resume_after(addr, opts, Duration::ZERO)
}

/// [`resume`] with `pause` between the two connections; a second connection the server
/// ends instead of answering has `reused` null and the status `failed: REASON`.
pub fn resume_after(addr: SocketAddr, opts: &PyOpts, pause: Duration) -> Value {
    let ran = run(
        Command::new(python())
            .arg(tls_client_script())
            .arg("resume")
            .args(["--connect", &addr.to_string()])
            .args(["--pause", &pause.as_secs_f64().to_string()])
            .args(opts.args()),
        b"",
        Duration::from_secs(30) + pause,
    )
    .success();
    serde_json::from_str(ran.out().trim()).unwrap_or_else(|e| panic!("{e}: {ran:?}"))
}

/// One TLS connection of Python's ssl to ringway, with a plain TCP port in front: bytes
/// written to [`PyTls::conn`] go out as TLS records (one ssl write per chunk read), what
/// ringway answers comes back. So the raw HTTP client ([`Conn`]) works over TLS as it does
/// over TCP. The process is killed on drop.
pub struct PyTls {
    child: Child,
    stdin: Option<ChildStdin>,
    info: Value,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
}

impl PyTls {
    /// Handshakes with `addr`; `Err` with the client's error report when the handshake
    /// fails (`{"error": ..., "reason": ...}`).
    pub fn connect(addr: SocketAddr, opts: &PyOpts) -> Result<PyTls, Value> {
        let mut child = Command::new(python())
            .arg(tls_client_script())
            .arg("bridge")
            .args(["--connect", &addr.to_string()])
            .args(opts.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", python().display()));
        let stdin = child.stdin.take();
        let events = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (first_tx, first) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = Arc::clone(&events);
        thread::spawn(move || {
            let mut first_tx = Some(first_tx);
            let reader = std::io::BufReader::new(stdout);
            for line in std::io::BufRead::lines(reader) {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| Value::String(format!("not JSON: {line}")));
                match first_tx.take() {
                    Some(tx) => {
                        let _ = tx.send(value);
                    }
                    None => sink.lock().expect("lock").push(value),
                }
            }
        });
        let err_pipe = child.stderr.take().expect("piped stderr");
        let err_sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let text = collect(err_pipe).join().unwrap_or_default();
            err_sink
                .lock()
                .expect("lock")
                .push_str(&String::from_utf8_lossy(&text));
        });
        let mut client = PyTls {
            child,
            stdin,
            info: Value::Null,
            events,
            stderr,
        };
        match first.recv_timeout(Duration::from_secs(20)) {
            Ok(info) if info["ok"] == true => {
                client.info = info;
                Ok(client)
            }
            Ok(info) if info["ok"] == false => Err(info),
            outcome => {
                stop_child(&mut client.child, libc::SIGKILL, Duration::ZERO, false);
                thread::sleep(Duration::from_millis(100));
                panic!(
                    "the Python TLS client reported nothing sensible ({outcome:?}); stderr:\n{}",
                    client.stderr.lock().expect("lock")
                );
            }
        }
    }

    /// Like [`PyTls::connect`], panicking when the handshake fails.
    pub fn open(addr: SocketAddr, opts: &PyOpts) -> PyTls {
        PyTls::connect(addr, opts)
            .unwrap_or_else(|e| panic!("TLS handshake with {addr} ({opts:?}) failed: {e}"))
    }

    /// The negotiated version, `TLSv1.3` or `TLSv1.2`.
    pub fn version(&self) -> String {
        self.info["version"].as_str().unwrap_or_default().to_owned()
    }

    /// The negotiated cipher suite (OpenSSL's name).
    pub fn cipher(&self) -> String {
        self.info["cipher"].as_str().unwrap_or_default().to_owned()
    }

    /// The ALPN protocol the server chose, if any.
    pub fn alpn(&self) -> Option<String> {
        self.info["alpn"].as_str().map(str::to_owned)
    }

    /// The certificate the server presented, DER.
    pub fn cert_der(&self) -> Vec<u8> {
        decode_hex(self.info["cert"].as_str().unwrap_or_default())
    }

    /// A plain connection into the TLS session (the bridge takes one).
    pub fn conn(&self) -> Conn {
        let port = self.info["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .expect("the bridge's port");
        Conn::open(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Writes `bytes` straight on the TCP socket under the TLS session (a forged record).
    pub fn inject_raw(&mut self, bytes: &[u8]) {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let stdin = self.stdin.as_mut().expect("the bridge's stdin");
        writeln!(stdin, "raw {hex}").expect("command the bridge");
        stdin.flush().expect("flush");
    }

    /// What the client reported after the handshake (writes, raw writes, the session's end).
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().expect("lock").clone()
    }

    /// Waits up to `limit` for an event of `kind` (`write`, `raw`, `tls_closed`).
    pub fn wait_event(&self, kind: &str, limit: Duration) -> Option<Value> {
        let mut found = None;
        poll_until(limit, || {
            found = self
                .events()
                .into_iter()
                .find(|e| e["event"].as_str() == Some(kind));
            found.is_some()
        });
        found
    }

    /// The sizes of the ssl writes made so far, each one or more TLS records.
    pub fn writes(&self) -> Vec<u64> {
        self.events()
            .iter()
            .filter(|e| e["event"] == "write")
            .filter_map(|e| e["size"].as_u64())
            .collect()
    }
}

impl Drop for PyTls {
    fn drop(&mut self) {
        self.stdin = None;
        stop_child(&mut self.child, libc::SIGKILL, Duration::ZERO, false);
    }
}

/// Bytes from lower- or upper-case hex; panics on anything else.
pub fn decode_hex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd hex length: {hex:?}");
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or_else(|_| panic!("not hex: {hex:?}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Raw sockets and metrics

/// What a raw client saw after sending some bytes to the TLS port.
pub struct RawOutcome {
    /// Everything the server sent before it closed (or the limit).
    pub received: Vec<u8>,
    /// Whether the server closed the connection (EOF or reset) within the limit.
    pub closed: bool,
    /// When it closed (or when the limit passed), from the send.
    pub after: Duration,
}

impl std::fmt::Debug for RawOutcome {
    /// The first 32 bytes received, enough to tell an alert or a ServerHello.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = &self.received[..self.received.len().min(32)];
        write!(
            f,
            "{} bytes received (first: {shown:02x?}), {} after {:?}",
            self.received.len(),
            if self.closed { "closed" } else { "still open" },
            self.after
        )
    }
}

/// Connects to `addr`, sends `bytes` (nothing if empty), and reads until the server closes
/// or `limit` passes.
pub fn send_raw(addr: SocketAddr, bytes: &[u8], limit: Duration) -> RawOutcome {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_nodelay(true).expect("nodelay");
    if !bytes.is_empty() {
        stream.write_all(bytes).expect("send");
    }
    read_until_close(&mut stream, limit)
}

/// Reads `stream` until the server closes it or `limit` passes.
pub fn read_until_close(stream: &mut TcpStream, limit: Duration) -> RawOutcome {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut scratch = [0u8; 16 * 1024];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            return RawOutcome {
                received,
                closed: false,
                after: started.elapsed(),
            };
        }
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("set read timeout");
        match stream.read(&mut scratch) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&scratch[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    RawOutcome {
        received,
        closed: true,
        after: started.elapsed(),
    }
}

/// ringway's Prometheus text, from its metrics endpoint.
pub fn metrics(addr: SocketAddr) -> String {
    let r = roundtrip(addr, &Req::get("/metrics"));
    assert_eq!(r.status, 200, "/metrics: {r:?}");
    r.text()
}

/// The value of the sample `series` (`name{labels}` exactly as rendered); panics, with the
/// text, when it is absent.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// `ringway_tls_handshakes_total{result=RESULT,version=VERSION}` in `text`.
pub fn handshakes(text: &str, result: &str, version: &str) -> f64 {
    sample(
        text,
        &format!("ringway_tls_handshakes_total{{result=\"{result}\",version=\"{version}\"}}"),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_tools_print() {
        assert_eq!(
            parse_openssl_date("Jan  2 03:04:05 2026 GMT"),
            date_time_ymd(2026, 1, 2).unix_timestamp() + 3 * 3600 + 4 * 60 + 5
        );
        let verbose = "* ALPN: offers h2,http/1.1\n\
                       * SSL connection using TLSv1.2 / ECDHE-ECDSA-AES256-GCM-SHA384\n";
        assert_eq!(
            curl_tls(verbose),
            Some((
                "TLSv1.2".to_owned(),
                "ECDHE-ECDSA-AES256-GCM-SHA384".to_owned()
            ))
        );
        assert!(same_serial("00A1", "a1"));
        assert!(!same_serial("A1", "A2"));
        assert_eq!(decode_hex("00ff10"), vec![0, 255, 16]);
        let text = "ringway_tls_handshakes_total{result=\"ok\",version=\"TLSv1.3\"} 7\n";
        assert_eq!(handshakes(text, "ok", "TLSv1.3"), 7.0);
    }
}
