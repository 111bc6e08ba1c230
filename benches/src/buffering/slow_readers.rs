//! Scenario 1: slow readers must not starve normal clients. uWSGI has 2 workers; a few
//! clients ask for big answers and read them very slowly. A proxy that does not take the
//! answers off uWSGI's hands leaves the workers blocked on it (each gives up after uWSGI's
//! 4 s socket-timeout and logs a write timeout), and everyone else waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use anyhow::Result;
use serde::Serialize;

use super::fixture::Fixture;
use super::normal_client::{self, Latencies};
use super::slow_reader::{self, Readers};
use super::uwsgi_log::UwsgiLog;
use super::watch::{Peaks, Watch};
use super::{Setting, temp_files_after};
use crate::stacks::StackKind;
use crate::sys::TempFiles;

#[derive(Debug, Clone, Serialize)]
pub struct SlowReadersRun {
    /// The normal client alone.
    pub alone: Latencies,
    /// The normal client while the slow readers are connected.
    pub beside_readers: Latencies,
    pub readers: Readers,
    pub rss_start: u64,
    /// While the readers were connected.
    pub peaks: Peaks,
    /// What the proxy still held once the readers had closed.
    pub temp_files_after: TempFiles,
    pub uwsgi: UwsgiLog,
}

pub fn run(setting: &Setting, kind: StackKind) -> Result<SlowReadersRun> {
    let plan = &setting.plan;
    let mut fixture = Fixture::start(
        &setting.tools,
        &setting.app,
        &setting.scratch,
        "slow-readers",
        kind,
    )?;
    let addr = fixture.addr();
    let alone = normal_client::sequential_gets(addr, plan.latency_window);
    setting.check_interrupt()?;

    let rss_start = fixture.rss()?;
    let watch = Watch::start(fixture.proxy_pids()?);
    let stop = Arc::new(AtomicBool::new(false));
    let path = format!("/lazy/{}", plan.slow_answer_bytes);
    let readers = (0..plan.slow_readers)
        .map(|_| slow_reader::spawn(addr, path.clone(), setting.pace(), Arc::clone(&stop)))
        .collect::<Result<Vec<_>>>();
    // Even if a reader could not start, the others must be stopped: the flag goes up below.
    let beside_readers = readers.as_ref().ok().map(|_| {
        thread::sleep(plan.readers_head_start);
        normal_client::sequential_gets(addr, plan.latency_window)
    });
    stop.store(true, Ordering::SeqCst);
    let reads = slow_reader::join(readers?);
    let peaks = watch.finish();
    let temp_files_after = temp_files_after(&mut fixture, plan.cleanup_grace)?;
    Ok(SlowReadersRun {
        alone,
        beside_readers: beside_readers.unwrap_or_default(),
        readers: Readers::sum(&reads),
        rss_start,
        peaks,
        temp_files_after,
        uwsgi: fixture.finish(),
    })
}
