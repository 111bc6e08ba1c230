//! HTTP dates (RFC 9110 §5.6.7): IMF-fixdate out (`Sun, 06 Nov 1994 08:49:37 GMT`), and the
//! three formats a recipient must accept in (IMF-fixdate, RFC 850, asctime). No clock here:
//! the caller owns it.

/// Length of an IMF-fixdate.
pub const HTTP_DATE_LEN: usize = 29;

/// The last second an IMF-fixdate can spell (its year has four digits):
/// `Fri, 31 Dec 9999 23:59:59 GMT`.
pub const LAST_HTTP_DATE: u64 = 253_402_300_799;

/// The IMF-fixdate of `unix_seconds` (seconds since 1970-01-01 UTC); a time after
/// [`LAST_HTTP_DATE`] (a file's mtime may be anything) is written as that date.
pub fn http_date(unix_seconds: u64) -> [u8; HTTP_DATE_LEN] {
    let unix_seconds = unix_seconds.min(LAST_HTTP_DATE);
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = unix_seconds / 86_400;
    let secs = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    put2(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    put2(&mut out[12..14], year / 100);
    put2(&mut out[14..16], year % 100);
    put2(&mut out[17..19], secs / 3600);
    put2(&mut out[20..22], secs / 60 % 60);
    put2(&mut out[23..25], secs % 60);
    out
}

/// Seconds since the epoch of an HTTP-date in any of its three formats; `None` if it is not
/// one (or is before 1970, or after 9999: a client's year must not overflow the arithmetic).
pub fn parse_http_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let mut words = text.split_ascii_whitespace();
    let first = words.next()?;
    let (day, month, year, time) = if first.ends_with(',') {
        let rest: Vec<&str> = words.collect();
        match rest.as_slice() {
            // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
            [day, month, year, time, "GMT"] => (*day, *month, year.parse().ok()?, *time),
            // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
            [date, time, "GMT"] => {
                let mut parts = date.split('-');
                let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
                let year: u64 = year.parse().ok()?;
                // Two-digit years: RFC 9110 §5.6.7 says to read them as the nearest past or
                // coming year; 70 and later is the 1900s, as every HTTP date in use is. A
                // longer year is taken as written.
                let year = match year {
                    0..70 => 2000 + year,
                    70..100 => 1900 + year,
                    _ => year,
                };
                (day, month, year, *time)
            }
            _ => return None,
        }
    } else {
        // asctime: Sun Nov  6 08:49:37 1994
        let rest: Vec<&str> = words.collect();
        match rest.as_slice() {
            [month, day, time, year] => (*day, *month, year.parse().ok()?, *time),
            _ => return None,
        }
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as u64 + 1;
    let day: u64 = day.parse().ok()?;
    let mut hms = time.split(':').map(str::parse::<u64>);
    let (h, m, s) = (hms.next()?.ok()?, hms.next()?.ok()?, hms.next()?.ok()?);
    if hms.next().is_some() || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    if !(1970..=9999).contains(&year) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a date from 1970 on (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

fn put2(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// Year, month (1..=12) and day (1..=31) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for dates from 1970 on).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_formats_and_round_trips() {
        let want = Some(784_111_777);
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"), want);
        assert_eq!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), want);
        assert_eq!(parse_http_date(b"Sunday, 06-Nov-1994 08:49:37 GMT"), want);
        assert_eq!(parse_http_date(b"Sun Nov  6 08:49:37 1994"), want);
        for secs in [0, 951_782_400, 1_709_251_199, 1_796_083_200, LAST_HTTP_DATE] {
            assert_eq!(parse_http_date(&http_date(secs)), Some(secs), "{secs}");
        }
        for bad in [
            &b""[..],
            b"yesterday",
            b"Sun, 06 Nov 1994 08:49:37 UTC",
            b"Sun, 32 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Foo 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 24:00:00 GMT",
            b"Sun, 06 Nov 1969 08:49:37 GMT",
            b"Sun, 06 Nov 10000 08:49:37 GMT",
            b"Sun, 06 Nov 18446744073709551615 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 99999999999999999",
            b"Sunday, 06-Nov-18446744073709551615 08:49:37 GMT",
        ] {
            assert_eq!(
                parse_http_date(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn known_dates() {
        let cases = [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_709_164_799, "Wed, 28 Feb 2024 23:59:59 GMT"),
            (1_709_251_199, "Thu, 29 Feb 2024 23:59:59 GMT"),
            (1_796_083_200, "Tue, 01 Dec 2026 00:00:00 GMT"),
            (4_102_444_800, "Fri, 01 Jan 2100 00:00:00 GMT"),
            (LAST_HTTP_DATE, "Fri, 31 Dec 9999 23:59:59 GMT"),
            (u64::MAX, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ];
        for (secs, want) in cases {
            assert_eq!(
                std::str::from_utf8(&http_date(secs)).unwrap(),
                want,
                "{secs}"
            );
        }
    }
}
