//! What a TLS session says about its client, learnt once after the handshake: the version
//! and cipher (access log) and, when client certificates are asked for, the certificate the
//! client proved it holds (the app's `SSL_CLIENT_*` vars and `X-SSL-Client-*` headers).
//! Values are written as nginx's `$ssl_*` variables write them, so an app moved from nginx
//! reads the same strings.

use std::fmt::Write as _;
use std::rc::Rc;

use base64::Engine as _;
use rustls::{CipherSuite, HandshakeKind};

use crate::config::KeyExchangeGroup;
use rustls::ServerConnection;
use sha1::{Digest as _, Sha1};
use x509_parser::asn1_rs::{Any, Tag};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// A session's client, as the pipeline needs it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Peer {
    /// `TLSv1.3` or `TLSv1.2` (`$ssl_protocol`).
    pub(crate) protocol: &'static str,
    /// The cipher suite in OpenSSL's name (`$ssl_cipher`).
    pub(crate) cipher: &'static str,
    /// The key exchange group (`$ssl_curve`); none when the session made no exchange (a
    /// TLS 1.2 resumption).
    pub(crate) group: Option<KeyExchangeGroup>,
    /// The session was resumed (`$ssl_session_reused`).
    pub(crate) resumed: bool,
    /// The name the client asked for (SNI; `$ssl_server_name`).
    pub(crate) server_name: Option<Rc<str>>,
    /// The client's verified certificate, when it gave one.
    pub(crate) cert: Option<Rc<PeerCert>>,
    /// The client certificate rules it was made under (`Acceptor::client_rules`).
    pub(crate) client_rules: u64,
}

impl Peer {
    /// Reads what `conn` agreed to (its handshake done) under `acceptor`'s rules. A client
    /// certificate is there only when the verifier asked for one and accepted it: rustls
    /// fails the handshake otherwise (a resumed session carries the one it was made with).
    pub(crate) fn of(conn: &ServerConnection, acceptor: &super::Acceptor) -> Peer {
        let protocol = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "",
        };
        let cipher = conn
            .negotiated_cipher_suite()
            .map_or("", |s| openssl_name(s.suite()));
        let group = conn
            .negotiated_key_exchange_group()
            .and_then(|g| super::configured_group(g.name()));
        let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
        let server_name = conn.server_name().map(Rc::from);
        let cert = conn
            .peer_certificates()
            .and_then(<[_]>::first)
            .map(|der| Rc::new(PeerCert::of(der.as_ref(), acceptor.passes_pem())));
        Peer {
            protocol,
            cipher,
            group,
            resumed,
            server_name,
            cert,
            client_rules: acceptor.client_rules(),
        }
    }
}

/// Whether `conn` resumed a session whose client certificate is past its validity now.
/// rustls verified the certificate at the session's first handshake only, and a session
/// resumes for as long as its tickets are renewed (found by review: an expired certificate
/// went on authenticating). Such a session is ended; its client's next handshake is a full
/// one, which the verifier refuses. A certificate this parser cannot read counts as past.
pub(super) fn resumed_past_validity(conn: &ServerConnection) -> bool {
    if conn.handshake_kind() != Some(HandshakeKind::Resumed) {
        return false;
    }
    let Some(leaf) = conn.peer_certificates().and_then(<[_]>::first) else {
        return false;
    };
    x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_or(true, |(_, cert)| !cert.validity().is_valid())
}

/// A client certificate, described as nginx's variables describe it.
#[derive(Debug, PartialEq, Eq)]
pub struct PeerCert {
    /// Subject, RFC 2253 (`$ssl_client_s_dn`): `CN=alice,O=Example`.
    pub subject: String,
    /// Issuer, RFC 2253 (`$ssl_client_i_dn`).
    pub issuer: String,
    /// Serial number, upper-case hex (`$ssl_client_serial`).
    pub serial: String,
    /// SHA-1 of the DER, lower-case hex (`$ssl_client_fingerprint`).
    pub fingerprint: String,
    /// The certificate, PEM (`$ssl_client_raw_cert`), when it goes to the app
    /// (`pass_client_certificate`).
    pub pem: Option<String>,
}

impl PeerCert {
    /// Describes the DER certificate `der`, with its PEM when `with_pem`. rustls's verifier
    /// has parsed and checked it already; a field this parser cannot read stays empty
    /// rather than failing a session that is up.
    pub fn of(der: &[u8], with_pem: bool) -> PeerCert {
        let fingerprint = hex_lower(&Sha1::digest(der));
        let pem = with_pem.then(|| pem_of(der));
        let (subject, issuer, serial) = match x509_parser::parse_x509_certificate(der) {
            Ok((_, cert)) => (
                rfc2253(cert.subject()),
                rfc2253(cert.issuer()),
                serial_hex(cert.raw_serial()),
            ),
            Err(e) => {
                tracing::debug!(error = %e, "a verified client certificate this parser cannot read");
                Default::default()
            }
        };
        PeerCert {
            subject,
            issuer,
            serial,
            fingerprint,
            pem,
        }
    }
}

/// A DER certificate as PEM, in lines of 64 (as OpenSSL writes it).
fn pem_of(der: &[u8]) -> String {
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// A field the app is told about the client certificate: its uwsgi var and HTTP header.
#[derive(Debug, Clone, Copy)]
pub struct CertField {
    /// The var (`SSL_CLIENT_S_DN`): the names nginx users give in their `uwsgi_param`
    /// lines, after Apache's mod_ssl.
    pub var: &'static str,
    /// The header to an HTTP upstream (`X-SSL-Client-S-DN`).
    pub header: &'static str,
    /// A value with line breaks (the PEM): percent-escaped in a header, as nginx's
    /// `$ssl_client_escaped_cert`.
    pub multiline: bool,
}

/// The prefix of every header ringway writes about a client certificate: a client's own
/// headers under it never reach the app while certificates are asked for.
pub const HEADER_PREFIX: &[u8] = b"x-ssl-client-";

const VERIFY: CertField = CertField {
    var: "SSL_CLIENT_VERIFY",
    header: "X-SSL-Client-Verify",
    multiline: false,
};

const FIELDS: [CertField; 5] = [
    CertField {
        var: "SSL_CLIENT_S_DN",
        header: "X-SSL-Client-S-DN",
        multiline: false,
    },
    CertField {
        var: "SSL_CLIENT_I_DN",
        header: "X-SSL-Client-I-DN",
        multiline: false,
    },
    CertField {
        var: "SSL_CLIENT_SERIAL",
        header: "X-SSL-Client-Serial",
        multiline: false,
    },
    CertField {
        var: "SSL_CLIENT_FINGERPRINT",
        header: "X-SSL-Client-Fingerprint",
        multiline: false,
    },
    CertField {
        var: "SSL_CLIENT_CERT",
        header: "X-SSL-Client-Cert",
        multiline: true,
    },
];

/// What the app is told about a request's client certificate.
#[derive(Debug, Clone, Copy, Default)]
pub enum ClientCert<'a> {
    /// Certificates are not asked for: nothing is said, and a client's `X-SSL-Client-*`
    /// headers pass only from a trusted proxy (one checking certificates in front).
    #[default]
    NotAsked,
    /// Asked for on the TLS listener, but this request came over plain HTTP: nothing is
    /// said, and a client's own claims are dropped.
    Plain,
    /// Asked for, and the client gave none (`verify_client = "optional"`): `NONE`.
    Absent,
    /// A verified certificate: `SUCCESS` and its fields.
    Verified(&'a PeerCert),
}

impl<'a> ClientCert<'a> {
    /// For a request over a connection whose TLS client is `peer` (`None`: plain HTTP),
    /// when the configuration `asks` for certificates.
    pub(crate) fn of(peer: Option<&'a Peer>, asks: bool) -> ClientCert<'a> {
        match (asks, peer) {
            (false, _) => ClientCert::NotAsked,
            (true, None) => ClientCert::Plain,
            (true, Some(peer)) => match &peer.cert {
                Some(cert) => ClientCert::Verified(cert),
                None => ClientCert::Absent,
            },
        }
    }

    /// Whether ringway says what it knows of the client's certificate (and a client's own
    /// `X-SSL-Client-*` headers are dropped, whoever sent them).
    pub fn drops_claims(&self) -> bool {
        !matches!(self, ClientCert::NotAsked)
    }

    /// Whether the request header `name` is an `X-SSL-Client-*` claim that does not pass:
    /// any while ringway asks for certificates, and one from an untrusted peer while it
    /// does not (found by review: a client's `X-SSL-Client-Verify: SUCCESS` reached an
    /// HTTP app when ringway checked no certificates), as the URL claims.
    pub(crate) fn refuses_claim(&self, name: &[u8], trusted_peer: bool) -> bool {
        crate::http::names_header_prefix(name, HEADER_PREFIX)
            && (self.drops_claims() || !crate::identity::vouched(name, trusted_peer))
    }

    /// `$ssl_client_verify`: `SUCCESS`, `NONE`, or nothing on a plain connection.
    pub fn verify(&self) -> Option<&'static str> {
        match self {
            ClientCert::NotAsked | ClientCert::Plain => None,
            ClientCert::Absent => Some("NONE"),
            ClientCert::Verified(_) => Some("SUCCESS"),
        }
    }

    /// Each field the app is told, with its value: the verification result, then the
    /// certificate's.
    pub fn fields(&self) -> impl Iterator<Item = (CertField, &'a str)> + use<'a> {
        let verify = self.verify().map(|v| (VERIFY, v));
        let cert = match *self {
            ClientCert::Verified(cert) => Some(cert),
            _ => None,
        };
        let values = cert.into_iter().flat_map(|c| {
            FIELDS
                .into_iter()
                .zip([
                    Some(c.subject.as_str()),
                    Some(c.issuer.as_str()),
                    Some(c.serial.as_str()),
                    Some(c.fingerprint.as_str()),
                    c.pem.as_deref(),
                ])
                .filter_map(|(field, value)| Some((field, value?)))
        });
        verify.into_iter().chain(values)
    }
}

/// A name as OpenSSL's `XN_FLAG_RFC2253` prints it (nginx's `$ssl_client_s_dn` since
/// 1.11.6): the attributes in reverse order (a multi-valued RDN's too, as OpenSSL keeps
/// them in one list), `,` between RDNs and `+` within one, OpenSSL's short attribute names
/// (the dotted OID for others), RFC 2253's specials escaped with `\`, control and non-ASCII
/// bytes as `\XX`; a value of an attribute OpenSSL does not know, or of a type it does not
/// print, as `#` and the hex of its DER.
pub(crate) fn rfc2253(name: &X509Name<'_>) -> String {
    let attributes: Vec<(usize, &AttributeTypeAndValue<'_>)> = name
        .iter()
        .enumerate()
        .flat_map(|(set, rdn)| rdn.iter().map(move |attr| (set, attr)))
        .collect();
    let mut out = String::new();
    let mut previous = None;
    for (set, attr) in attributes.into_iter().rev() {
        match previous {
            Some(p) if p == set => out.push('+'),
            Some(_) => out.push(','),
            None => {}
        }
        previous = Some(set);
        push_attribute(&mut out, attr);
    }
    out
}

fn push_attribute(out: &mut String, attr: &AttributeTypeAndValue<'_>) {
    let oid = attr.attr_type().to_id_string();
    let known = short_name(&oid);
    out.push_str(known.unwrap_or(&oid));
    out.push('=');
    let value = attr.attr_value();
    match known.and_then(|_| text_of(value)) {
        Some(text) => escape_value(out, &text),
        None => {
            out.push('#');
            out.push_str(&hex_upper(&der_of(value)));
        }
    }
}

/// A string value as OpenSSL reads it (its `tag2nbyte`): one byte a character (Latin-1)
/// for the ASCII-ish and time types, UTF-8, UCS-2 or UCS-4; `None` for other types and for
/// a value whose length does not fit its width.
fn text_of(value: &Any<'_>) -> Option<String> {
    let data = value.data;
    let chars: Option<String> = match value.tag() {
        Tag::Utf8String => return std::str::from_utf8(data).ok().map(str::to_owned),
        Tag::NumericString
        | Tag::PrintableString
        | Tag::TeletexString
        | Tag::Ia5String
        | Tag::UtcTime
        | Tag::GeneralizedTime
        | Tag::VisibleString => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString if data.len().is_multiple_of(2) => {
            let units = data
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        Tag::UniversalString if data.len().is_multiple_of(4) => data
            .chunks_exact(4)
            .map(|p| char::from_u32(u32::from_be_bytes([p[0], p[1], p[2], p[3]])))
            .collect(),
        _ => None,
    };
    chars
}

/// The DER encoding of `value`: its identifier, its length, its contents.
fn der_of(value: &Any<'_>) -> Vec<u8> {
    let header = &value.header;
    let class = (header.class() as u8) << 6;
    let constructed = if header.is_constructed() { 0x20 } else { 0 };
    let tag = header.tag().0;
    let mut out = Vec::with_capacity(value.data.len() + 8);
    if tag < 31 {
        out.push(class | constructed | tag as u8);
    } else {
        out.push(class | constructed | 0x1f);
        let groups = (0..5).rev().map(|i| (tag >> (7 * i)) & 0x7f);
        let mut started = false;
        for (i, group) in groups.enumerate() {
            started |= group != 0 || i == 4;
            if started {
                out.push(group as u8 | if i < 4 { 0x80 } else { 0 });
            }
        }
    }
    let len = value.data.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value.data);
    out
}

fn escape_value(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let last = bytes.len().saturating_sub(1);
    for (i, &b) in bytes.iter().enumerate() {
        let special = matches!(b, b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';')
            || (i == 0 && matches!(b, b'#' | b' '))
            || (i == last && b == b' ');
        if special {
            out.push('\\');
            out.push(char::from(b));
        } else if !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
}

/// OpenSSL's short names for the attributes of distinguished names (`obj_dat.h`).
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.16" => "postalAddress",
        "2.5.4.17" => "postalCode",
        "2.5.4.18" => "postOfficeBox",
        "2.5.4.20" => "telephoneNumber",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.45" => "x500UniqueIdentifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.51" => "houseIdentifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.72" => "role",
        "2.5.4.97" => "organizationIdentifier",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.2.840.113549.1.9.2" => "unstructuredName",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        _ => return None,
    })
}

/// OpenSSL's `i2a_ASN1_INTEGER`: a `-` for a negative number, then its magnitude's bytes
/// in upper-case hex (DER's two's complement undone, its leading zero bytes left out).
fn serial_hex(raw: &[u8]) -> String {
    let negative = raw.first().is_some_and(|&b| b & 0x80 != 0);
    let mut magnitude = raw.to_vec();
    if negative {
        // Two's complement: invert, add one.
        for b in &mut magnitude {
            *b = !*b;
        }
        for b in magnitude.iter_mut().rev() {
            let (sum, carry) = b.overflowing_add(1);
            *b = sum;
            if !carry {
                break;
            }
        }
    }
    let skip = magnitude.iter().take_while(|&&b| b == 0).count();
    let digits = magnitude.get(skip..).unwrap_or_default();
    let sign = if negative { "-" } else { "" };
    if digits.is_empty() {
        return format!("{sign}00");
    }
    format!("{sign}{}", hex_upper(digits))
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02X}");
        s
    })
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// OpenSSL's name for a suite rustls may agree on (`$ssl_cipher` writes those).
fn openssl_name(suite: CipherSuite) -> &'static str {
    match suite {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            "ECDHE-ECDSA-CHACHA20-POLY1305"
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        other => other.as_str().unwrap_or("unknown"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(dn: rcgen::DistinguishedName, serial: &[u8]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn a_subject_reads_as_nginx_writes_it() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "DE");
        dn.push(rcgen::DnType::OrganizationName, "Example, Inc.");
        dn.push(rcgen::DnType::CommonName, " Zoë #1+2 ");
        let der = cert_with(dn, &[0x8f, 0x01]);
        let cert = PeerCert::of(&der, true);
        assert_eq!(cert.subject, r"CN=\ Zo\C3\AB #1\+2\ ,O=Example\, Inc.,C=DE");
        assert_eq!(cert.issuer, cert.subject, "self-signed");
        assert_eq!(cert.serial, "8F01");
        assert_eq!(cert.fingerprint, hex_lower(&Sha1::digest(&der)));
        let pem = cert.pem.unwrap_or_default();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\nMII"));
        assert!(pem.ends_with("\n-----END CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(
            PeerCert::of(&der, false).pem,
            None,
            "not passed on: not kept"
        );
    }

    #[test]
    fn string_types_and_unknown_attributes_read_as_openssl_prints_them() {
        use rcgen::{DnType, DnValue};
        let mut dn = rcgen::DistinguishedName::new();
        let bmp = rcgen::string::BmpString::try_from("Zoë").unwrap();
        dn.push(DnType::CommonName, DnValue::BmpString(bmp));
        let universal = rcgen::string::UniversalString::try_from("uni").unwrap();
        dn.push(
            DnType::OrganizationName,
            DnValue::UniversalString(universal),
        );
        dn.push(DnType::CustomDnType(vec![1, 2, 3, 4]), "hello");
        // Checked against `openssl x509 -nameopt RFC2253` (nginx's flags).
        let cert = PeerCert::of(&cert_with(dn, &[1]), false);
        // The unknown attribute as `#` and its DER (a UTF8String, 0x0C, of 5 bytes).
        assert_eq!(cert.subject, r"1.2.3.4=#0C0568656C6C6F,O=uni,CN=Zo\C3\AB");
    }

    #[test]
    fn escapes_follow_rfc_2253() {
        let mut out = String::new();
        escape_value(&mut out, "#a;b<c>\"d\"\\\u{1}");
        assert_eq!(out, r#"\#a\;b\<c\>\"d\"\\\01"#);
        assert_eq!(serial_hex(&[0]), "00");
        assert_eq!(serial_hex(&[0, 0x80]), "80");
        assert_eq!(serial_hex(&[0x12, 0x34]), "1234");
        assert_eq!(serial_hex(&[0xff, 0x01]), "-FF", "-255");
        assert_eq!(serial_hex(&[0x80]), "-80", "-128");
    }

    #[test]
    fn the_app_is_told_what_was_verified() {
        let cert = PeerCert::of(&cert_with(rcgen::DistinguishedName::new(), &[1]), true);
        let names = |c: ClientCert<'_>| c.fields().map(|(f, _)| f.var).collect::<Vec<_>>();
        assert!(names(ClientCert::NotAsked).is_empty());
        assert!(names(ClientCert::Plain).is_empty());
        assert!(ClientCert::Plain.drops_claims() && !ClientCert::NotAsked.drops_claims());
        assert_eq!(names(ClientCert::Absent), ["SSL_CLIENT_VERIFY"]);
        assert_eq!(
            names(ClientCert::Verified(&cert)),
            [
                "SSL_CLIENT_VERIFY",
                "SSL_CLIENT_S_DN",
                "SSL_CLIENT_I_DN",
                "SSL_CLIENT_SERIAL",
                "SSL_CLIENT_FINGERPRINT",
                "SSL_CLIENT_CERT"
            ]
        );
        let verify = ClientCert::Verified(&cert).fields().next().map(|(_, v)| v);
        assert_eq!(verify, Some("SUCCESS"));
    }

    #[test]
    fn ciphers_have_openssl_names() {
        assert_eq!(
            openssl_name(CipherSuite::TLS13_AES_256_GCM_SHA384),
            "TLS_AES_256_GCM_SHA384"
        );
        assert_eq!(
            openssl_name(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
            "ECDHE-RSA-AES128-GCM-SHA256"
        );
    }
}
