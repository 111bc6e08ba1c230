//! Work for tokio's blocking pool (a static file's open, a slow password hash, the last
//! close of a large file) that survives the pool failing to start a thread.
//!
//! tokio queues the work first, then starts a thread for it; when that fails and the pool
//! has no thread left (a pids limit reached: systemd's `TasksMax`, a container's
//! `pids.max`, which an app's workers share), it panics in the caller and leaves the work
//! queued until a later call starts a thread (found by review). Run through [`run`], the
//! request gets an answer instead of a dropped connection, and what the work was to hold
//! while it ran (a place among the worker's opens) is given back at once rather than
//! stranded with it: a worker's static files would otherwise wait for those places for
//! ever.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};

use crate::ratelimit::NamedGate;

thread_local! {
    /// This thread is asking tokio for a blocking thread, and catches its panic.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Installs the panic hook: tokio's panic when no thread can be started, which [`run`]
/// catches and answers, is reported a few times per window (it comes again with each
/// request); every other panic is reported in full, as ever (found by review: a limit on
/// all panics could leave a worker's fatal one unsaid).
pub fn limit_caught_panic_messages() {
    static GATE: NamedGate = NamedGate::warn("caught panics (no thread for blocking work)");
    let report = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !CATCHING.with(Cell::get) || GATE.allow() {
            report(info);
        }
    }));
}

/// `spawn` called with its panic caught, and said to the hook.
fn caught<R>(spawn: impl FnOnce() -> R) -> std::thread::Result<R> {
    CATCHING.with(|c| c.set(true));
    let spawned = panic::catch_unwind(AssertUnwindSafe(spawn));
    CATCHING.with(|c| c.set(false));
    spawned
}

/// Runs `work` on the blocking pool, handing it `held` (a permit it keeps while it runs).
/// `None` when it could not run: no thread could be started for it (logged, a few lines
/// per window; if the queued work runs later, it finds `held` taken and does nothing), or
/// it panicked.
pub(crate) async fn run<T, R>(held: T, work: impl FnOnce(T) -> R + Send + 'static) -> Option<R>
where
    T: Send + 'static,
    R: Send + 'static,
{
    let slot = Arc::new(Mutex::new(Some(held)));
    let queued = Arc::clone(&slot);
    let spawned = caught(|| {
        tokio::task::spawn_blocking(move || {
            let held = take(&queued)?;
            Some(work(held))
        })
    });
    match spawned {
        Ok(handle) => handle.await.ok().flatten(),
        Err(_) => {
            drop(take(&slot));
            report_no_thread();
            None
        }
    }
}

/// Sends `value` to the blocking pool to be dropped there (a close that may wait on a
/// disk); dropped here, on the event loop, if no thread can be started for it.
pub(crate) fn drop_off_loop<T: Send + 'static>(value: T) {
    let slot = Arc::new(Mutex::new(Some(value)));
    let queued = Arc::clone(&slot);
    let spawned = caught(|| tokio::task::spawn_blocking(move || drop(take(&queued))));
    if spawned.is_err() {
        drop(take(&slot));
        report_no_thread();
    }
}

fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    // Nothing panics while holding it; a poisoned lock still holds the value.
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

fn report_no_thread() {
    static GATE: NamedGate = NamedGate::warn("no thread for blocking work");
    if GATE.allow() {
        tracing::warn!(
            "no thread could be started for a file open, a password check or a file close \
             (a limit on the number of tasks, such as systemd's TasksMax or a container's \
             pids.max?): a request that needed one is answered 500, a file is closed on \
             the event loop"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_work_gets_what_it_holds_and_its_result_comes_back() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let held = Arc::new(());
        let got = rt.block_on(run(Arc::clone(&held), |h| Arc::strong_count(&h)));
        assert_eq!(got, Some(2), "the work held it while it ran");
        assert_eq!(Arc::strong_count(&held), 1, "and let it go after");
        let panicked = rt.block_on(run((), |()| -> u8 { panic!("the work's own panic") }));
        assert_eq!(panicked, None);
    }

    #[test]
    fn what_is_dropped_off_the_loop_is_dropped() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let value = Arc::new(());
        rt.block_on(async {
            drop_off_loop(Arc::clone(&value));
            for _ in 0..200 {
                if Arc::strong_count(&value) == 1 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        });
        assert_eq!(Arc::strong_count(&value), 1);
    }
}
