//! Reloading the configuration (SIGHUP): the file and the flags are read and checked again;
//! a configuration that passes becomes the next generation (generation.rs), which new
//! connections and each connection's next request use, while requests in flight finish on
//! the one they started with. One that fails is refused, the old one stays.
//!
//! A few settings shape the process itself (its sockets, threads and memory budget): those
//! keep their values until a new process takes over (README, "Reload and upgrade"), and a
//! reload that changes them says so.

use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::sync::watch;

use crate::buffer::prepare_dir;
use crate::config::{Config, LogSink, MAIN_LOG};
use crate::generation::Generation;
use crate::metrics::{Reloads, RouteNames};

/// Reloads the configuration of a running server (`Server::reloader`).
pub struct Reloader {
    generations: Arc<watch::Sender<Arc<Generation>>>,
    route_names: RouteNames,
    reloads: Arc<Reloads>,
}

/// A reload that took effect.
#[derive(Debug)]
pub struct Reloaded {
    /// The new generation's number (the configuration at start is 1).
    pub generation: u64,
    /// The settings that changed in the file or flags but keep their old value (their keys).
    pub kept: Vec<&'static str>,
    /// The upstream servers' addresses, when they changed (a server added, or a name that
    /// resolved to other addresses): for the log line.
    pub upstreams: Option<String>,
}

impl Reloader {
    pub(crate) fn new(
        generations: Arc<watch::Sender<Arc<Generation>>>,
        route_names: RouteNames,
    ) -> Reloader {
        Reloader {
            generations,
            route_names,
            reloads: Arc::default(),
        }
    }

    /// The reloads' counts, for the metrics endpoint.
    pub fn reloads(&self) -> Arc<Reloads> {
        Arc::clone(&self.reloads)
    }

    /// Puts the configuration `read` gives in use, or refuses it (the error says why; the
    /// configuration in use stays). Counted either way.
    pub fn reload(
        &self,
        read: impl FnOnce() -> anyhow::Result<Config>,
    ) -> anyhow::Result<Reloaded> {
        let outcome = read().and_then(|config| self.put_in_use(config));
        match &outcome {
            Ok(_) => self.reloads.accepted(),
            Err(_) => self.reloads.refused(),
        }
        outcome
    }

    fn put_in_use(&self, mut config: Config) -> anyhow::Result<Reloaded> {
        let current = Arc::clone(&self.generations.borrow());
        let kept = keep_process_settings(&mut config, &current.config);
        // The pages were checked against the file's max_buffer_memory; the process keeps its
        // own (found by review: a page only the file's budget took was accepted, and then
        // never sent).
        let budget = config.buffering.max_buffer_memory;
        if let Some((key, why)) = config.first_misfit_page(budget) {
            bail!("{key}: {why} (max_buffer_memory changes only with a restart)");
        }
        let servers = |c: &Config| {
            let all: Vec<String> = c.all_servers().iter().map(ToString::to_string).collect();
            all.join(" ")
        };
        let upstreams = Some(servers(&config)).filter(|now| *now != servers(&current.config));
        // Before the next generation is made, which takes over the connection counts: a
        // directory that cannot be made refuses the reload with nothing changed (a refused
        // reload may leave a new, empty directory behind).
        if config.buffering.temp_dir != current.config.buffering.temp_dir {
            prepare_dir(&config.buffering.temp_dir).context("temp_dir")?;
        }
        let next = Arc::new(current.next(config, &self.route_names)?);
        let generation = next.number;
        self.generations.send_replace(next);
        Ok(Reloaded {
            generation,
            kept,
            upstreams,
        })
    }
}

/// Gives `new` the old values of the settings only a new process can change; returns the
/// keys of those that differed.
fn keep_process_settings(new: &mut Config, old: &Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    if new.listen != old.listen {
        kept.push("listen");
        new.listen.clone_from(&old.listen);
    }
    if new.listen_deferred != old.listen_deferred {
        kept.push("listen_deferred");
        new.listen_deferred = old.listen_deferred;
    }
    if new.workers != old.workers {
        kept.push("workers");
        new.workers = old.workers;
    }
    if new.pin_workers != old.pin_workers {
        kept.push("pin_workers");
        new.pin_workers = old.pin_workers;
    }
    // Compared as what is bound: the default address written out is the same endpoint
    // (found by review: a reload warned of a change that was none).
    if new.metrics.addresses() != old.metrics.addresses() {
        kept.push("metrics");
    }
    new.metrics = old.metrics.clone();
    if new.ebpf != old.ebpf {
        kept.push("ebpf");
        new.ebpf = old.ebpf;
    }
    if new.buffering.max_buffer_memory != old.buffering.max_buffer_memory {
        kept.push("max_buffer_memory");
        new.buffering.max_buffer_memory = old.buffering.max_buffer_memory;
    }
    // The supervisor started the app with the start's [app]; a reload does not restart it.
    if new.app != old.app {
        kept.push("app");
        new.app.clone_from(&old.app);
    }
    // The TLS listeners are bound at start: TLS cannot be turned on or off, nor moved; the
    // rest of [tls] (certificates, HSTS, handshake timeout) follows the file.
    match (&mut new.tls, &old.tls) {
        (Some(new_tls), Some(old_tls)) if new_tls.listen != old_tls.listen => {
            kept.push("tls.listen");
            new_tls.listen.clone_from(&old_tls.listen);
        }
        (Some(_), Some(_)) | (None, None) => {}
        (tls, old_tls) => {
            kept.push("tls.listen");
            tls.clone_from(old_tls);
        }
    }
    // The access log's writer (its files, or stderr) lives as long as the process; the
    // format follows the file.
    let same_sinks = match (&new.access_log, &old.access_log) {
        (None, None) => true,
        (Some(new_log), Some(old_log)) => {
            new_log.sinks.len() == old_log.sinks.len()
                && new_log
                    .sinks
                    .iter()
                    .zip(&old_log.sinks)
                    .all(|(a, b)| a.same_place(b))
        }
        _ => false,
    };
    if !same_sinks {
        kept.push("access_log");
    }
    // The check opened the files (so that one that cannot be opened is refused); the writer
    // has its own, so these are closed, not kept open past a log rotation.
    for sink in new.access_log.iter().flat_map(|log| &log.sinks) {
        if let LogSink::File { opened, .. } = sink {
            drop(opened.take());
        }
    }
    if !same_sinks {
        let new_sinks = new.access_log.as_ref().map(|log| log.sinks.clone());
        let old_sinks = old.access_log.as_ref().map(|log| &log.sinks[..]);
        // Each route's lines go where the process writes: to the place the new file names
        // for it, if the writer has that place (at whatever index), else to the process's
        // top-level log (a top level turned off is not a place the writer has: its lines
        // go on, as the reload says was kept).
        new.routes.retarget_logs(|to| {
            let place = new_sinks.as_ref().and_then(|sinks| sinks.get(to));
            let kept = place.and_then(|place| old_sinks?.iter().position(|o| o.same_place(place)));
            Some(kept.unwrap_or(MAIN_LOG))
        });
        match (new.access_log.as_mut(), old.access_log.as_ref()) {
            // Only where the lines go is the process's: the format and the statuses the
            // reload brings are taken (found by review: they went back to the old ones with
            // the files, unsaid).
            (Some(new_log), Some(old_log)) => new_log.sinks = old_log.sinks.clone(),
            // Turned on or off: the writer is started with the process, or never.
            _ => new.access_log.clone_from(&old.access_log),
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::keep_process_settings;
    use crate::config::Config;

    fn config(args: &[&str]) -> Config {
        let mut all = vec!["ringway", "--upstream", "unix:/none"];
        all.extend_from_slice(args);
        Config::from_args(all).expect("a valid configuration")
    }

    #[test]
    fn process_settings_keep_their_values_and_are_named() {
        let old = config(&["--listen", "127.0.0.1:8000", "--workers", "2"]);
        let mut new = config(&[
            "--listen",
            "127.0.0.1:9000",
            "--workers",
            "3",
            "--max-body-size",
            "1k",
            "--listen-deferred",
            "--no-pin-workers",
        ]);
        let kept = keep_process_settings(&mut new, &old);
        assert_eq!(
            kept,
            ["listen", "listen_deferred", "workers", "pin_workers"]
        );
        assert_eq!(new.listen, old.listen);
        assert!(!new.listen_deferred);
        assert_eq!(new.workers, 2);
        assert!(new.pin_workers);
        // Everything else follows the new configuration.
        assert_eq!(new.limits.max_body_size, 1024);
    }

    /// The default metrics address written out is no change (found by review: a reload
    /// warned of one); another address is, and is kept.
    #[test]
    fn the_metrics_endpoint_is_compared_by_its_address() {
        let old = config(&[]);
        let mut same = config(&["--metrics", "127.0.0.1:9145"]);
        assert!(keep_process_settings(&mut same, &old).is_empty());
        assert_eq!(same.metrics, old.metrics);
        let mut moved = config(&["--metrics", "127.0.0.1:9146"]);
        assert_eq!(keep_process_settings(&mut moved, &old), ["metrics"]);
        assert_eq!(moved.metrics, old.metrics);
    }

    #[test]
    fn the_app_section_is_kept() {
        use crate::app::{AppConfig, Restart, StopSignal};
        use std::time::Duration;
        let app = |program: &str| AppConfig {
            command: vec![program.to_owned()],
            stop_signal: StopSignal::from_name("SIGINT").expect("a stop signal"),
            restart: Restart::OnFailure,
            ready_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(10),
        };
        let mut old = config(&[]);
        old.app = Some(app("uwsgi"));
        let mut new = config(&[]);
        new.app = Some(app("gunicorn"));
        assert_eq!(keep_process_settings(&mut new, &old), ["app"]);
        assert_eq!(new.app, old.app);
    }

    /// The access log's file is the process's; its format and statuses follow the reload.
    #[test]
    fn a_new_access_log_file_is_kept_from_the_old_but_its_format_taken() {
        use crate::config::LogSink;
        let dir = tempfile::tempdir().expect("a temp dir");
        let at = |name: &str| dir.path().join(name).display().to_string();
        let old = config(&["--access-log", &at("old.log")]);
        let new_file = at("new.log");
        let mut new = config(&[
            "--access-log",
            &new_file,
            "--access-log-format",
            "json",
            "--access-log-statuses",
            "5xx",
        ]);
        let wanted = new
            .access_log
            .as_ref()
            .map(|l| (l.format.clone(), l.statuses));
        assert_eq!(keep_process_settings(&mut new, &old), ["access_log"]);
        let log = new.access_log.as_ref().expect("an access log");
        let path = |log: &crate::config::AccessLogConfig| match &log.sinks[..] {
            [LogSink::File { path, .. }] => path.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(path(log), dir.path().join("old.log"));
        assert_eq!(Some((log.format.clone(), log.statuses)), wanted);
    }

    /// A reload that names a route log file the process does not write sends that route's
    /// lines to the top level's log, and says the access log was kept; a route whose file
    /// the process writes keeps writing it, wherever the new list puts it.
    #[test]
    fn a_route_log_file_a_reload_adds_is_kept_out() {
        use crate::config::{LogSink, MAIN_LOG};
        let dir = tempfile::tempdir().expect("a temp dir");
        let at = |name: &str| dir.path().join(name).display().to_string();
        let load = |routes: &[(&str, &str)]| {
            let mut text = format!(
                "upstream = [\"unix:/a\"]\naccess_log = \"{}\"\n",
                at("main.log")
            );
            for (path, log) in routes {
                text.push_str(&format!(
                    "[[routes]]\npath = \"{path}\"\nupstream = \"default\"\naccess_log = \"{}\"\n",
                    at(log)
                ));
            }
            let file = dir.path().join("ringway.toml");
            std::fs::write(&file, text).expect("written");
            let path = file.display().to_string();
            Config::from_args(["ringway", "--config", path.as_str()]).expect("a configuration")
        };
        let old = load(&[("/api/", "api.log")]);
        let mut new = load(&[("/new/", "new.log"), ("/api/", "api.log")]);
        let log_to = |config: &Config, path: &str| {
            config
                .routes
                .iter()
                .find(|r| r.path == path)
                .and_then(|r| r.log_to)
        };
        assert_eq!(log_to(&new, "/new/"), Some(1));
        assert_eq!(log_to(&new, "/api/"), Some(2));
        assert_eq!(keep_process_settings(&mut new, &old), ["access_log"]);
        assert_eq!(
            log_to(&new, "/new/"),
            Some(MAIN_LOG),
            "not written: to the main log"
        );
        assert_eq!(
            log_to(&new, "/api/"),
            Some(1),
            "the file the process writes"
        );
        let sinks = &new.access_log.as_ref().expect("an access log").sinks;
        assert!(
            matches!(&sinks[1], LogSink::File { path, .. } if path.ends_with("api.log")),
            "{sinks:?}"
        );

        // The top level's log turned off by a reload is kept, as said: the routes without
        // their own file write on to it.
        let text = format!(
            "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/api/\"\nupstream = \"default\"\n\
             access_log = \"{}\"\n[[routes]]\npath = \"/x/\"\nupstream = \"default\"\n",
            at("api.log")
        );
        let file = dir.path().join("off.toml");
        std::fs::write(&file, text).expect("written");
        let path = file.display().to_string();
        let mut off =
            Config::from_args(["ringway", "--config", path.as_str()]).expect("a configuration");
        assert_eq!(keep_process_settings(&mut off, &old), ["access_log"]);
        assert_eq!(log_to(&off, "/x/"), Some(MAIN_LOG));
        assert_eq!(log_to(&off, "/api/"), Some(1));
        let sinks = &off.access_log.as_ref().expect("an access log").sinks;
        assert!(
            matches!(&sinks[MAIN_LOG], LogSink::File { path, .. } if path.ends_with("main.log"))
        );

        // A file the process writes for a route, made the top level's by a reload: the
        // routes write on to it, at its index.
        let text = format!(
            "upstream = [\"unix:/a\"]\naccess_log = \"{}\"\n\
             [[routes]]\npath = \"/x/\"\nupstream = \"default\"\n",
            at("api.log")
        );
        std::fs::write(&file, text).expect("written");
        let mut swapped =
            Config::from_args(["ringway", "--config", path.as_str()]).expect("a configuration");
        assert_eq!(keep_process_settings(&mut swapped, &old), ["access_log"]);
        assert_eq!(
            log_to(&swapped, "/x/"),
            Some(1),
            "api.log, where the process has it"
        );
    }

    #[test]
    fn an_unchanged_configuration_keeps_nothing() {
        let old = config(&[]);
        let mut new = config(&[]);
        assert!(keep_process_settings(&mut new, &old).is_empty());
    }
}
