//! The buffering report: one row per figure, ringway's and nginx's side by side, with the
//! target and whether ringway met it (and, for context, whether nginx would), written as
//! `buffering.json` and `buffering.md`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::{
    BigAnswersRun, BufferingConfig, MAX_BODY_SIZE, Outcome, Plan, Scenario, ScenarioRun,
    SlowReadersRun, TrickleUploadsRun,
};
use crate::report::{now_utc, version};
use crate::stacks::StackKind;
use crate::sys::{self, TempFiles};

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    pub started: String,
    pub finished: String,
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub command: String,
    pub kernel: String,
    pub cpu: String,
    pub cpus: usize,
    pub ringway: String,
    pub nginx: String,
    pub uwsgi: String,
    pub ringway_workers: usize,
    pub uwsgi_workers: usize,
    pub max_body_size: String,
    pub plan: Plan,
}

/// A figure's target: at most this much (in the unit of the row's values).
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub at_most: f64,
    pub text: String,
}

/// One stack's figure in a row.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub value: Option<f64>,
    pub shown: String,
    /// Within the row's target (`None`: no target, or no figure).
    pub within: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: Scenario,
    pub figure: String,
    pub target: Option<Target>,
    pub ringway: Cell,
    pub nginx: Cell,
}

#[derive(Debug, Clone, Serialize)]
pub struct BufferingReport {
    pub meta: Meta,
    pub rows: Vec<Row>,
    pub runs: Vec<ScenarioRun>,
}

impl BufferingReport {
    pub fn build(
        config: &BufferingConfig,
        (started, loadavg_start): (String, String),
        runs: Vec<ScenarioRun>,
    ) -> BufferingReport {
        let (kernel, cpu) = sys::machine();
        let meta = Meta {
            started,
            finished: now_utc(),
            loadavg_start,
            loadavg_end: sys::loadavg(),
            command: config.command.clone(),
            kernel,
            cpu,
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            ringway: version(&config.ringway, &["--version"]),
            nginx: version(&config.nginx, &["-v"]),
            uwsgi: version(&config.venv.join("bin").join("uwsgi"), &["--version"]),
            ringway_workers: config.ringway_workers,
            uwsgi_workers: config.uwsgi_workers,
            max_body_size: MAX_BODY_SIZE.to_owned(),
            plan: config.plan.clone(),
        };
        let rows = rows(&meta.plan, &runs);
        BufferingReport { meta, rows, runs }
    }

    /// Writes buffering.json and buffering.md into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        crate::write_file(
            &dir.join("buffering.json"),
            &serde_json::to_string_pretty(self)?,
        )?;
        crate::write_file(&dir.join("buffering.md"), &self.markdown())
    }

    pub fn markdown(&self) -> String {
        let m = &self.meta;
        let p = &m.plan;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## ringway-bench: buffering under slow and hostile clients\n"
        );
        let _ = writeln!(
            out,
            "Run {} → {} with `{}`. Machine: {} vCPU ({}), Linux {}. Load average (1/5/15 min) \
             at the start: {}, at the end: {}.  ",
            m.started,
            m.finished,
            m.command,
            m.cpus,
            m.cpu,
            m.kernel,
            m.loadavg_start,
            m.loadavg_end
        );
        let _ = writeln!(
            out,
            "{}, {} worker(s), `--max-body-size {}`, buffering at its defaults; {}, \
             worker_processes auto, client_body_buffer_size 64k, uwsgi_buffer_size 16k, \
             uwsgi_buffers 8 16k, client_max_body_size {}, temp files on disk \
             (uwsgi_max_temp_file_size at its 1024m default); {}, {} workers, socket-timeout \
             at its 4 s default. Each scenario runs at each stack on a fresh uWSGI and a \
             fresh proxy.\n",
            m.ringway,
            m.ringway_workers,
            m.max_body_size,
            m.nginx,
            m.max_body_size,
            m.uwsgi,
            m.uwsgi_workers
        );
        if p.label != "full" {
            let _ = writeln!(
                out,
                "**Plan `{}`: smaller and shorter than the issue's; these figures check the \
                 setup and judge nothing.**\n",
                p.label
            );
        }
        let pace = format!(
            "reading {} KiB every {} s on a {} KiB SO_RCVBUF",
            p.read_chunk / 1024,
            secs(p.read_every),
            p.reader_rcvbuf / 1024
        );
        let _ = writeln!(
            out,
            "- **slow-readers**: one client doing sequential keep-alive `GET /` for {} s alone, \
             then again {} s after {} clients asked for `/lazy/{}` ({}), while they stay \
             connected; uWSGI's log is searched for write timeouts.\n\
             - **trickle-uploads**: {} clients `POST /echo` with `Content-Length: {}`, send \
             {} bytes at once, then one byte every {} s for {} s, then the rest, and read the \
             answer; RSS before, at the peak, and {} s after the last one closed.\n\
             - **big-answers**: {} clients ask for `/lazy/{}` and read for {} s ({}), then \
             close.\n",
            secs(p.latency_window),
            secs(p.readers_head_start),
            p.slow_readers,
            p.slow_answer_bytes,
            pace,
            p.uploads,
            p.upload_bytes,
            p.upload_quick_bytes,
            secs(p.trickle_every),
            secs(p.trickle_for),
            secs(p.after_close),
            p.big_readers,
            p.big_answer_bytes,
            secs(p.big_read_for),
            pace
        );
        let _ = writeln!(
            out,
            "RSS: VmRSS summed over the proxy's processes, sampled every 50 ms. Temp files: \
             regular files the proxy holds open after unlinking them (O_TMPFILE or unlinked), \
             their sizes summed, sampled every 250 ms. The verdict is ringway's; nginx's \
             figure against the same target is shown for context.\n"
        );
        let _ = writeln!(
            out,
            "| scenario | figure | target | ringway | nginx | ringway verdict | nginx vs target |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for row in &self.rows {
            let target = row.target.as_ref().map_or("", |t| t.text.as_str());
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                row.scenario,
                row.figure,
                target,
                row.ringway.shown.replace('|', "/"),
                row.nginx.shown.replace('|', "/"),
                verdict(row.target.is_some(), row.ringway.within, true),
                verdict(row.target.is_some(), row.nginx.within, false)
            );
        }
        let failures: Vec<&ScenarioRun> = self
            .runs
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
            .collect();
        if !failures.is_empty() {
            let _ = writeln!(out, "\n### Runs that failed\n");
            for r in failures {
                if let Outcome::Failed(why) = &r.outcome {
                    let why: String = why.chars().take(600).collect();
                    let _ = writeln!(out, "- {} at {}: {}", r.scenario, r.stack, why);
                }
            }
        }
        out
    }
}

/// A short line of what a run saw, for the progress log.
pub fn one_line(outcome: &Outcome) -> String {
    match outcome {
        Outcome::SlowReaders(r) => format!(
            "normal client p50 {} → {} ms, p99 {} → {} ms; uWSGI write timeouts {}; \
             readers' heads {}/{}",
            ms(r.alone.p50_us),
            ms(r.beside_readers.p50_us),
            ms(r.alone.p99_us),
            ms(r.beside_readers.p99_us),
            r.uwsgi.write_timeouts,
            r.readers.heads_200,
            r.readers.clients
        ),
        Outcome::TrickleUploads(r) => format!(
            "RSS {} → peak {} → after {} MiB; echoed whole {}/{}; temp peak {}",
            mib(r.rss_start),
            mib(r.peaks.rss),
            mib(r.rss_after),
            r.uploads.whole,
            r.uploads.clients,
            temp(r.peaks.temp_bytes, r.peaks.temp_files)
        ),
        Outcome::BigAnswers(r) => format!(
            "RSS {} → peak {} MiB; heads {}/{}; temp peak {}; uWSGI write timeouts {}",
            mib(r.rss_start),
            mib(r.peaks.rss),
            r.readers.heads_200,
            r.readers.clients,
            temp(r.peaks.temp_bytes, r.peaks.temp_files),
            r.uwsgi.write_timeouts
        ),
        Outcome::Failed(why) => format!("failed: {why}"),
    }
}

fn verdict(has_target: bool, within: Option<bool>, ringway: bool) -> &'static str {
    match (has_target, within, ringway) {
        (false, _, _) => "",
        (true, Some(true), true) => "met",
        (true, Some(false), true) => "**missed**",
        (true, Some(true), false) => "within",
        (true, Some(false), false) => "beyond",
        (true, None, _) => "not measured",
    }
}

/// What a row measures in one run: its value (compared with the target) and how it reads.
type Measure<T> = fn(&T, &Plan) -> (Option<f64>, String);

/// A row over the runs of one scenario.
fn row<T>(
    runs: &[ScenarioRun],
    plan: &Plan,
    scenario: Scenario,
    figure: String,
    target: Option<(f64, &str)>,
    pick: fn(&Outcome) -> Option<&T>,
    measure: Measure<T>,
) -> Row {
    let target = target.map(|(at_most, text)| Target {
        at_most,
        text: text.to_owned(),
    });
    let cell = |stack: StackKind| {
        let run = runs
            .iter()
            .find(|r| r.scenario == scenario && r.stack == stack);
        let (value, shown) = match run.map(|r| (&r.outcome, pick(&r.outcome))) {
            None => (None, "–".to_owned()),
            Some((Outcome::Failed(_), _)) => (None, "failed".to_owned()),
            Some((_, None)) => (None, "–".to_owned()),
            Some((_, Some(figures))) => measure(figures, plan),
        };
        let within = match (&target, value) {
            (Some(t), Some(v)) => Some(v <= t.at_most),
            _ => None,
        };
        Cell {
            value,
            shown,
            within,
        }
    };
    Row {
        scenario,
        figure,
        ringway: cell(StackKind::Ringway),
        nginx: cell(StackKind::Nginx),
        target,
    }
}

fn slow_readers(o: &Outcome) -> Option<&SlowReadersRun> {
    match o {
        Outcome::SlowReaders(r) => Some(r),
        _ => None,
    }
}

fn trickle_uploads(o: &Outcome) -> Option<&TrickleUploadsRun> {
    match o {
        Outcome::TrickleUploads(r) => Some(r),
        _ => None,
    }
}

fn big_answers(o: &Outcome) -> Option<&BigAnswersRun> {
    match o {
        Outcome::BigAnswers(r) => Some(r),
        _ => None,
    }
}

fn rows(plan: &Plan, runs: &[ScenarioRun]) -> Vec<Row> {
    let mut out = Vec::new();
    let has = |s: Scenario| runs.iter().any(|r| r.scenario == s);
    if has(Scenario::SlowReaders) {
        out.extend(slow_readers_rows(plan, runs));
    }
    if has(Scenario::TrickleUploads) {
        out.extend(trickle_uploads_rows(plan, runs));
    }
    if has(Scenario::BigAnswers) {
        out.extend(big_answers_rows(plan, runs));
    }
    out
}

fn slow_readers_rows(plan: &Plan, runs: &[ScenarioRun]) -> Vec<Row> {
    let s = Scenario::SlowReaders;
    vec![
        row(
            runs,
            plan,
            s,
            "normal client p50 beside the slow readers ÷ alone".into(),
            Some((2.0, "≤ 2×")),
            slow_readers,
            |r, _| slowdown(r.alone.p50_us, r.beside_readers.p50_us),
        ),
        row(
            runs,
            plan,
            s,
            "normal client p99 beside the slow readers ÷ alone".into(),
            Some((2.0, "≤ 2×")),
            slow_readers,
            |r, _| slowdown(r.alone.p99_us, r.beside_readers.p99_us),
        ),
        row(
            runs,
            plan,
            s,
            "uWSGI write timeouts (log lines)".into(),
            Some((0.0, "0")),
            slow_readers,
            |r, _| count(r.uwsgi.write_timeouts),
        ),
        row(
            runs,
            plan,
            s,
            "normal client requests: alone / beside the readers (failed)".into(),
            None,
            slow_readers,
            |r, _| {
                (
                    None,
                    format!(
                        "{} / {} ({})",
                        r.alone.requests,
                        r.beside_readers.requests,
                        r.alone.errors + r.beside_readers.errors
                    ),
                )
            },
        ),
        row(
            runs,
            plan,
            s,
            "slow readers: answer heads (200) / cut short / KiB read".into(),
            None,
            slow_readers,
            |r, _| {
                (
                    Some(r.readers.heads_200 as f64),
                    format!(
                        "{}/{} / {} / {:.0}",
                        r.readers.heads_200,
                        r.readers.clients,
                        r.readers.cut_short,
                        r.readers.body_bytes as f64 / 1024.0
                    ),
                )
            },
        ),
        row(
            runs,
            plan,
            s,
            "proxy temp files at the peak".into(),
            None,
            slow_readers,
            |r, _| temp_cell(r.peaks.temp_bytes, r.peaks.temp_files),
        ),
        row(
            runs,
            plan,
            s,
            "proxy RSS: start → peak (MiB)".into(),
            None,
            slow_readers,
            |r, _| growth(r.rss_start, r.peaks.rss),
        ),
        row(
            runs,
            plan,
            s,
            format!(
                "temp files the proxy still held {} s after the readers closed",
                secs(plan.cleanup_grace)
            ),
            None,
            slow_readers,
            |r, _| temp_left(r.temp_files_after),
        ),
    ]
}

fn trickle_uploads_rows(plan: &Plan, runs: &[ScenarioRun]) -> Vec<Row> {
    let s = Scenario::TrickleUploads;
    vec![
        row(
            runs,
            plan,
            s,
            "proxy RSS growth at the peak: start → peak (MiB)".into(),
            Some((32.0, "≤ +32 MiB")),
            trickle_uploads,
            |r, _| growth(r.rss_start, r.peaks.rss),
        ),
        row(
            runs,
            plan,
            s,
            format!(
                "proxy RSS {} s after the uploads closed: start → then (MiB)",
                secs(plan.after_close)
            ),
            Some((4.0, "≤ +4 MiB")),
            trickle_uploads,
            |r, _| growth(r.rss_start, r.rss_after),
        ),
        row(
            runs,
            plan,
            s,
            "uploads echoed whole / refused / failed".into(),
            None,
            trickle_uploads,
            |r, _| {
                let u = &r.uploads;
                let mut shown = format!("{}/{} / {} / {}", u.whole, u.clients, u.refused, u.errors);
                if let Some(why) = &u.first_problem {
                    let why: String = why.chars().take(80).collect();
                    let _ = write!(shown, " (first: {why})");
                }
                (Some(u.whole as f64), shown)
            },
        ),
        row(
            runs,
            plan,
            s,
            "proxy temp files at the peak".into(),
            None,
            trickle_uploads,
            |r, _| temp_cell(r.peaks.temp_bytes, r.peaks.temp_files),
        ),
        row(
            runs,
            plan,
            s,
            "uWSGI body-read timeouts (log lines)".into(),
            None,
            trickle_uploads,
            |r, _| count(r.uwsgi.read_timeouts),
        ),
        row(
            runs,
            plan,
            s,
            format!(
                "temp files the proxy still held {} s after the uploads closed",
                secs(plan.after_close)
            ),
            None,
            trickle_uploads,
            |r, _| temp_left(r.temp_files_after),
        ),
    ]
}

fn big_answers_rows(plan: &Plan, runs: &[ScenarioRun]) -> Vec<Row> {
    let s = Scenario::BigAnswers;
    vec![
        row(
            runs,
            plan,
            s,
            "proxy RSS growth at the peak: start → peak (MiB)".into(),
            Some((16.0, "≤ +16 MiB")),
            big_answers,
            |r, _| growth(r.rss_start, r.peaks.rss),
        ),
        row(
            runs,
            plan,
            s,
            format!(
                "readers that got the answer's head in {} s / MiB they read",
                secs(plan.big_read_for)
            ),
            None,
            big_answers,
            |r, _| {
                (
                    Some(r.readers.heads_200 as f64),
                    format!(
                        "{}/{} / {:.1}",
                        r.readers.heads_200,
                        r.readers.clients,
                        r.readers.body_bytes as f64 / MIB
                    ),
                )
            },
        ),
        row(
            runs,
            plan,
            s,
            "uWSGI write timeouts (log lines)".into(),
            None,
            big_answers,
            |r, _| count(r.uwsgi.write_timeouts),
        ),
        row(
            runs,
            plan,
            s,
            "proxy temp files at the peak".into(),
            None,
            big_answers,
            |r, _| temp_cell(r.peaks.temp_bytes, r.peaks.temp_files),
        ),
        row(
            runs,
            plan,
            s,
            format!(
                "temp files the proxy still held {} s after the readers closed",
                secs(plan.cleanup_grace)
            ),
            None,
            big_answers,
            |r, _| temp_left(r.temp_files_after),
        ),
    ]
}

fn slowdown(alone: Option<u64>, beside: Option<u64>) -> (Option<f64>, String) {
    match (alone, beside) {
        (Some(a), Some(b)) if a > 0 => {
            let r = b as f64 / a as f64;
            (
                Some(r),
                format!("{} → {} ms = {}×", ms(Some(a)), ms(Some(b)), times(r)),
            )
        }
        _ => (None, format!("{} → {} ms", ms(alone), ms(beside))),
    }
}

/// A ratio with the digits that matter: 1.3, 17, 140224.
fn times(r: f64) -> String {
    if r < 10.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.0}")
    }
}

fn growth(start: u64, then: u64) -> (Option<f64>, String) {
    let delta = (then as f64 - start as f64) / MIB;
    (
        Some(delta),
        format!("{} → {} ({delta:+.1})", mib(start), mib(then)),
    )
}

fn count(n: usize) -> (Option<f64>, String) {
    (Some(n as f64), n.to_string())
}

fn temp_cell(bytes: u64, files: usize) -> (Option<f64>, String) {
    (Some(bytes as f64), temp(bytes, files))
}

fn temp_left(t: TempFiles) -> (Option<f64>, String) {
    (Some(t.files as f64), temp(t.bytes, t.files))
}

fn temp(bytes: u64, files: usize) -> String {
    if files == 0 {
        "none".to_owned()
    } else {
        format!("{} MiB in {files} file(s)", mib(bytes))
    }
}

fn ms(us: Option<u64>) -> String {
    us.map_or("–".to_owned(), |us| format!("{:.2}", us as f64 / 1000.0))
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / MIB)
}

fn secs(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::normal_client::Latencies;
    use super::super::slow_reader::Readers;
    use super::super::uwsgi_log::UwsgiLog;
    use super::super::watch::Peaks;
    use super::*;

    fn slow(p50_alone: u64, p50_beside: u64, timeouts: usize) -> Outcome {
        let lat = |p50: u64| Latencies {
            requests: 10,
            p50_us: Some(p50),
            p99_us: Some(p50 * 2),
            max_us: Some(p50 * 3),
            ..Latencies::default()
        };
        Outcome::SlowReaders(SlowReadersRun {
            alone: lat(p50_alone),
            beside_readers: lat(p50_beside),
            readers: Readers::default(),
            rss_start: 0,
            peaks: Peaks::default(),
            temp_files_after: TempFiles::default(),
            uwsgi: UwsgiLog {
                write_timeouts: timeouts,
                ..UwsgiLog::default()
            },
        })
    }

    #[test]
    fn verdicts_follow_the_targets() {
        let runs = vec![
            ScenarioRun {
                scenario: Scenario::SlowReaders,
                stack: StackKind::Ringway,
                outcome: slow(100, 4_000_000, 3),
            },
            ScenarioRun {
                scenario: Scenario::SlowReaders,
                stack: StackKind::Nginx,
                outcome: slow(100, 150, 0),
            },
            ScenarioRun {
                scenario: Scenario::TrickleUploads,
                stack: StackKind::Ringway,
                outcome: Outcome::Failed("no".into()),
            },
        ];
        let rows = rows(&Plan::full(), &runs);
        let p50 = &rows[0];
        assert_eq!(
            (p50.ringway.within, p50.nginx.within),
            (Some(false), Some(true))
        );
        assert_eq!(p50.nginx.shown, "0.10 → 0.15 ms = 1.5×");
        let timeouts = &rows[2];
        assert_eq!(
            (timeouts.ringway.value, timeouts.nginx.within),
            (Some(3.0), Some(true))
        );
        let trickle = rows
            .iter()
            .find(|r| r.scenario == Scenario::TrickleUploads)
            .expect("a trickle row");
        assert_eq!(
            (trickle.ringway.shown.as_str(), trickle.nginx.shown.as_str()),
            ("failed", "–")
        );
        assert_eq!(trickle.ringway.within, None);
        assert!(!rows.iter().any(|r| r.scenario == Scenario::BigAnswers));
        assert_eq!(growth(10 * 1024 * 1024, 8 * 1024 * 1024).0, Some(-2.0));
    }
}
