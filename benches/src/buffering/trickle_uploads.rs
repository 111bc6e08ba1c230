//! Scenario 2: trickling uploads. Hundreds of clients announce a 1 MB body, send nearly all
//! of it at once, then trickle the rest. A proxy that holds request bodies in memory grows by
//! all of them; one that spills them to disk past a small buffer does not.

use std::sync::Arc;
use std::thread;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use super::fixture::Fixture;
use super::uploader::{self, Trickle, Uploads};
use super::uwsgi_log::UwsgiLog;
use super::watch::{Peaks, Watch};
use super::{SETTLE_BEFORE_START, Setting};
use crate::stacks::StackKind;
use crate::sys::{self, TempFiles};

#[derive(Debug, Clone, Serialize)]
pub struct TrickleUploadsRun {
    pub uploads: Uploads,
    pub rss_start: u64,
    /// From the first connect until the last upload closed.
    pub peaks: Peaks,
    /// `plan.after_close` after the last upload closed.
    pub rss_after: u64,
    pub temp_files_after: TempFiles,
    pub uwsgi: UwsgiLog,
}

pub fn run(setting: &Setting, kind: StackKind) -> Result<TrickleUploadsRun> {
    let plan = &setting.plan;
    let mut fixture = Fixture::start(
        &setting.tools,
        &setting.app,
        &setting.scratch,
        "trickle-uploads",
        kind,
    )?;
    let addr = fixture.addr();
    let body = Arc::new(vec![b'x'; plan.upload_bytes]);
    let shape = Trickle {
        total: plan.upload_bytes,
        quick: plan.upload_quick_bytes,
        every: plan.trickle_every,
        lasting: plan.trickle_for,
    };
    thread::sleep(SETTLE_BEFORE_START);
    let rss_start = fixture.rss()?;
    let watch = Watch::start(fixture.proxy_pids()?);
    let started = Instant::now();
    let mut handles = Vec::with_capacity(plan.uploads);
    let mut spawn_error = None;
    for _ in 0..plan.uploads {
        match uploader::spawn(addr, shape.clone(), Arc::clone(&body), started) {
            Ok(handle) => handles.push(handle),
            Err(err) => {
                spawn_error = Some(err);
                break;
            }
        }
    }
    let uploads = uploader::join(handles);
    let peaks = watch.finish();
    if let Some(err) = spawn_error {
        return Err(err);
    }
    setting.check_interrupt()?;
    thread::sleep(plan.after_close);
    let pids = fixture.proxy_pids()?;
    let rss_after = sys::rss_sum(&pids);
    let temp_files_after = sys::temp_files(&pids);
    Ok(TrickleUploadsRun {
        uploads,
        rss_start,
        peaks,
        rss_after,
        temp_files_after,
        uwsgi: fixture.finish(),
    })
}
