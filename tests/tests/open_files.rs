//! The limit of open files: ringway raises its soft limit to the hard one at start (as
//! nginx's `worker_rlimit_nofile` sets it), says so, and warns when `max_connections` lies
//! above it. Run under `prlimit`, which starts it with a low soft limit.

use ringway_tests::proc_limits::open_files;
use ringway_tests::{App, Ringway, Uwsgi};

#[test]
fn the_soft_limit_is_raised_to_the_hard_one_and_a_max_connections_above_it_is_warned_of() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .under(&["prlimit", "--nofile=256:4096"])
        .arg("--max-connections", "10000")
        .start();
    assert_eq!(open_files(ringway.pid()), (4096, 4096));
    let log = ringway.stderr();
    assert!(
        log.contains("open files: soft limit raised from 256 to 4096 (the hard limit)"),
        "{log}"
    );
    assert!(
        log.contains("max_connections = 10000 is above the limit of open files (4096)"),
        "{log}"
    );
    let at_the_limit = Ringway::with(&uwsgi)
        .under(&["prlimit", "--nofile=4096:4096"])
        .arg("--max-connections", "4096")
        .start();
    assert_eq!(open_files(at_the_limit.pid()), (4096, 4096));
    let log = at_the_limit.stderr();
    assert!(
        !log.contains("open files"),
        "nothing raised, nothing to warn of:\n{log}"
    );
}
