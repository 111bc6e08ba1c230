//! The current time as the `Date` header says it, formatted once per second per thread.

use std::cell::Cell;
use std::time::SystemTime;

use crate::http::{HTTP_DATE_LEN, http_date};

thread_local! {
    static CACHED: Cell<(u64, [u8; HTTP_DATE_LEN])> = const { Cell::new((u64::MAX, [0; HTTP_DATE_LEN])) };
}

/// Now, as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn http_date_now() -> [u8; HTTP_DATE_LEN] {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    http_date_at(secs)
}

/// `secs` as an IMF-fixdate, formatted only when the second changed since the last call on
/// this thread (a Date header is asked for many times a second).
pub(crate) fn http_date_at(secs: u64) -> [u8; HTTP_DATE_LEN] {
    CACHED.with(|cached| {
        let (at, date) = cached.get();
        if at == secs {
            return date;
        }
        let date = http_date(secs);
        cached.set((secs, date));
        date
    })
}
