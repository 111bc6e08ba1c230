//! A sampler thread that watches the proxy while a scenario runs: its RSS (VmRSS summed
//! over its processes) and the temp files it holds, keeping the peaks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde::Serialize;

use crate::sys;

/// RSS is cheap to read: as often as the load suite samples it.
const RSS_EVERY: Duration = Duration::from_millis(50);
/// Temp files cost a readlink and a stat per fd: every fifth RSS sample.
const TEMP_FILES_EVERY: usize = 5;

/// The peaks seen while watching.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Peaks {
    pub rss: u64,
    pub temp_bytes: u64,
    pub temp_files: usize,
    pub samples: usize,
}

pub struct Watch {
    stop: Arc<AtomicBool>,
    sampler: JoinHandle<Peaks>,
}

impl Watch {
    pub fn start(pids: Vec<u32>) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let sampler = thread::spawn(move || {
            let mut peaks = Peaks::default();
            while !flag.load(Ordering::SeqCst) {
                peaks.rss = peaks.rss.max(sys::rss_sum(&pids));
                if peaks.samples % TEMP_FILES_EVERY == 0 {
                    let temp = sys::temp_files(&pids);
                    peaks.temp_bytes = peaks.temp_bytes.max(temp.bytes);
                    peaks.temp_files = peaks.temp_files.max(temp.files);
                }
                peaks.samples += 1;
                thread::sleep(RSS_EVERY);
            }
            peaks
        });
        Watch { stop, sampler }
    }

    /// Stops the sampler and returns what it saw.
    pub fn finish(self) -> Peaks {
        self.stop.store(true, Ordering::SeqCst);
        self.sampler.join().unwrap_or_default()
    }
}
