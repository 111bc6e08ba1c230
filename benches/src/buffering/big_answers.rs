//! Scenario 3: many slow readers of big answers. A hundred clients each ask for 100 MB and
//! read it slowly. A proxy that buffers answers in memory grows by all of them; one that
//! spills past a small buffer does not (and one that buffers nothing holds uWSGI's workers).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use anyhow::{Result, bail};
use serde::Serialize;

use super::fixture::Fixture;
use super::slow_reader::{self, Readers};
use super::uwsgi_log::UwsgiLog;
use super::watch::{Peaks, Watch};
use super::{SETTLE_BEFORE_START, Setting, temp_files_after};
use crate::stacks::StackKind;
use crate::sys::{self, TempFiles};

/// Kept free beyond what the answers could take, for everyone else on the machine.
const DISK_MARGIN: u64 = 2 << 30;
/// ringway's default temp directory is a private one under here.
const RINGWAY_TEMP_PARENT: &str = "/var/tmp";

#[derive(Debug, Clone, Serialize)]
pub struct BigAnswersRun {
    pub readers: Readers,
    pub rss_start: u64,
    /// While the readers were connected.
    pub peaks: Peaks,
    /// What the proxy still held once the readers had closed.
    pub temp_files_after: TempFiles,
    pub uwsgi: UwsgiLog,
}

pub fn run(setting: &Setting, kind: StackKind) -> Result<BigAnswersRun> {
    let plan = &setting.plan;
    check_free_disk(setting)?;
    let mut fixture = Fixture::start(
        &setting.tools,
        &setting.app,
        &setting.scratch,
        "big-answers",
        kind,
    )?;
    let addr = fixture.addr();
    thread::sleep(SETTLE_BEFORE_START);
    let rss_start = fixture.rss()?;
    let watch = Watch::start(fixture.proxy_pids()?);
    let stop = Arc::new(AtomicBool::new(false));
    let path = format!("/lazy/{}", plan.big_answer_bytes);
    let readers = (0..plan.big_readers)
        .map(|_| slow_reader::spawn(addr, path.clone(), setting.pace(), Arc::clone(&stop)))
        .collect::<Result<Vec<_>>>();
    if readers.is_ok() {
        thread::sleep(plan.big_read_for);
    }
    stop.store(true, Ordering::SeqCst);
    let reads = slow_reader::join(readers?);
    let peaks = watch.finish();
    let temp_files_after = temp_files_after(&mut fixture, plan.cleanup_grace)?;
    Ok(BigAnswersRun {
        readers: Readers::sum(&reads),
        rss_start,
        peaks,
        temp_files_after,
        uwsgi: fixture.finish(),
    })
}

/// A proxy that spills every answer whole writes up to readers × answer bytes (nginx writes
/// ~8 GB in 12 s here): refuse to start where the disk could fill up.
fn check_free_disk(setting: &Setting) -> Result<()> {
    let plan = &setting.plan;
    let worst = (plan.big_readers as u64).saturating_mul(plan.big_answer_bytes);
    for dir in [setting.scratch.as_path(), Path::new(RINGWAY_TEMP_PARENT)] {
        if !dir.exists() {
            continue;
        }
        let free = sys::free_disk(dir)?;
        if free < worst.saturating_add(DISK_MARGIN) {
            bail!(
                "{} has {} MiB free: the answers could take {} MiB of temp files, plus {} MiB \
                 to spare",
                dir.display(),
                free >> 20,
                worst >> 20,
                DISK_MARGIN >> 20
            );
        }
    }
    Ok(())
}
