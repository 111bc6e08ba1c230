//! nginx's `valid_referers` (ngx_http_referer_module) with its usual
//! `if ($invalid_referer) { return 403; }`: whether a request's `Referer` is one a route's
//! files may be asked from, judged as `ngx_http_referer_variable` judges it.
//!
//! - No `Referer`: valid with `none`.
//! - One that does not start with `http://` or `https://` (in any case; a proxy or a
//!   privacy tool blanked it, `Referer: XXXXXXX`), or shorter than `http://i.ru`: valid
//!   with `blocked`.
//! - Else its host (up to a `/` or `:`, in any case) is looked up among the names: an
//!   exact name first, then the longest `*.example.com` or `.example.com` that ends it,
//!   then the longest `www.example.*` that starts it. A name with a URI part
//!   (`example.com/galleries/`) asks the referring path to start with it. `server_names`
//!   adds the route's `hosts` (else the top level's).
//! - A host no name holds is matched against the `~REGEX`es (any case), which see the
//!   `Referer` without its scheme.

use regex::bytes::{Regex, RegexBuilder};

use crate::config::HostName;

/// The longest host nginx looks up (its buffer's size): a longer one is invalid.
const MAX_HOST: usize = 256;

/// A route's `referers`: the list, and what becomes of a request it does not take.
#[derive(Debug, Clone)]
pub(crate) struct RefererCheck {
    pub(crate) valid: ValidReferers,
    /// Its status (the `return` of nginx's `if ($invalid_referer)`).
    pub(crate) status: u16,
    /// Judged and shown (`$invalid_referer`), not refused.
    pub(crate) dry_run: bool,
}

/// A route's `valid_referers`.
#[derive(Debug, Clone)]
pub struct ValidReferers {
    /// `none`: a request without a Referer is valid.
    none: bool,
    /// `blocked`: a Referer without an http(s) scheme is valid.
    blocked: bool,
    names: Vec<Named>,
    regexes: Vec<Regex>,
}

/// A host name, and the path a referring page's must start with (`None`: any).
#[derive(Debug, Clone)]
struct Named {
    host: Host,
    path: Option<Vec<u8>>,
}

/// How a name matches a host (lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// This host.
    Exact(Vec<u8>),
    /// Hosts ending with this suffix (`.example.com`, from `*.example.com`; and, from
    /// `.example.com`, `example.com` itself too, as an `Exact`).
    Under(Vec<u8>),
    /// Hosts starting with this prefix (`www.example.`, from `www.example.*`).
    Over(Vec<u8>),
}

impl ValidReferers {
    /// The rules of `words`, each one of nginx's arguments: `none`, `blocked`,
    /// `server_names` (the names in `server_names`), a name (`example.com`,
    /// `*.example.com`, `.example.com`, `www.example.*`, each with an optional URI part:
    /// `example.com/galleries/`), or `~REGEX`. nginx's rules for the list hold: `none` or
    /// `blocked` alone, with no name, is refused; one name twice is refused.
    pub fn new(words: &[String], server_names: &[HostName]) -> Result<ValidReferers, String> {
        let mut rules = ValidReferers {
            none: false,
            blocked: false,
            names: Vec::new(),
            regexes: Vec::new(),
        };
        if words.is_empty() {
            return Err("an empty list, which would refuse every request (nginx's \
                        `valid_referers` needs one referer): leave `referers` out for none"
                .into());
        }
        let mut with_server_names = false;
        for word in words {
            match word.as_str() {
                "" => return Err("an empty referer".into()),
                "none" => rules.none = true,
                "blocked" => rules.blocked = true,
                "server_names" => with_server_names = true,
                regex if regex.starts_with('~') => {
                    let source = &regex[1..];
                    if source.is_empty() {
                        return Err(format!("{word:?}: an empty regex"));
                    }
                    // Any case, on bytes, as nginx's PCRE runs it.
                    let regex = RegexBuilder::new(source)
                        .unicode(false)
                        .case_insensitive(true)
                        .build()
                        .map_err(|e| format!("{word:?}: {source:?} is no regex: {e}"))?;
                    rules.regexes.push(regex);
                }
                name => {
                    let (host, path) = match name.find('/') {
                        Some(slash) => (&name[..slash], Some(name.as_bytes()[slash..].to_vec())),
                        None => (name, None),
                    };
                    for host in hosts(host).ok_or_else(|| {
                        format!(
                            "{word:?} is not a referer: a host name (`example.com`, \
                             `*.example.com`, `.example.com`, `www.example.*`) with an \
                             optional path, `~REGEX`, `none`, `blocked` or `server_names`"
                        )
                    })? {
                        if rules.names.iter().any(|n| n.host == host) {
                            return Err(format!("{word:?} names a host another referer names"));
                        }
                        rules.names.push(Named {
                            host,
                            path: path.clone(),
                        });
                    }
                }
            }
        }
        if with_server_names {
            if server_names.is_empty() {
                return Err(
                    "`server_names` names none: this route and the top level set no \
                            `hosts`"
                        .into(),
                );
            }
            for name in server_names {
                // The names given as referers come first (nginx would refuse the two).
                for host in hosts(&name.to_string()).unwrap_or_default() {
                    if !rules.names.iter().any(|n| n.host == host) {
                        rules.names.push(Named { host, path: None });
                    }
                }
            }
        }
        if (rules.none || rules.blocked) && rules.names.is_empty() {
            return Err(
                "`none` or `blocked` without a host name, which nginx refuses too: \
                        name the hosts whose pages may refer (`server_names`, \
                        `*.example.com`)"
                    .into(),
            );
        }
        Ok(rules)
    }

    /// Whether a request with this `Referer` (its first) is valid.
    pub fn allow(&self, referer: Option<&[u8]>) -> bool {
        let Some(referer) = referer else {
            return self.none;
        };
        let rest = if referer.len() < b"http://i.ru".len() {
            None
        } else {
            strip_prefix_ignore_case(referer, b"http://")
                .or_else(|| strip_prefix_ignore_case(referer, b"https://"))
        };
        let Some(rest) = rest else {
            return self.blocked;
        };
        let host_end = rest
            .iter()
            .position(|&b| b == b'/' || b == b':')
            .unwrap_or(rest.len());
        if host_end > MAX_HOST {
            return false;
        }
        // Lower-cased on the stack: nothing allocated per request.
        let mut lower = [0u8; MAX_HOST];
        let host = &mut lower[..host_end];
        host.copy_from_slice(&rest[..host_end]);
        host.make_ascii_lowercase();
        match self.named(host) {
            Some(named) => match &named.path {
                None => true,
                Some(path) => {
                    let after_host = &rest[host_end..];
                    let from = after_host
                        .iter()
                        .position(|&b| b == b'/')
                        .unwrap_or(after_host.len());
                    after_host[from..].starts_with(path)
                }
            },
            None => self.regexes.iter().any(|regex| regex.is_match(rest)),
        }
    }

    /// The name `host` (lower case) is looked up by, as nginx's combined hash finds it.
    fn named(&self, host: &[u8]) -> Option<&Named> {
        let exact = self
            .names
            .iter()
            .find(|n| matches!(&n.host, Host::Exact(name) if name == host));
        let longest = |matching: fn(&Host, &[u8]) -> Option<usize>| {
            self.names
                .iter()
                .filter_map(|n| matching(&n.host, host).map(|len| (len, n)))
                .max_by_key(|(len, _)| *len)
                .map(|(_, n)| n)
        };
        exact
            .or_else(|| {
                // An empty label before the suffix counts, as in nginx's wildcard hash
                // (`.example.com` is under `*.example.com`).
                longest(|h, host| match h {
                    Host::Under(suffix) => host.ends_with(suffix).then_some(suffix.len()),
                    _ => None,
                })
            })
            .or_else(|| {
                longest(|h, host| match h {
                    Host::Over(prefix) => host.starts_with(prefix).then_some(prefix.len()),
                    _ => None,
                })
            })
    }
}

/// The hosts a name stands for (lower case): `None` for a name nginx's hash refuses (an
/// empty label, a `*` but in `*.` before or `.*` after it). Other bytes are taken as
/// nginx takes them, in a name that may never match (`example.com:8080`).
fn hosts(name: &str) -> Option<Vec<Host>> {
    let name = name.to_ascii_lowercase();
    let labels_ok =
        |s: &str| !s.is_empty() && !s.contains("..") && !s.contains('*') && !s.starts_with('.');
    if let Some(rest) = name.strip_prefix("*.") {
        labels_ok(rest).then(|| vec![Host::Under(format!(".{rest}").into_bytes())])
    } else if let Some(rest) = name.strip_prefix('.') {
        labels_ok(rest).then(|| {
            vec![
                Host::Exact(rest.as_bytes().to_vec()),
                Host::Under(format!(".{rest}").into_bytes()),
            ]
        })
    } else if let Some(rest) = name.strip_suffix(".*") {
        labels_ok(rest).then(|| vec![Host::Over(format!("{rest}.").into_bytes())])
    } else {
        labels_ok(&name).then(|| vec![Host::Exact(name.into_bytes())])
    }
}

fn strip_prefix_ignore_case<'v>(value: &'v [u8], prefix: &[u8]) -> Option<&'v [u8]> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

#[cfg(test)]
mod tests;
