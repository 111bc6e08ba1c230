//! The config file: TOML text → `Settings` → validated `Config`, as `ringway --config FILE`
//! reads it. Whatever the text, the answer is a config or an error naming what is wrong,
//! never a panic; a config accepted is one the daemon can run on (workers, limits in their
//! ranges, route paths in normalised form).

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::fuzzing::config_from_toml;
use ringway::uwsgi::normalize_path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config_from_toml(text) {
        Ok(config) => {
            assert!(config.workers >= 1);
            assert!((1024..=1 << 20).contains(&config.max_header_size));
            assert!(config.limits.client_body_buffer_size >= 1024);
            assert!(config.groups.iter().all(|g| !g.servers.is_empty()));
            assert!(
                config
                    .groups
                    .iter()
                    .all(|g| (4..=65535).contains(&g.buffer_size))
            );
            for label in config.route_labels() {
                let path = label.strip_prefix('=').unwrap_or(&label);
                let mut normal = Vec::new();
                assert!(
                    normalize_path(path.as_bytes(), &mut normal).is_ok(),
                    "route {label:?}"
                );
                assert_eq!(normal, path.as_bytes(), "route {label:?} is not normalised");
            }
            let _ = config.all_servers();
        }
        Err(err) => assert!(!format!("{err:#}").is_empty()),
    }
});
