//! The time a log line carries, in local time as nginx's `$time_local` has it
//! (`01/Dec/2026:21:51:48 +0000`) and as RFC 3339 with milliseconds
//! (`2026-12-01T21:51:48.123+00:00`). The texts of a second are made once per second per
//! worker; a line adds only its milliseconds.

use std::io::Write;
use std::time::SystemTime;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// One worker's cache of the current second's texts.
pub(crate) struct LogClock {
    /// The second the texts are for (seconds since the epoch).
    second: i64,
    /// `01/Dec/2026:21:51:48 +0000`.
    local: Vec<u8>,
    /// `2026-12-01T21:51:48`.
    date_time: Vec<u8>,
    /// `+00:00`.
    offset: Vec<u8>,
    /// `Dec  8 21:51:48`, a syslog header's (RFC 3164's TIMESTAMP, as nginx writes it).
    syslog: Vec<u8>,
}

/// A moment, ready to be written in either form.
pub(crate) struct Stamp<'c> {
    clock: &'c LogClock,
    millis: u32,
}

impl LogClock {
    /// A clock with nothing cached yet.
    pub(crate) fn new() -> LogClock {
        LogClock {
            second: i64::MIN,
            local: Vec::with_capacity(32),
            date_time: Vec::with_capacity(24),
            offset: Vec::with_capacity(8),
            syslog: Vec::with_capacity(16),
        }
    }

    /// `now`'s texts (a clock set before 1970 reads as 1970).
    pub(crate) fn at(&mut self, now: SystemTime) -> Stamp<'_> {
        let since = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let second = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
        if second != self.second {
            self.set(second);
        }
        Stamp {
            clock: self,
            millis: since.subsec_millis(),
        }
    }

    fn set(&mut self, second: i64) {
        let tm = broken_down(second);
        let month = MONTHS
            .get(usize::try_from(tm.tm_mon).unwrap_or(0))
            .copied()
            .unwrap_or("Jan");
        let year = i64::from(tm.tm_year) + 1900;
        let offset_minutes = tm.tm_gmtoff / 60;
        let sign = if offset_minutes < 0 { '-' } else { '+' };
        let (oh, om) = (offset_minutes.abs() / 60, offset_minutes.abs() % 60);
        self.local.clear();
        let _ = write!(
            self.local,
            "{:02}/{month}/{year}:{:02}:{:02}:{:02} {sign}{oh:02}{om:02}",
            tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec
        );
        self.date_time.clear();
        let _ = write!(
            self.date_time,
            "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        );
        self.offset.clear();
        let _ = write!(self.offset, "{sign}{oh:02}:{om:02}");
        self.syslog.clear();
        let _ = write!(
            self.syslog,
            "{month} {:2} {:02}:{:02}:{:02}",
            tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec
        );
        self.second = second;
    }
}

impl Stamp<'_> {
    /// Appends nginx's `$time_local`.
    pub(crate) fn push_local(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.clock.local);
    }

    /// Appends the RFC 3339 form with milliseconds.
    pub(crate) fn push_rfc3339(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.clock.date_time);
        let _ = write!(out, ".{:03}", self.millis);
        out.extend_from_slice(&self.clock.offset);
    }

    /// Appends nginx's `$time_iso8601`: the RFC 3339 form in whole seconds.
    pub(crate) fn push_iso8601(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.clock.date_time);
        out.extend_from_slice(&self.clock.offset);
    }

    /// The time in a syslog header.
    pub(crate) fn syslog(&self) -> &[u8] {
        &self.clock.syslog
    }

    /// Appends nginx's `$msec`: seconds since the epoch, with milliseconds.
    pub(crate) fn push_msec(&self, out: &mut Vec<u8>) {
        let _ = write!(out, "{}.{:03}", self.clock.second, self.millis);
    }
}

/// The local time of `second` (UTC if the time zone cannot be read).
fn broken_down(second: i64) -> libc::tm {
    let t = libc::time_t::try_from(second).unwrap_or(0);
    // SAFETY: tm is plain data; all zeros is a valid value to be overwritten.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is thread-safe and only
    // reads the time zone (loaded once per process; see `load_time_zone`).
    if !unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return tm;
    }
    // SAFETY: as above.
    unsafe { libc::gmtime_r(&t, &mut tm) };
    tm
}

/// Reads the time zone now, on the calling thread: glibc reads /etc/localtime on the first
/// conversion, and that read must not happen on a worker's event loop.
pub(crate) fn load_time_zone() {
    let _ = broken_down(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn texts(clock: &mut LogClock, at: SystemTime) -> (String, String) {
        let stamp = clock.at(at);
        let (mut local, mut iso) = (Vec::new(), Vec::new());
        stamp.push_local(&mut local);
        stamp.push_rfc3339(&mut iso);
        (
            String::from_utf8(local).unwrap(),
            String::from_utf8(iso).unwrap(),
        )
    }

    /// The two forms agree with each other and with the local offset libc reports, whatever
    /// the machine's time zone.
    #[test]
    fn local_time_in_nginx_and_rfc3339_forms() {
        let mut clock = LogClock::new();
        // 2026-12-01T21:51:48.123Z
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_161_908_123);
        let (local, iso) = texts(&mut clock, at);
        let tm = broken_down(1_796_161_908);
        let off = tm.tm_gmtoff / 60;
        let sign = if off < 0 { '-' } else { '+' };
        let (oh, om) = (off.abs() / 60, off.abs() % 60);
        assert_eq!(
            local,
            format!(
                "{:02}/{}/{}:{:02}:{:02}:{:02} {sign}{oh:02}{om:02}",
                tm.tm_mday,
                MONTHS[tm.tm_mon as usize],
                tm.tm_year + 1900,
                tm.tm_hour,
                tm.tm_min,
                tm.tm_sec
            )
        );
        assert_eq!(
            iso,
            format!(
                "{}-{:02}-{:02}T{:02}:{:02}:{:02}.123{sign}{oh:02}:{om:02}",
                tm.tm_year + 1900,
                tm.tm_mon + 1,
                tm.tm_mday,
                tm.tm_hour,
                tm.tm_min,
                tm.tm_sec
            )
        );
        if off == 0 {
            assert_eq!(local, "01/Dec/2026:21:51:48 +0000");
            assert_eq!(iso, "2026-12-01T21:51:48.123+00:00");
        }
        // The same second again: only the milliseconds change.
        let (again, iso) = texts(&mut clock, at + Duration::from_millis(800));
        assert_eq!(again, local);
        assert!(iso.contains(".923"), "{iso}");

        let stamp = clock.at(at);
        let (mut whole, mut msec) = (Vec::new(), Vec::new());
        stamp.push_iso8601(&mut whole);
        stamp.push_msec(&mut msec);
        assert_eq!(whole, iso.replace(".923", "").into_bytes());
        assert_eq!(msec, b"1796161908.123");
    }

    /// A syslog header's time: the day padded with a space, as nginx's (and RFC 3164's).
    #[test]
    fn syslog_time_pads_the_day_with_a_space() {
        let mut clock = LogClock::new();
        // 2026-12-08T00:56:02Z, 2026-12-18T00:56:02Z
        for second in [1_796_691_362, 1_797_555_362] {
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(second);
            let tm = broken_down(second as i64);
            let want = format!(
                "{} {:2} {:02}:{:02}:{:02}",
                MONTHS[tm.tm_mon as usize], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec
            );
            let got = clock.at(at).syslog().to_vec();
            assert_eq!(String::from_utf8(got).unwrap(), want);
            if tm.tm_gmtoff == 0 {
                let day = if second == 1_796_691_362 {
                    "Dec  8"
                } else {
                    "Dec 18"
                };
                assert_eq!(want, format!("{day} 00:56:02"));
            }
        }
    }
}
