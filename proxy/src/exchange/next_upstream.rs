//! Whether a request one server failed goes on to another of its group's servers (nginx's
//! `proxy_next_upstream` / `uwsgi_next_upstream`, the route's `next_upstream`).
//!
//! As in nginx, a request goes on only before any byte of an answer reached the client (its
//! head is not through yet, or it is one to pass over), to a server it has not been to, and,
//! once sent, only if its method is idempotent (RFC 9110 §9.2.2) unless `non_idempotent` is
//! listed: a POST may have run. The last server's answer is the client's, whatever its
//! status.

use std::time::Instant;

use crate::config::{Limits, NextUpstream};
use crate::fail::Fail;
use crate::http::Method;
use crate::metrics::UpstreamError;

/// How a server failed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Missed {
    /// No answer head to use: the connection closed or broke, timed out, or the head was
    /// not HTTP.
    Fail(Fail),
    /// An answer with this status.
    Status(u16),
}

impl Missed {
    /// Whether nginx counts it against the server (`max_fails`) under `next`: a broken
    /// connection, a timeout or a bad head always; an answer only with a status `next`
    /// lists, and never a 403 or a 404.
    pub(super) fn is_failure(self, next: NextUpstream) -> bool {
        match self {
            Missed::Fail(fail) => matches!(
                fail.upstream_error(),
                Some(UpstreamError::Broken | UpstreamError::Timeout | UpstreamError::BadResponse)
            ),
            Missed::Status(status) => {
                next.on_status(status) && NextUpstream::status_is_failure(status)
            }
        }
    }

    fn listed_in(self, next: NextUpstream) -> bool {
        match self {
            Missed::Status(status) => next.on_status(status),
            Missed::Fail(fail) => match fail.upstream_error() {
                Some(UpstreamError::Broken) => next.on_error(),
                Some(UpstreamError::Timeout) => next.on_timeout(),
                Some(UpstreamError::BadResponse) => next.on_invalid_header(),
                _ => false,
            },
        }
    }
}

/// Whether a request of `method`, missed this way, goes on (when a server is left).
pub(super) fn goes_on(next: NextUpstream, method: Method, missed: Missed) -> bool {
    missed.listed_in(next) && (is_idempotent(method) || next.non_idempotent())
}

/// Whether a request sent on a kept connection the server had closed meanwhile (nothing
/// came back) is sent once more, on a new connection: as nginx, which does not count that
/// attempt as one of `next_upstream_tries` but still asks `next_upstream` (so `off`, or a
/// POST without `non_idempotent`, gets 502) and `next_upstream_timeout`, counted from
/// `since` (found by review: ringway sent every idempotent request again, whatever the
/// route said).
pub(super) fn retries_on_new_connection(
    limits: &Limits,
    since: Instant,
    method: Method,
    missed: Missed,
) -> bool {
    goes_on(limits.next_upstream, method, missed)
        && limits
            .next_upstream_timeout
            .is_none_or(|timeout| since.elapsed() < timeout)
}

/// Safe to send twice (RFC 9110 §9.2.2): the server's state ends the same.
pub(super) fn is_idempotent(method: Method) -> bool {
    matches!(
        method,
        Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options | Method::Trace
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fail::{BadResponse, Step};
    use std::io::ErrorKind;

    #[test]
    fn nginx_default_error_and_timeout_for_idempotent_requests() {
        let next = NextUpstream::DEFAULT;
        let closed = Missed::Fail(Fail::UpstreamClosed);
        let reset = Missed::Fail(Fail::UpstreamIo(
            Step::ReadingHead,
            ErrorKind::ConnectionReset,
        ));
        let slow = Missed::Fail(Fail::UpstreamTimeout(Step::ReadingHead));
        for missed in [closed, reset, slow] {
            assert!(goes_on(next, Method::Get, missed), "{missed:?}");
            assert!(goes_on(next, Method::Put, missed), "{missed:?}");
            assert!(
                !goes_on(next, Method::Post, missed),
                "{missed:?}: a POST may have run"
            );
            assert!(!goes_on(next, Method::Patch, missed), "{missed:?}");
        }
        let bad = Missed::Fail(Fail::UpstreamBadResponse(BadResponse::Interim(100)));
        assert!(
            !goes_on(next, Method::Get, bad),
            "invalid_header is not in the default"
        );
        assert!(!goes_on(next, Method::Get, Missed::Status(502)));
        assert!(!goes_on(next, Method::Get, Missed::Status(200)));
    }

    #[test]
    fn listed_statuses_and_non_idempotent() {
        let next: NextUpstream = "error http_502 http_404 non_idempotent"
            .parse()
            .unwrap_or(NextUpstream::DEFAULT);
        assert!(goes_on(next, Method::Post, Missed::Status(502)));
        assert!(goes_on(next, Method::Get, Missed::Status(404)));
        assert!(!goes_on(next, Method::Get, Missed::Status(503)));
        assert!(!goes_on(
            next,
            Method::Get,
            Missed::Fail(Fail::UpstreamTimeout(Step::ReadingHead))
        ));
        assert!(Missed::Status(502).is_failure(next));
        assert!(!Missed::Status(503).is_failure(next), "not listed");
        assert!(
            !Missed::Status(404).is_failure(next),
            "listed, but no failure"
        );
        assert!(!Missed::Status(200).is_failure(next));
        assert!(Missed::Fail(Fail::UpstreamClosed).is_failure(NextUpstream::DEFAULT));
        assert!(!Missed::Fail(Fail::ClientGone).is_failure(NextUpstream::DEFAULT));
        let off: NextUpstream = "off".parse().unwrap_or(NextUpstream::DEFAULT);
        assert!(!goes_on(
            off,
            Method::Get,
            Missed::Fail(Fail::UpstreamClosed)
        ));
    }
}
