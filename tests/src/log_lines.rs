//! Access log lines read back, in a format that shows what the app made of a request.

/// The format [`upstream_line`] reads.
pub const UPSTREAM_FORMAT: &str = "$request_uri $status $upstream_status $upstream_response_time";

/// The line [`UPSTREAM_FORMAT`] wrote for `uri` in `log`: the status, the upstream's status
/// (`None` for nginx's `-`: no answer head came) and its response time in seconds (`None`:
/// no such line yet).
pub fn upstream_line(log: &str, uri: &str) -> Option<(u16, Option<u16>, f64)> {
    log.lines().find_map(|line| {
        let mut fields = line.split(' ');
        if fields.next()? != uri {
            return None;
        }
        let status = fields.next()?.parse().ok()?;
        let upstream = match fields.next()? {
            "-" => None,
            status => Some(status.parse().ok()?),
        };
        let time = fields.next()?.parse().ok()?;
        Some((status, upstream, time))
    })
}
