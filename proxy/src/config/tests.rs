use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::routes::{Action, Found};

/// A config file holding `text`, in a directory removed on drop.
fn temp_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringway.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Loads a config file (and extra flags), or the error text.
fn load(text: &str, flags: &[&str]) -> Result<Config, String> {
    let (_dir, path) = temp_file(text);
    let mut args = vec!["ringway", "--config", path.to_str().unwrap()];
    args.extend_from_slice(flags);
    Config::from_args(args).map_err(|e| format!("{e:#}"))
}

fn route<'c>(config: &'c Config, path: &str) -> &'c crate::routes::Route {
    match config.routes.find(path.as_bytes()) {
        Found::Route(i) => config.routes.get(i).unwrap(),
        other => panic!("{path}: {other:?}"),
    }
}

#[test]
fn the_flags_are_well_formed() {
    use clap::CommandFactory;
    Settings::command().debug_assert();
}

#[test]
fn file_then_flags() {
    let config = load(
        "listen = \"127.0.0.1:9000\"\nupstream = [\"unix:/tmp/a.sock\"]\n\
         max_body_size = \"2m\"\nupstream_buffer_size = 8192\nkeepalive_timeout = \"5s\"\n\
         ebpf = false\n",
        &["--max-body-size", "10k"],
    )
    .unwrap();
    assert_eq!(config.listen, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(
        config.groups[0].servers,
        vec![UpstreamAddr::Unix("/tmp/a.sock".into())]
    );
    assert_eq!(config.groups[0].buffer_size, 8192);
    assert_eq!(config.limits.max_body_size, 10 * 1024);
    assert_eq!(route(&config, "/x").limits.max_body_size, 10 * 1024);
    assert_eq!(config.keepalive_timeout, Duration::from_secs(5));
    assert_eq!(config.client_header_timeout, Duration::from_secs(60));
    assert_eq!(config.metrics, MetricsListen::Default(DEFAULT_METRICS));
    assert!(!config.ebpf);
}

#[test]
fn boolean_flags_override_the_file_only_when_given() {
    let file = "upstream = [\"unix:/a\"]\nallow_underscores_in_headers = true\n";
    let config = load(file, &[]).unwrap();
    assert!(config.allow_underscores_in_headers);
    assert!(config.ebpf);
    assert!(!load(file, &["--no-ebpf"]).unwrap().ebpf);
    let config = Config::from_args([
        "ringway",
        "--upstream",
        "unix:/a",
        "--allow-underscores-in-headers",
    ])
    .unwrap();
    assert!(config.allow_underscores_in_headers);
}

#[test]
fn flags_replace_lists_from_the_file() {
    let file = "upstream = [\"unix:/a\", \"unix:/b\"]\n";
    assert_eq!(load(file, &[]).unwrap().groups[0].servers.len(), 2);
    let config = load(file, &["--upstream", "127.0.0.1:3031"]).unwrap();
    assert_eq!(
        config.groups[0].servers,
        vec!["127.0.0.1:3031".parse().unwrap()]
    );
}

#[test]
fn errors_name_the_key_and_where_it_came_from() {
    let file = "upstream = [\"unix:/a\"]\nmax_header_size = 10\n";
    let err = load(file, &[]).unwrap_err();
    assert!(err.starts_with("max_header_size in "), "{err}");
    assert!(err.contains("ringway.toml"), "{err}");
    let err = load(file, &["--max-header-size", "1"]).unwrap_err();
    assert!(err.starts_with("--max-header-size: "), "{err}");
}

#[test]
fn unknown_or_malformed_file_keys_are_errors() {
    let err = load("upstreams = [\"unix:/a\"]\n", &[]).unwrap_err();
    assert!(err.contains("upstreams"), "{err}");
    let err = load("upstream = [\"unix:/a\"]\nsend_timeout = \"5x\"\n", &[]).unwrap_err();
    assert!(err.contains("send_timeout") && err.contains("5x"), "{err}");
    let err = load("upstream = [\"unix:/a\"]\nlisten_on = 1\n", &[]).unwrap_err();
    assert!(
        err.starts_with("listen_on in ") && err.ends_with("unknown key"),
        "{err}"
    );
}

#[test]
fn every_readme_example_loads() {
    let readme = include_str!("../../../README.md");
    let blocks: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert!(
        blocks.len() >= 3,
        "the flat, the routes and the static files examples"
    );
    // The static routes' directories, made where the examples say /srv/app/.
    let srv = tempfile::tempdir().unwrap();
    for dir in ["static", "private"] {
        std::fs::create_dir(srv.path().join(dir)).unwrap();
    }
    let srv_path = format!("\"{}/", srv.path().display());
    for block in &blocks {
        let block = block.replace("\"/srv/app/", &srv_path);
        load(&block, &[]).unwrap_or_else(|e| panic!("{e}\n{block}"));
    }
    let file: Settings = toml::from_str(blocks[0]).unwrap();
    assert_eq!(file.upstream, vec!["unix:/run/app.sock".parse().unwrap()]);
    assert_eq!(file.limits.send_timeout, Some(Dur::secs(60)));
}

#[test]
fn proxy_protocol_and_trusted_proxies() {
    let file = "upstream = [\"unix:/a\"]\nproxy_protocol = true\n\
                trusted_proxy = [\"10.0.0.0/8\", \"::1\"]\n";
    let config = load(file, &[]).unwrap();
    assert!(config.proxy_protocol);
    assert!(config.is_trusted("10.1.2.3".parse().unwrap()));
    assert!(config.is_trusted("::1".parse().unwrap()));
    assert!(config.is_trusted("::ffff:10.0.0.9".parse().unwrap()));
    assert!(!config.is_trusted("11.0.0.1".parse().unwrap()));
    let off = Config::from_args(["ringway", "--upstream", "unix:/a"]).unwrap();
    assert!(!off.proxy_protocol, "off by default");
    let on = Config::from_args(["ringway", "--upstream", "unix:/a", "--proxy-protocol"]);
    assert!(on.unwrap().proxy_protocol);

    let err = load("upstream = [\"unix:/a\"]\nproxy_protocol = \"yes\"\n", &[]).unwrap_err();
    assert!(err.starts_with("proxy_protocol in "), "{err}");
    let err = load(
        "upstream = [\"unix:/a\"]\ntrusted_proxy = [\"10.0.0.0/33\"]\n",
        &[],
    );
    let err = err.unwrap_err();
    assert!(err.starts_with("trusted_proxy in "), "{err}");
    let err = Config::from_args(["ringway", "--upstream", "unix:/a", "--trusted-proxy", "x"]);
    let err = format!("{:#}", err.unwrap_err());
    assert!(err.contains("--trusted-proxy"), "{err}");
}

#[test]
fn upstream_required() {
    assert!(Config::from_args(["ringway"]).is_err());
}

#[test]
fn defaults() {
    let config = Config::from_args(["ringway", "--upstream", "unix:/a"]).unwrap();
    assert_eq!(config.limits.client_body_buffer_size, 64 * 1024);
    assert_eq!(config.limits.response_buffer_size, 64 * 1024);
    assert_eq!(config.limits.max_temp_file_size, 1 << 30);
    assert_eq!(config.buffering.max_buffer_memory, 64 << 20);
    assert!(config.buffering.temp_dir.starts_with("/var/tmp"));
    assert_eq!(
        config.routes.iter().count(),
        1,
        "the flags make route / → default"
    );
}

/// The issue's example, with real socket paths.
const ROUTES: &str = r#"
listen = "127.0.0.1:8080"
max_body_size = "1m"

[upstreams.app]
servers = ["unix:/run/app.sock"]
buffer_size = 4096

[upstreams.api]
servers = ["127.0.0.1:3031", "127.0.0.1:3032"]

[[routes]]
path = "/api/"
upstream = "api"
script_name = "/api"
max_body_size = "100m"
upstream_read_timeout = "300s"
params = { UWSGI_SCHEME = "https" }

[[routes]]
path = "/environ"
exact = true
upstream = "api"

[[routes]]
path = "/admin/"
upstream = "app"
allow = ["10.0.0.0/8", "127.0.0.1"]

[[routes]]
path = "/old/"
redirect = { to = "/new/", status = 301 }

[[routes]]
path = "/"
upstream = "app"
response_headers = { "X-Frame-Options" = "DENY", "X-Content-Type-Options" = "nosniff" }
"#;

#[test]
fn the_routes_example_loads() {
    let config = load(ROUTES, &[]).unwrap();
    let names: Vec<&str> = config.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["api", "app"]);
    assert_eq!(
        config.routes.iter().count(),
        5,
        "no implicit route: there is no default group"
    );
    let api = route(&config, "/api/x");
    assert_eq!(api.limits.max_body_size, 100 << 20);
    assert_eq!(api.limits.upstream_read_timeout, Duration::from_secs(300));
    assert_eq!(
        api.limits.send_timeout,
        Duration::from_secs(60),
        "the rest from globals"
    );
    let Action::Upstream {
        group,
        script_name,
        params,
    } = &api.action
    else {
        panic!("{api:?}")
    };
    assert_eq!(config.groups[*group].name, "api");
    assert_eq!(script_name.as_deref(), Some("/api"));
    assert_eq!(params, &[("UWSGI_SCHEME".to_owned(), "https".to_owned())]);
    assert_eq!(route(&config, "/environ").path, "/environ");
    assert!(route(&config, "/environ").exact);
    assert_eq!(route(&config, "/environ/x").path, "/");
    assert!(!route(&config, "/admin/").allows("192.168.1.1".parse().unwrap()));
    assert!(route(&config, "/admin/").allows("127.0.0.1".parse().unwrap()));
    assert!(matches!(
        route(&config, "/old/x").action,
        Action::Redirect { status: 301, .. }
    ));
    assert_eq!(route(&config, "/x").response_headers.len(), 2);
    assert_eq!(route(&config, "/x").limits.max_body_size, 1 << 20);
}

#[test]
fn each_route_mistake_is_refused_with_its_key() {
    let group = "[upstreams.app]\nservers = [\"unix:/a\"]\n";
    let cases = [
        (
            "[[routes]]\npath = \"/\"\nupstream = \"nope\"\n",
            "routes[0].upstream",
            "no upstream group \"nope\"",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n",
            "routes[1].path",
            "another route",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nallow = [\"10.0.0.0/33\"]\n",
            "allow",
            "invalid address range",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nmax_body_size = \"1q\"\n",
            "max_body_size",
            "invalid size",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nsend_timeout = \"soon\"\n",
            "send_timeout",
            "invalid duration",
        ),
        (
            "[[routes]]\npath = \"/s/\"\nstatic = \"/nonexistent/ringway\"\n",
            "routes[0].static",
            "cannot open the directory",
        ),
        (
            "[[routes]]\npath = \"/s/\"\nstatic = \"/tmp\"\nprecompressed = [\"zstd\"]\n",
            "routes[0].precompressed",
            "expected",
        ),
        (
            "[[routes]]\npath = \"/s/\"\nstatic = \"/tmp\"\nfallback = \"nope\"\n",
            "routes[0].fallback",
            "no upstream group",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nexpires = \"1d\"\n",
            "routes[0].expires",
            "does not apply",
        ),
        (
            "[[routes]]\npath = \"/s/\"\nstatic = \"/tmp\"\nindex = \"../x\"\n",
            "routes[0].index",
            "file name",
        ),
        (
            "[[routes]]\npath = \"/\"\n",
            "routes[0].upstream",
            "needs `upstream`, `redirect` or `static`",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nredirect = { to = \"/x\" }\n",
            "routes[0].upstream",
            "not several",
        ),
        (
            "[[routes]]\npath = \"/\"\nredirect = { to = \"/x\", status = 200 }\n",
            "routes[0].redirect.status",
            "not a redirect status",
        ),
        (
            "[[routes]]\npath = \"/a/../b\"\nupstream = \"app\"\n",
            "routes[0].path",
            "not a normalised path",
        ),
        (
            "[[routes]]\npath = \"/api/\"\nupstream = \"app\"\nscript_name = \"/other\"\n",
            "routes[0].script_name",
            "not a prefix",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nupstrem = \"app\"\n",
            "routes[0].upstrem",
            "unknown key",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nresponse_headers = { \"X-A\" = \"a\\r\\nB: c\" }\n",
            "routes[0].response_headers.X-A",
            "one line",
        ),
        (
            "[upstreams.api]\nservers = []\n",
            "upstreams.api.servers",
            "no server",
        ),
        (
            "[upstreams.api]\nservers = [\"unix:/b\"]\nbuffer_size = 70000\n",
            "upstreams.api.buffer_size",
            "out of range",
        ),
        (
            "[upstreams.api]\nservers = [\"unix:/b\"]\nbuffersize = 1\n",
            "upstreams.api.buffersize",
            "unknown key",
        ),
    ];
    for (text, key, message) in cases {
        let err = load(&format!("{group}{text}"), &[]).unwrap_err();
        assert!(
            err.contains(key) && err.contains(message),
            "{text}\n→ {err}"
        );
        assert!(err.contains("ringway.toml"), "names the file: {err}");
    }
}

#[test]
fn the_upstream_flags_make_the_default_group_beside_file_routes() {
    let text = "[upstreams.api]\nservers = [\"unix:/b\"]\n[[routes]]\npath = \"/api/\"\nupstream = \"api\"\n";
    let config = load(text, &["--upstream", "unix:/a"]).unwrap();
    assert_eq!(route(&config, "/api/x").path, "/api/");
    let fallback = route(&config, "/elsewhere");
    assert_eq!(fallback.path, "/");
    let Action::Upstream { group, .. } = fallback.action else {
        panic!()
    };
    assert_eq!(config.groups[group].name, "default");
    let err = load(
        "[upstreams.default]\nservers = [\"unix:/b\"]\n",
        &["--upstream", "unix:/a"],
    )
    .unwrap_err();
    assert!(err.contains("upstreams.default"), "{err}");
}
