//! The buffering suite: ringway and nginx in front of uWSGI under slow and hostile clients.
//!
//! Three scenarios, each run at each stack on a fresh uWSGI (2 workers, its default 4 s
//! socket-timeout) and a fresh proxy, one after the other:
//!
//! 1. **slow-readers**: a normal client's latency alone, then beside a few clients reading
//!    big answers very slowly; and uWSGI's write timeouts.
//! 2. **trickle-uploads**: hundreds of 1 MB uploads sent nearly whole, then trickled; the
//!    proxy's RSS at the peak and after they closed.
//! 3. **big-answers**: a hundred clients reading 100 MB answers slowly; the proxy's RSS.
//!
//! It reports figures and whether ringway met each target (nginx's figures beside it); a
//! missed target is a finding, not a failure. [`run`] writes `buffering.json` and
//! `buffering.md`.

mod big_answers;
mod fixture;
mod normal_client;
pub mod plan;
pub mod report;
mod slow_reader;
mod slow_readers;
mod trickle_uploads;
mod uploader;
mod uwsgi_log;
mod watch;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;

pub use big_answers::BigAnswersRun;
pub use plan::Plan;
pub use report::BufferingReport;
pub use slow_readers::SlowReadersRun;
pub use trickle_uploads::TrickleUploadsRun;

use crate::stacks::{App, StackKind, Tools};
use crate::sys::{self, TempFiles};
use fixture::Fixture;
use slow_reader::ReadPace;

/// The body limit of both proxies (ringway `--max-body-size`, nginx `client_max_body_size`),
/// the same in every scenario: the 1 MB uploads with room to spare (both default to 1m).
pub const MAX_BODY_SIZE: &str = "2m";
/// After start-up and the probes, before the starting RSS is read.
const SETTLE_BEFORE_START: Duration = Duration::from_millis(300);

/// Which scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    SlowReaders,
    TrickleUploads,
    BigAnswers,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [
        Scenario::SlowReaders,
        Scenario::TrickleUploads,
        Scenario::BigAnswers,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::SlowReaders => "slow-readers",
            Scenario::TrickleUploads => "trickle-uploads",
            Scenario::BigAnswers => "big-answers",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Scenario::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .with_context(|| {
                format!("unknown scenario {name:?} (slow-readers, trickle-uploads, big-answers)")
            })
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything the suite needs.
#[derive(Debug, Clone)]
pub struct BufferingConfig {
    pub ringway: PathBuf,
    pub nginx: PathBuf,
    pub venv: PathBuf,
    pub app: App,
    pub stacks: Vec<StackKind>,
    pub scenarios: Vec<Scenario>,
    pub plan: Plan,
    pub ringway_workers: usize,
    pub uwsgi_workers: usize,
    pub out_dir: PathBuf,
    /// The command line, for the report.
    pub command: String,
    /// Set from outside (Ctrl-C) to stop between phases.
    pub interrupt: Arc<AtomicBool>,
}

/// One scenario at one stack: its figures, or why there are none.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioRun {
    pub scenario: Scenario,
    pub stack: StackKind,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    SlowReaders(SlowReadersRun),
    TrickleUploads(TrickleUploadsRun),
    BigAnswers(BigAnswersRun),
    /// The run could not be done (a proxy that would not start, a crash): reported as such.
    Failed(String),
}

/// What a scenario runs with.
pub struct Setting {
    pub tools: Tools,
    pub app: App,
    pub scratch: PathBuf,
    pub plan: Plan,
    interrupt: Arc<AtomicBool>,
}

impl Setting {
    fn pace(&self) -> ReadPace {
        ReadPace {
            chunk: self.plan.read_chunk,
            every: self.plan.read_every,
            rcvbuf: self.plan.reader_rcvbuf,
        }
    }

    fn check_interrupt(&self) -> Result<()> {
        if self.interrupt.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        Ok(())
    }
}

/// Runs the suite and writes the report under `config.out_dir`.
pub fn run(config: &BufferingConfig) -> Result<BufferingReport> {
    let nofile = sys::raise_nofile()?;
    // Each client holds one fd here and two in the proxy (its own and the upstream's).
    let needed = 2 * config.plan.max_clients() + 256;
    if (nofile as usize) < needed {
        bail!("RLIMIT_NOFILE is {nofile}: {needed} file descriptors are needed (ulimit -Hn)");
    }
    for (what, path) in [
        ("ringway", &config.ringway),
        ("nginx", &config.nginx),
        ("the app", &config.app.file),
        ("uWSGI", &config.venv.join("bin").join("uwsgi")),
    ] {
        if !path.exists() {
            bail!("{what} not found at {}", path.display());
        }
    }
    if let Some(other) = config.stacks.iter().find(|k| !is_buffering_proxy(**k)) {
        bail!("the buffering suite compares ringway and nginx, not {other}");
    }
    let started = (crate::report::now_utc(), sys::loadavg());
    let scratch = sys::TempDir::new("ringway-bench-buffering")?;
    eprintln!("bench: scratch dir {}", scratch.path().display());
    let setting = Setting {
        tools: Tools {
            ringway: config.ringway.clone(),
            nginx: config.nginx.clone(),
            venv: config.venv.clone(),
            ringway_workers: config.ringway_workers,
            ringway_probes: false,
            uwsgi_workers: config.uwsgi_workers,
            server_cpus: None,
            nofile,
            max_body_size: Some(MAX_BODY_SIZE.to_owned()),
            static_dir: None,
            tls: None,
        },
        app: config.app.clone(),
        scratch: scratch.path().to_path_buf(),
        plan: config.plan.clone(),
        interrupt: Arc::clone(&config.interrupt),
    };

    let mut runs = Vec::new();
    for &scenario in &config.scenarios {
        for &stack in &config.stacks {
            setting.check_interrupt()?;
            eprintln!("bench: {scenario} at {stack}");
            let outcome = match run_one(&setting, scenario, stack) {
                Ok(outcome) => outcome,
                Err(err) => {
                    setting.check_interrupt()?;
                    eprintln!("bench:     failed: {err:#}");
                    Outcome::Failed(format!("{err:#}"))
                }
            };
            eprintln!("bench:     {}", report::one_line(&outcome));
            runs.push(ScenarioRun {
                scenario,
                stack,
                outcome,
            });
        }
    }
    drop(scratch);
    let report = BufferingReport::build(config, started, runs);
    report.write(&config.out_dir)?;
    Ok(report)
}

fn is_buffering_proxy(kind: StackKind) -> bool {
    matches!(kind, StackKind::Ringway | StackKind::Nginx)
}

fn run_one(setting: &Setting, scenario: Scenario, stack: StackKind) -> Result<Outcome> {
    Ok(match scenario {
        Scenario::SlowReaders => Outcome::SlowReaders(slow_readers::run(setting, stack)?),
        Scenario::TrickleUploads => Outcome::TrickleUploads(trickle_uploads::run(setting, stack)?),
        Scenario::BigAnswers => Outcome::BigAnswers(big_answers::run(setting, stack)?),
    })
}

/// The temp files the proxy still holds `grace` after its clients closed (none, if it
/// cleans up after them).
fn temp_files_after(fixture: &mut Fixture, grace: Duration) -> Result<TempFiles> {
    thread::sleep(grace);
    Ok(sys::temp_files(&fixture.proxy_pids()?))
}
