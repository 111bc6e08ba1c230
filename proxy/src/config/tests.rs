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

/// `text` is refused, the message naming `key`, saying `message`, and naming the file.
fn assert_refused(text: &str, key: &str, message: &str) {
    let err = load(text, &[]).unwrap_err();
    assert!(
        err.contains(key) && err.contains(message),
        "{text}\n→ {err}"
    );
    assert!(err.contains("ringway.toml"), "names the file: {err}");
}

fn route<'c>(config: &'c Config, path: &str) -> &'c crate::routes::Route {
    match config.routes.find(None, path.as_bytes()) {
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
fn workers_are_pinned_unless_the_file_or_a_flag_says_not() {
    let upstream = "upstream = [\"unix:/tmp/a.sock\"]\n";
    assert!(load(upstream, &[]).unwrap().pin_workers);
    let off = format!("{upstream}pin_workers = false\n");
    assert!(!load(&off, &[]).unwrap().pin_workers);
    assert!(!load(upstream, &["--no-pin-workers"]).unwrap().pin_workers);
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
    assert_eq!(config.listen, ["127.0.0.1:9000".parse().unwrap()]);
    assert_eq!(
        addrs(&config.groups[0]),
        [UpstreamAddr::Unix("/tmp/a.sock".into())]
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
        addrs(&config.groups[0]),
        ["127.0.0.1:3031".parse::<UpstreamAddr>().unwrap()]
    );
}

fn addrs(group: &crate::config::Group) -> Vec<UpstreamAddr> {
    group.servers.iter().map(|s| s.addr.clone()).collect()
}

#[test]
fn servers_take_nginx_server_options() {
    let text = "[upstreams.app]\n\
        servers = [\"unix:/a weight=3 max_fails=2 fail_timeout=30s\", \"unix:/b\", \"unix:/c backup\"]\n\
        [[routes]]\npath = \"/\"\nupstream = \"app\"\n";
    let config = load(text, &[]).unwrap();
    let options: Vec<_> = config.groups[0].servers.iter().map(|s| s.options).collect();
    assert_eq!((options[0].weight, options[0].max_fails), (3, 2));
    assert_eq!(options[0].fail_timeout, Duration::from_secs(30));
    assert_eq!(options[1], crate::config::ServerOptions::default());
    assert!(options[2].backup);

    let flagged = load(
        "",
        &[
            "--upstream",
            "unix:/a weight=2",
            "--upstream",
            "unix:/b down",
        ],
    );
    let flagged = flagged.unwrap();
    assert_eq!(flagged.groups[0].servers[0].options.weight, 2);
    assert!(flagged.groups[0].servers[1].options.down);

    let err = load("upstream = [\"unix:/a backup\"]\n", &[]).unwrap_err();
    assert!(
        format!("{err:#}").contains("every server is a backup"),
        "{err:#}"
    );
    let err = load("upstream = [\"unix:/a weight=0\"]\n", &[]).unwrap_err();
    assert!(format!("{err:#}").contains("weight=0"), "{err:#}");
    let many: Vec<String> = (0..65).map(|i| format!("\"unix:/s{i}\"")).collect();
    let err = load(&format!("upstream = [{}]\n", many.join(", ")), &[]).unwrap_err();
    assert!(format!("{err:#}").contains("at most 64"), "{err:#}");
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
    for dir in [
        "static",
        "private",
        "public",
        "media",
        "dashboard",
        "uploads",
    ] {
        std::fs::create_dir(srv.path().join(dir)).unwrap();
    }
    std::fs::write(srv.path().join("static/favicon.ico"), [0u8; 16]).unwrap();
    // The users of the auth_basic example.
    std::fs::write(srv.path().join("htpasswd"), "ann:{PLAIN}secret\n").unwrap();
    let srv_path = format!("\"{}/", srv.path().display());
    // The error pages, made where the examples say /srv/errors/.
    let errors = tempfile::tempdir().unwrap();
    for page in [
        "404.html",
        "502.html",
        "503.html",
        "504.html",
        "api502.json",
    ] {
        std::fs::write(errors.path().join(page), "<h1>sorry</h1>").unwrap();
    }
    let errors_path = format!("\"{}/", errors.path().display());
    for block in &blocks {
        let block = block
            .replace("\"/srv/app/", &srv_path)
            .replace("\"/srv/errors/", &errors_path);
        load(&block, &[]).unwrap_or_else(|e| panic!("{e}\n{block}"));
    }
    let file: Settings = toml::from_str(blocks[0]).unwrap();
    assert_eq!(file.upstream, vec!["unix:/run/app.sock".parse().unwrap()]);
    assert_eq!(file.limits.send_timeout, Some(Dur::secs(60)));
}

#[test]
fn listen_deferred_and_reset_timedout_connection_are_off_unless_asked() {
    let off = Config::from_args(["ringway", "--upstream", "unix:/a"]).unwrap();
    assert!(!off.listen_deferred && !off.reset_timedout_connection);
    let file =
        "upstream = [\"unix:/a\"]\nlisten_deferred = true\nreset_timedout_connection = true\n";
    let config = load(file, &[]).unwrap();
    assert!(config.listen_deferred && config.reset_timedout_connection);
    let flags = ["--listen-deferred", "--reset-timedout-connection"];
    let config = load("upstream = [\"unix:/a\"]\n", &flags).unwrap();
    assert!(config.listen_deferred && config.reset_timedout_connection);
    let err = load("upstream = [\"unix:/a\"]\nlisten_deferred = 1\n", &[]).unwrap_err();
    assert!(err.starts_with("listen_deferred in "), "{err}");
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
fn limit_except_takes_nginx_methods_and_get_brings_head() {
    let route = |limit: &str| {
        format!(
            "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/\"\nupstream = \"default\"\nlimit_except = {limit}\n"
        )
    };
    let config = load(
        &route("{ methods = [\"POST\", \"GET\"], allow = [\"10.0.0.0/8\"] }"),
        &[],
    )
    .unwrap();
    let r = self::route(&config, "/x");
    let local: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    assert!(r.allows_method(b"HEAD", local), "GET brings HEAD");
    assert!(r.allows_method(b"POST", local));
    assert!(!r.allows_method(b"PUT", local));
    assert!(
        r.allows_method(b"PUT", "10.1.2.3".parse().unwrap()),
        "allowed clients use any"
    );
    assert_refused(
        &route("{ methods = [] }"),
        "routes[0].limit_except.methods",
        "no method",
    );
    assert_refused(
        &route("{ methods = [\"get\"] }"),
        "routes[0].limit_except.methods",
        "not a method",
    );
    assert_refused(
        &route("{ methods = [\"GET\"], deny = [] }"),
        "routes[0]",
        "unknown field",
    );
}

#[test]
fn upstream_headers_go_to_http_groups_only_and_leave_framing_alone() {
    let http = |set: &str| {
        format!(
            "[upstreams.web]\nservers = [\"http://127.0.0.1:8000\"]\n[[routes]]\npath = \"/\"\nupstream = \"web\"\nupstream_headers = {set}\n"
        )
    };
    assert!(load(&http("{ \"X-Script-Name\" = \"/app\", Host = \"b\" }"), &[]).is_ok());
    for (set, says) in [
        ("{ \"Content-Length\" = \"1\" }", "ringway's own"),
        ("{ Connection = \"close\" }", "ringway's own"),
        ("{ Host = \"\" }", "needs a Host"),
        ("{ \"X A\" = \"1\" }", "not a header name"),
        ("{ \"X-A\" = \" padded\" }", "not a header value"),
    ] {
        assert_refused(&http(set), "routes[0].upstream_headers", says);
    }
    let uwsgi = "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/\"\nupstream = \"default\"\nupstream_headers = { \"X-A\" = \"1\" }\n";
    assert_refused(uwsgi, "routes[0].upstream_headers", "params");
    let top = "upstream_headers = { Expect = \"x\" }\nupstream = [\"http://127.0.0.1:8000\"]\n";
    assert_refused(top, "upstream_headers.Expect", "ringway's own");
    let top_uwsgi = "upstream_headers = { \"X-A\" = \"1\" }\nupstream = [\"unix:/a\"]\n";
    assert_refused(top_uwsgi, "upstream_headers", "params");
    // Variables: those known before the answer; a wrong one named with its header.
    assert_refused(
        &http("{ \"X-T\" = \"$request_time\" }"),
        "routes[0].upstream_headers.X-T",
        "for log lines only",
    );
    assert_refused(
        "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/\"\nupstream = \"default\"\n\
         params = { X_A = \"$nope\" }\n",
        "routes[0].params.X_A",
        "unknown variable (not shown",
    );
    // nginx's `uwsgi_param CONTENT_LENGTH $content_length` would empty it for chunked
    // uploads: the body's length is ringway's.
    assert_refused(
        "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/\"\nupstream = \"default\"\n\
         params = { CONTENT_LENGTH = \"$content_length\" }\n",
        "CONTENT_LENGTH",
        "leave it out",
    );
    let config = load(&http("{ \"X-Port\" = \"$server_port\" }"), &[]).unwrap();
    let Action::Upstream {
        upstream_headers, ..
    } = &route(&config, "/").action
    else {
        panic!("an upstream route")
    };
    assert_eq!(upstream_headers[0].1, "$server_port", "as written");
}

#[test]
fn redirect_forwarded_http_needs_a_proxy_to_believe() {
    let on = "upstream = [\"unix:/a\"]\nredirect_forwarded_http = true\n";
    assert_refused(on, "redirect_forwarded_http", "trusted_proxy");
    let trusted = format!("{on}trusted_proxy = [\"10.0.0.1\"]\n");
    assert_eq!(
        load(&trusted, &[]).unwrap().redirect_forwarded_http,
        Some(301)
    );
    let flagged = load(
        "upstream = [\"unix:/a\"]\n",
        &["--trusted-proxy", "10.0.0.1", "--redirect-forwarded-http"],
    );
    assert_eq!(flagged.unwrap().redirect_forwarded_http, Some(301));
    assert_eq!(
        load("upstream = [\"unix:/a\"]\n", &[])
            .unwrap()
            .redirect_forwarded_http,
        None
    );
}

#[test]
fn a_redirect_to_https_takes_true_false_or_its_status() {
    let base = "upstream = [\"unix:/a\"]\ntrusted_proxy = [\"10.0.0.1\"]\n";
    let status = |line: &str, flags: &[&str]| {
        load(&format!("{base}{line}"), flags).map(|c| c.redirect_forwarded_http)
    };
    assert_eq!(
        status("redirect_forwarded_http = 308\n", &[]),
        Ok(Some(308))
    );
    assert_eq!(status("redirect_forwarded_http = false\n", &[]), Ok(None));
    assert_eq!(
        status("", &["--redirect-forwarded-http", "307"]),
        Ok(Some(307))
    );
    assert_eq!(
        status(
            "redirect_forwarded_http = 308\n",
            &["--redirect-forwarded-http"]
        ),
        Ok(Some(301)),
        "the flag alone is true, over the file"
    );
    for bad in [
        "redirect_forwarded_http = 200\n",
        "redirect_forwarded_http = \"yes\"\n",
        "redirect_forwarded_http = -1\n",
        "redirect_forwarded_http = 1.5\n",
    ] {
        let err = status(bad, &[]).unwrap_err();
        assert!(err.contains("301, 302, 303, 307 or 308"), "{bad}: {err}");
    }
}

#[test]
fn real_ip_header_names_a_header_read_from_trusted_proxies_only() {
    let trusted = "upstream = [\"unix:/a\"]\ntrusted_proxy = [\"10.0.0.0/8\"]\n";
    let config = load(trusted, &[]).unwrap();
    assert_eq!(
        config.real_ip_header,
        RealIpHeader::ForwardedFor,
        "the default"
    );
    let config = load(
        &format!("{trusted}real_ip_header = \"CF-Connecting-IP\"\n"),
        &[],
    );
    let named = RealIpHeader::Named("cf-connecting-ip".into());
    assert_eq!(config.unwrap().real_ip_header, named);
    let config = load(trusted, &["--real-ip-header", "X-FORWARDED-FOR"]).unwrap();
    assert_eq!(config.real_ip_header, RealIpHeader::ForwardedFor);
    let config = load(trusted, &["--real-ip-header", "X-Real-IP"]).unwrap();
    assert_eq!(config.real_ip_header.name(), "x-real-ip");

    let file = "upstream = [\"unix:/a\"]\nreal_ip_header = \"X-Real-IP\"\n";
    assert_refused(file, "real_ip_header", "trusted_proxy");
    let with = |value: &str| format!("{trusted}real_ip_header = {value:?}\n");
    assert_refused(
        &with("proxy_protocol"),
        "real_ip_header",
        "proxy_protocol = true",
    );
    assert_refused(&with("Forwarded"), "real_ip_header", "X-Forwarded-For");
    assert_refused(&with("X Real IP"), "real_ip_header", "not a header name");
    assert_refused(&with(""), "real_ip_header", "not a header name");
}

#[test]
fn real_ip_recursive_walks_by_default_and_needs_a_trusted_proxy() {
    let trusted = "upstream = [\"unix:/a\"]\ntrusted_proxy = [\"10.0.0.0/8\"]\n";
    assert!(load(trusted, &[]).unwrap().real_ip_recursive, "the default");
    let off = load(trusted, &["--no-real-ip-recursive"]).unwrap();
    assert!(!off.real_ip_recursive);
    let off = load(&format!("{trusted}real_ip_recursive = false\n"), &[]).unwrap();
    assert!(!off.real_ip_recursive);
    let file = "upstream = [\"unix:/a\"]\nreal_ip_recursive = false\n";
    assert_refused(file, "real_ip_recursive", "trusted_proxy");
}

#[test]
fn an_ipv4_mapped_range_is_refused_with_the_range_to_write() {
    for (range, write) in [
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:127.0.0.1", "127.0.0.1/32"),
        ("::ffff:0.0.0.0/96", "0.0.0.0/0"),
    ] {
        let file = format!("upstream = [\"unix:/a\"]\ntrusted_proxy = [\"{range}\"]\n");
        let err = load(&file, &[]).unwrap_err();
        assert!(err.contains(&format!("write {write}")), "{range}: {err}");
    }
    // Past 128 bits: no range at all.
    let file = "upstream = [\"unix:/a\"]\ntrusted_proxy = [\"::ffff:10.0.0.0/200\"]\n";
    let err = load(file, &[]).unwrap_err();
    assert!(err.contains("expected IP or IP/BITS"), "{err}");
    // Not mapped: taken.
    let file = "upstream = [\"unix:/a\"]\ntrusted_proxy = [\"::/0\", \"fd00::/8\"]\n";
    assert_eq!(load(file, &[]).unwrap().trusted_proxies.len(), 2);
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
        ..
    } = &api.action
    else {
        panic!("{api:?}")
    };
    assert_eq!(config.groups[*group].name, "api");
    assert_eq!(script_name.as_deref(), Some("/api"));
    assert_eq!(
        &params[..],
        &[("UWSGI_SCHEME".to_owned(), "https".to_owned())]
    );
    assert_eq!(route(&config, "/environ").path, "/environ");
    assert!(route(&config, "/environ").exact);
    assert_eq!(route(&config, "/environ/x").path, "/");
    let access = |ip: &str| route(&config, "/admin/").access_of(ip.parse().unwrap());
    assert_eq!(access("192.168.1.1"), crate::routes::Access::Denied);
    assert_eq!(access("127.0.0.1"), crate::routes::Access::Allowed);
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
        // One route naming a Host twice is told so, not blamed on another route.
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nhosts = [\"example.com\", \"EXAMPLE.com.\"]\n",
            "routes[0].hosts",
            "names \"example.com\" twice: give each Host once",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nhosts = [\"example.com\", \".example.com\"]\n",
            "routes[0].hosts",
            "names \"example.com\" twice (\"example.com\" and \".example.com\")",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nhosts = [\"*.example.com\", \".example.com\"]\n",
            "routes[0].hosts",
            "names \"*.example.com\" twice (\"*.example.com\" and \".example.com\")",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nallow = [\"10.0.0.0/33\"]\n",
            "allow",
            "invalid address range",
        ),
        // A host's address with a range's prefix: which was meant is not guessed.
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nallow = [\"192.168.1.10/24\"]\n",
            "allow",
            "write 192.168.1.0/24 for the range, or 192.168.1.10 for the one address",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nallow = [\"fd00::1/8\"]\n",
            "allow",
            "write fd00::/8 for the range",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nallow = []\n",
            "routes[0].allow",
            "an empty list would let every client in",
        ),
        (
            "[[routes]]\npath = \"/t\"\nrespond = { status = 200, body = \"t\" }\n\
             auth_basic = { realm = \"r\", user_file = \"/etc/htpasswd\" }\n",
            "routes[0].auth_basic",
            "is never checked on a `respond` or `redirect` route",
        ),
        (
            "[[routes]]\npath = \"/t\"\nredirect = { to = \"/x\" }\nauth_request = \"/auth\"\n",
            "routes[0].auth_request",
            "is never checked",
        ),
        (
            "[[routes]]\npath = \"/s/\"\nstatic = \"/tmp\"\nparams = { HTTP_X_USER = \"u\" }\n",
            "routes[0].params",
            "does not apply",
        ),
        (
            "[[routes]]\npath = \"/s/\"\nstatic = \"/tmp\"\nfallback = \"app\"\n\
             upstream_headers = { X-User = \"u\" }\n",
            "routes[0].upstream_headers",
            "speaks uwsgi",
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
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nhide_headers = [\"X Powered\"]\n",
            "routes[0].hide_headers",
            "is not a header name",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nnext_upstream = [\"error\", \"http_501\"]\n",
            "next_upstream",
            "unknown case \"http_501\"",
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
            "[[routes]]\npath = \"/s/\"\nstatic = \"/tmp\"\ntypes = { \".pdf\" = \"application/pdf\" }\n",
            "routes[0].types",
            "an extension, without its dot",
        ),
        (
            "[[routes]]\npath = \"/s/\"\nstatic = \"/tmp\"\ntypes = { pdf = \"pdf\" }\n",
            "routes[0].types",
            "is not a media type",
        ),
        (
            "[[routes]]\npath = \"/s/\"\nstatic = \"/tmp\"\ntypes = { pdf = \"a/b\", PDF = \"a/c\" }\n",
            "routes[0].types",
            "given twice",
        ),
        (
            "[[routes]]\npath = \"/s/\"\nstatic = \"/tmp\"\ndefault_type = \"text/plain\\n\"\n",
            "routes[0].default_type",
            "is not a media type",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\ndefault_type = \"text/plain\"\n",
            "routes[0].default_type",
            "does not apply",
        ),
        (
            "[[routes]]\npath = \"/s/\"\nstatic = \"/tmp\"\nfallback = \"/s/../index.html\"\n",
            "routes[0].fallback",
            "must be a normalised path",
        ),
        // A path only an app's route serves: nginx's try_files would pass it to the app,
        // ringway's fallback path is a file's.
        (
            "[[routes]]\npath = \"/s/\"\nstatic = \"/tmp\"\nfallback = \"/index.html\"\n",
            "routes[0].fallback",
            "no static route serves \"/index.html\"",
        ),
        (
            "[[routes]]\npath = \"/s/\"\nstatic = \"/tmp\"\nfallback = \"/s/index.html\"\n\
             hosts = [\"a.test\"]\n\
             [[routes]]\npath = \"/s/index.html\"\nexact = true\nupstream = \"app\"\nhosts = [\"a.test\"]\n",
            "routes[0].fallback",
            "for the Host a.test",
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
            "[[routes]]\npath = \"/\"\nredirect = { to = \"https://example.com\" }\n",
            "routes[0].redirect.to",
            "ends in its host",
        ),
        (
            "[[routes]]\npath = \"/\"\nredirect = { to = \"//example.com\" }\n",
            "routes[0].redirect.to",
            "ends in its host",
        ),
        (
            "[[routes]]\nregex = '^/r(.*)$'\nredirect = { to = \"https://example.com$1\" }\n",
            "routes[0].redirect.to",
            "group in its host or right after it",
        ),
        (
            "[[routes]]\nregex = '^/s/(.*)$'\nredirect = { to = \"https://$1.example.com/\" }\n",
            "routes[0].redirect.to",
            "group in its host or right after it",
        ),
        (
            "[[routes]]\nregex = '^/go/(.*)$'\nredirect = { to = \"$1\" }\n",
            "routes[0].redirect.to",
            "group in its host or right after it",
        ),
        // nginx's variables: sent as written, so refused (found by review).
        (
            "[[routes]]\npath = \"/\"\nredirect = { to = \"https://$host/new/\" }\n",
            "routes[0].redirect.to",
            "names $host, and `to` takes only a regex route's groups",
        ),
        (
            "[[routes]]\npath = \"/\"\nredirect = { to = \"https://example.com$request_uri\" }\n",
            "routes[0].redirect.to",
            "names $request_uri",
        ),
        (
            "[[routes]]\nregex = '^/p/(?<id>[0-9]+)$'\nredirect = { to = \"/product/${id}\" }\n",
            "routes[0].redirect.to",
            "names ${id}",
        ),
        (
            "[[routes]]\nregex = '^/p/([0-9]+)$'\nredirect = { to = \"/product/$0\" }\n",
            "routes[0].redirect.to",
            "names $0",
        ),
        (
            "[[routes]]\npath = \"/ip\"\nrespond = { status = 200, body = \"$remote_addr\\n\" }\n",
            "routes[0].respond.body",
            "names $remote_addr",
        ),
        (
            "[[routes]]\npath = \"/p\"\nrespond = { status = 200, body = \"costs $5\" }\n",
            "routes[0].respond.body",
            "names $5",
        ),
        (
            "[[routes]]\npath = \"/\"\n",
            "routes[0].upstream",
            "needs `upstream`, `redirect`, `static`, `respond` or `stub_status`",
        ),
        (
            "[[routes]]\npath = \"/s\"\nstub_status = true\nupstream = \"app\"\n",
            "routes[0].stub_status",
            "not several",
        ),
        (
            "[[routes]]\npath = \"/s\"\nstub_status = true\nexpires = \"1d\"\n",
            "routes[0].expires",
            "does not apply",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nredirect = { to = \"/x\" }\n",
            "routes[0].upstream",
            "not several",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nrespond = { status = 200 }\n",
            "routes[0].upstream",
            "not several",
        ),
        (
            "[[routes]]\npath = \"/\"\nrespond = { status = 301 }\n",
            "routes[0].respond.status",
            "redirects aside",
        ),
        (
            "[[routes]]\npath = \"/\"\nrespond = { status = 99 }\n",
            "routes[0].respond.status",
            "from 200 to 599",
        ),
        (
            "[[routes]]\npath = \"/\"\nrespond = { status = 204, body = \"x\" }\n",
            "routes[0].respond.body",
            "a 204 answer has no body",
        ),
        (
            "[[routes]]\npath = \"/\"\nrespond = { status = 205, body = \"x\" }\n",
            "routes[0].respond.body",
            "a 205 answer has no body",
        ),
        (
            "[[routes]]\npath = \"/\"\nrespond = { status = 200, content_type = \"text/html\" }\n",
            "routes[0].respond.content_type",
            "`body`, which is not set",
        ),
        (
            "[[routes]]\npath = \"/\"\nrespond = { status = 200, body = \"ok\", type = \"x\" }\n",
            "routes[0].respond",
            "unknown field",
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
            "[[routes]]\npath = \"/api\"\nupstream = \"app\"\nscript_name = \"/api\"\n",
            "routes[0].script_name",
            "write `path = \"/api/\"`",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nmax_header_size = \"32k\"\n",
            "routes[0].max_header_size",
            "unknown key",
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
        assert_refused(&format!("{group}{text}"), key, message);
    }
}

#[test]
fn max_body_size_0_is_no_limit_globally_and_per_route() {
    let text = "max_body_size = \"0\"\n[upstreams.app]\nservers = [\"unix:/a\"]\n\
                [[routes]]\npath = \"/\"\nupstream = \"app\"\n\
                [[routes]]\npath = \"/small/\"\nupstream = \"app\"\nmax_body_size = \"1m\"\n";
    let config = load(text, &[]).unwrap();
    assert_eq!(config.limits.max_body_size, Limits::NO_BODY_LIMIT);
    assert_eq!(
        route(&config, "/x").limits.max_body_size,
        Limits::NO_BODY_LIMIT
    );
    assert_eq!(route(&config, "/small/x").limits.max_body_size, 1 << 20);
    let text = "[upstreams.app]\nservers = [\"unix:/a\"]\n\
                [[routes]]\npath = \"/\"\nupstream = \"app\"\n\
                [[routes]]\npath = \"/any/\"\nupstream = \"app\"\nmax_body_size = \"0\"\n";
    let config = load(text, &[]).unwrap();
    assert_eq!(route(&config, "/x").limits.max_body_size, 1 << 20);
    assert_eq!(
        route(&config, "/any/x").limits.max_body_size,
        Limits::NO_BODY_LIMIT
    );
    let flags = Config::from_args(["ringway", "--upstream", "unix:/a", "--max-body-size", "0"]);
    assert_eq!(flags.unwrap().limits.max_body_size, Limits::NO_BODY_LIMIT);
}

#[test]
fn a_mount_on_its_own_path_needs_a_trailing_slash_or_exact() {
    let group = "[upstreams.app]\nservers = [\"unix:/a\"]\n";
    let mounts = [
        "path = \"/api/\"\nscript_name = \"/api\"\n",
        "path = \"/api\"\nexact = true\nscript_name = \"/api\"\n",
        "path = \"/api/v1\"\nscript_name = \"/api\"\n",
    ];
    for mount in mounts {
        let text = format!("{group}[[routes]]\n{mount}upstream = \"app\"\n");
        load(&text, &[]).unwrap_or_else(|err| panic!("{mount}→ {err}"));
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

/// The issue's limits, as a file.
const LIMITS: &str = r#"
max_connections = 10000
limit_conn_per_ip = 100

[upstreams.app]
servers = ["unix:/run/app.sock", "unix:/run/app2.sock"]
max_conns = 8
queue = 100
queue_timeout = "10s"

[upstreams.other]
servers = ["unix:/run/other.sock"]

[[routes]]
path = "/login"
upstream = "app"
limit_req = { rate = "5r/s", burst = 10, status = 503 }

[[routes]]
path = "/slow"
upstream = "app"
limit_req = { rate = "30r/m" }

[[routes]]
path = "/api/"
upstream = "app"
limit_req = { rate = "10r/s", burst = 20, delay = 5 }

[[routes]]
path = "/search"
upstream = "app"
limit_req = { rate = "1r/s", burst = 5, delay = 0 }

[[routes]]
path = "/download/"
upstream = "app"
limit_conn = { per_ip = 1 }

[[routes]]
path = "/export/"
upstream = "app"
limit_conn = { per_ip = 3, status = 429, dry_run = true }

[[routes]]
path = "/"
upstream = "other"
"#;

/// The top level's `limit_req` goes to every route without its own (the default and
/// `--static` routes too), its status and dry run with it, but for a fixed answer (nginx's
/// `return` answers first); a route's own replaces it, and takes the top level's status
/// and dry run where it sets none (nginx's `limit_req_status` and `limit_req_dry_run` are
/// inherited on their own).
#[test]
fn a_top_level_limit_req_is_the_routes_without_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let text = "upstream = [\"unix:/a\"]\n\
        limit_req = { rate = \"10r/s\", burst = 20, status = 503, dry_run = true }\n\
        [[routes]]\npath = \"/own/\"\nupstream = \"default\"\n\
        limit_req = { rate = \"1r/s\" }\n\
        [[routes]]\npath = \"/other/\"\nupstream = \"default\"\n\
        [[routes]]\npath = \"/healthz\"\nrespond = { status = 200 }\n\
        [[routes]]\npath = \"/strict/\"\nupstream = \"default\"\n\
        limit_req = { rate = \"1r/s\", status = 429, dry_run = false }\n";
    let statics = format!("/files/={}", dir.path().display());
    let config = load(text, &["--static", &statics]).unwrap();
    let top = Some(crate::limits::RateLimit::new(10_000, 20, None));
    for path in ["/other/x", "/x", "/files/a"] {
        let r = route(&config, path);
        assert_eq!(
            (
                r.limit_req,
                r.limit_req_shared,
                r.limit_req_status,
                r.limit_req_dry_run
            ),
            (top, true, 503, true),
            "{path}"
        );
    }
    let own = route(&config, "/own/x");
    assert_eq!(
        (
            own.limit_req,
            own.limit_req_shared,
            own.limit_req_status,
            own.limit_req_dry_run
        ),
        (
            Some(crate::limits::RateLimit::new(1000, 0, None)),
            false,
            503,
            true
        )
    );
    let strict = route(&config, "/strict/x");
    assert_eq!(
        (strict.limit_req_status, strict.limit_req_dry_run),
        (429, false)
    );
    let health = route(&config, "/healthz");
    assert_eq!((health.limit_req, health.limit_req_shared), (None, false));
    let err = load(
        "upstream = [\"unix:/a\"]\nlimit_req = { rate = \"10r/s\", status = 200 }\n",
        &[],
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("limit_req.status"), "{err:#}");
}

#[test]
fn the_limits_example_loads() {
    let config = load(LIMITS, &[]).unwrap();
    assert_eq!(config.connections.max_connections, Some(10000));
    assert_eq!(config.connections.per_ip, Some(100));
    assert_eq!(
        config.groups[0].slots,
        Some(SlotLimits {
            max_conns: 8,
            queue: 100,
            queue_timeout: Duration::from_secs(10),
        })
    );
    assert_eq!(config.groups[1].slots, None, "no max_conns: no limit");
    assert_eq!(
        route(&config, "/login").limit_req,
        Some(crate::limits::RateLimit::new(5000, 10, None))
    );
    assert_eq!(
        route(&config, "/slow").limit_req,
        Some(crate::limits::RateLimit::new(500, 0, None)),
        "burst defaults to 0, as nginx's"
    );
    assert_eq!(
        route(&config, "/api/x").limit_req,
        Some(crate::limits::RateLimit::new(10_000, 20, Some(5))),
        "nginx's `burst=20 delay=5`"
    );
    assert_eq!(
        route(&config, "/search").limit_req,
        Some(crate::limits::RateLimit::new(1000, 5, Some(0))),
        "nginx's `burst=5` without nodelay"
    );
    assert_eq!(route(&config, "/x").limit_req, None);
    assert_eq!(
        route(&config, "/login").limit_req_status,
        503,
        "nginx's default, set"
    );
    assert_eq!(
        route(&config, "/slow").limit_req_status,
        429,
        "ringway's default"
    );
    let limit_conn = |per_ip, status, dry_run| {
        Some(crate::limits::RequestLimit {
            per_ip,
            status,
            dry_run,
        })
    };
    assert_eq!(
        route(&config, "/download/a").limit_conn,
        limit_conn(1, 503, false),
        "nginx's limit_conn_status by default"
    );
    assert_eq!(
        route(&config, "/export/a").limit_conn,
        limit_conn(3, 429, true)
    );
    assert_eq!(route(&config, "/login").limit_conn, None);
    let flags = load(
        LIMITS,
        &["--max-connections", "5", "--limit-conn-per-ip", "2"],
    )
    .unwrap();
    assert_eq!(flags.connections.max_connections, Some(5));
    assert_eq!(flags.connections.per_ip, Some(2));
}

#[test]
fn no_limit_by_default() {
    let config = Config::from_args(["ringway", "--upstream", "unix:/a"]).unwrap();
    assert_eq!(config.connections, ConnLimits::default());
    assert_eq!(config.groups[0].slots, None);
    assert_eq!(route(&config, "/").limit_req, None);
    let queued = load(
        "[upstreams.app]\nservers = [\"unix:/a\"]\nmax_conns = 4\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        queued.groups[0].slots,
        Some(SlotLimits {
            max_conns: 4,
            queue: 0,
            queue_timeout: Duration::from_secs(60),
        }),
        "max_conns alone: none wait (nginx OSS), nginx Plus's queue timeout"
    );
}

#[test]
fn each_limit_mistake_is_refused_with_its_key() {
    let routed = |group: &str, route: &str| {
        format!(
            "[upstreams.app]\nservers = [\"unix:/a\"]\n{group}\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n{route}\n"
        )
    };
    let cases = [
        (
            format!("max_connections = 0\n{}", routed("", "")),
            "max_connections in",
            "out of range",
        ),
        (
            format!("limit_conn_per_ip = 0\n{}", routed("", "")),
            "limit_conn_per_ip in",
            "out of range",
        ),
        (
            format!("limit_conn_per_ip = -1\n{}", routed("", "")),
            "limit_conn_per_ip in",
            "",
        ),
        (
            routed("max_conns = 0", ""),
            "upstreams.app.max_conns",
            "out of range",
        ),
        (
            routed("queue = 10", ""),
            "upstreams.app.queue",
            "needs `max_conns`",
        ),
        (
            routed("queue_timeout = \"5s\"", ""),
            "upstreams.app.queue_timeout",
            "needs `max_conns`",
        ),
        (
            routed("max_conns = 2\nqueue_timeout = \"0s\"", ""),
            "upstreams.app.queue_timeout",
            "longer than 0",
        ),
        (
            routed("max_conns = 2\nqueue = 2000000", ""),
            "upstreams.app.queue",
            "out of range",
        ),
        (
            routed("max_conns = 2\nqueue = \"lots\"", ""),
            "upstreams.app.queue",
            "",
        ),
        (
            routed("", "limit_req = { rate = \"5r/h\" }"),
            "routes[0].limit_req",
            "invalid rate",
        ),
        (
            routed("", "limit_req = { rate = \"0r/s\" }"),
            "routes[0].limit_req.rate",
            "out of range",
        ),
        (
            routed("", "limit_req = { rate = \"5r/s\", burst = 2000000 }"),
            "routes[0].limit_req.burst",
            "out of range",
        ),
        (
            routed(
                "",
                "limit_req = { rate = \"5r/s\", burst = 5, delay = 2000000 }",
            ),
            "routes[0].limit_req.delay",
            "out of range",
        ),
        (
            routed("", "limit_req = { rate = \"5r/s\", status = 302 }"),
            "routes[0].limit_req.status",
            "400 to 599",
        ),
        (
            routed("", "limit_req = { rate = \"5r/s\", brust = 2 }"),
            "routes[0].limit_req",
            "brust",
        ),
        (
            routed("", "limit_req = { burst = 2 }"),
            "routes[0].limit_req",
            "rate",
        ),
        (
            routed("", "limit_conn = { per_ip = 0 }"),
            "routes[0].limit_conn.per_ip",
            "out of range",
        ),
        (
            routed("", "limit_conn = { per_ip = 2, status = 200 }"),
            "routes[0].limit_conn.status",
            "400 to 599",
        ),
        (
            routed("", "limit_conn = { status = 503 }"),
            "routes[0].limit_conn",
            "per_ip",
        ),
        (
            routed("", "limit_conn = { per_ip = 1, zone = \"addr\" }"),
            "routes[0].limit_conn",
            "zone",
        ),
        (
            routed("", "referers = { valid = [\"none\", \"blocked\"] }"),
            "routes[0].referers.valid",
            "without a host name",
        ),
        (
            routed("", "referers = { valid = [\"server_names\"] }"),
            "routes[0].referers.valid",
            "set no `hosts`",
        ),
        (
            routed("", "referers = { valid = [\"example.com\"], status = 302 }"),
            "routes[0].referers.status",
            "400 to 599",
        ),
        (
            routed("", "referers = { valid = [\"ex*ample.com\"] }"),
            "routes[0].referers.valid",
            "is not a referer",
        ),
    ];
    for (text, key, message) in cases {
        assert_refused(&text, key, message);
    }
    let err = Config::from_args(["ringway", "--upstream", "unix:/a", "--max-connections", "0"])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("--max-connections: "), "{err}");
}

#[test]
fn error_pages_are_read_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("502.html");
    std::fs::write(&page, "<h1>Back soon</h1>").unwrap();
    let text = format!(
        "upstream = [\"unix:/a\"]\nerror_pages = {{ 502 = \"{}\" }}\n\
         [[routes]]\npath = \"/api/\"\nupstream = \"default\"\nintercept_errors = true\n",
        page.display()
    );
    let config = load(&text, &[]).unwrap();
    let loaded = config.error_pages.get(502).unwrap();
    assert_eq!(loaded.body(), b"<h1>Back soon</h1>");
    assert_eq!(loaded.content_type(), "text/html; charset=utf-8");
    assert!(config.error_pages.get(503).is_none());
    assert!(route(&config, "/api/x").intercept_errors);
    assert!(!route(&config, "/x").intercept_errors);
    assert!(
        load("upstream = [\"unix:/a\"]\n", &[])
            .unwrap()
            .error_pages
            .is_empty()
    );
}

#[test]
fn a_page_the_memory_budget_could_never_carry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("503.html");
    std::fs::write(&page, vec![b'x'; 100 * 1024]).unwrap();
    let text = |budget: &str| {
        format!(
            "upstream = [\"unix:/a\"]\nmax_buffer_memory = \"{budget}\"\n\
             error_pages = {{ 503 = \"{}\" }}\n",
            page.display()
        )
    };
    assert_refused(
        &text("80k"),
        "error_pages.503",
        "larger than max_buffer_memory",
    );
    assert!(load(&text("1m"), &[]).is_ok());
}

/// A route's own pages replace the top level's (nginx's `error_page` in a location), `{}`
/// names none, and they are held to what the top level's are: the budget, the statuses,
/// `intercept_errors` with nothing to put in place.
#[test]
fn a_route_s_own_error_pages_replace_the_top_level_s() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("502.html");
    let json = dir.path().join("502.json");
    std::fs::write(&html, "<h1>Back soon</h1>").unwrap();
    std::fs::write(&json, vec![b' '; 100 * 1024]).unwrap();
    let text = |api: &str, budget: &str| {
        format!(
            "upstream = [\"unix:/a\"]\nmax_buffer_memory = \"{budget}\"\n\
             error_pages = {{ 502 = \"{}\" }}\n\
             [[routes]]\npath = \"/api/\"\nupstream = \"default\"\n{api}\n\
             [[routes]]\npath = \"/plain/\"\nupstream = \"default\"\nerror_pages = {{}}\n",
            html.display()
        )
    };
    let own = format!("error_pages = {{ 502 = \"{}\" }}", json.display());
    let config = load(&text(&own, "1m"), &[]).unwrap();
    let page = |path: &str| {
        route(&config, path)
            .error_pages
            .get(502)
            .map(|p| p.body().len())
    };
    assert_eq!(page("/api/x"), Some(100 * 1024));
    assert_eq!(page("/x"), Some(18), "the top level's");
    assert_eq!(page("/plain/x"), None);
    assert_refused(
        &text(&own, "80k"),
        "error_pages.502 (route /api/)",
        "larger than max_buffer_memory",
    );
    assert_refused(
        &text("error_pages = { 444 = \"/x\" }", "1m"),
        "routes[0].error_pages.444",
        "closes the connection",
    );
    assert_refused(
        &text("error_pages = {}\nintercept_errors = true", "1m"),
        "routes[0].intercept_errors",
        "no `error_pages` are configured for the route",
    );
    let only_route = format!(
        "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/api/\"\nupstream = \"default\"\n\
         intercept_errors = true\n{own}\n"
    );
    assert!(route(&load(&only_route, &[]).unwrap(), "/api/").intercept_errors);
}

#[test]
fn each_error_page_mistake_is_refused_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.html");
    std::fs::write(&page, "sorry").unwrap();
    let page = page.display();
    let missing = dir.path().join("missing.html");
    let missing = missing.display();
    let group = "[upstreams.app]\nservers = [\"unix:/a\"]\n";
    let cases = [
        (
            format!("error_pages = {{ 302 = \"{page}\" }}\n"),
            "error_pages.302",
            "400 to 599",
        ),
        (
            format!("error_pages = {{ oops = \"{page}\" }}\n"),
            "error_pages.oops",
            "not an error status",
        ),
        // nginx's own statuses, never sent by ringway: their pages would never be used.
        (
            format!("error_pages = {{ 497 = \"{page}\" }}\n"),
            "error_pages.497",
            "no page",
        ),
        (
            format!("error_pages = {{ 495 = \"{page}\" }}\n"),
            "error_pages.495",
            "fails the TLS handshake",
        ),
        (
            format!("error_pages = {{ 494 = \"{page}\" }}\n"),
            "error_pages.494",
            "key the page 431",
        ),
        (
            format!("error_pages = {{ 444 = \"{page}\" }}\n"),
            "error_pages.444",
            "without an answer",
        ),
        (
            format!("error_pages = {{ 503 = \"{missing}\" }}\n"),
            "error_pages.503",
            "cannot read it",
        ),
        (
            format!("error_pages = {{ 500 = \"{}\" }}\n", dir.path().display()),
            "error_pages.500",
            "not a regular file",
        ),
        (
            "[[routes]]\npath = \"/\"\nupstream = \"app\"\nintercept_errors = true\n".to_owned(),
            "routes[0].intercept_errors",
            "no `error_pages`",
        ),
        (
            format!(
                "error_pages = {{ 502 = \"{page}\" }}\n[[routes]]\npath = \"/\"\n\
                 redirect = {{ to = \"/x\" }}\nintercept_errors = true\n"
            ),
            "routes[0].intercept_errors",
            "does not apply",
        ),
        (
            format!(
                "error_pages = {{ 502 = \"{page}\" }}\n[[routes]]\npath = \"/s/\"\n\
                 static = \"/tmp\"\nintercept_errors = true\n"
            ),
            "routes[0].intercept_errors",
            "does not apply",
        ),
    ];
    for (text, key, message) in cases {
        // Top-level keys go before the group's table.
        let (top, routes) = match text.find("[[routes]]") {
            Some(at) => text.split_at(at),
            None => (text.as_str(), ""),
        };
        assert_refused(&format!("{top}{group}{routes}"), key, message);
    }
    // A static route with a fallback reaches the app: its errors may be intercepted.
    let text = format!(
        "error_pages = {{ 502 = \"{page}\" }}\n{group}[[routes]]\npath = \"/s/\"\n\
         static = \"/tmp\"\nfallback = \"app\"\nintercept_errors = true\n"
    );
    assert!(route(&load(&text, &[]).unwrap(), "/s/x").intercept_errors);
}

#[test]
fn access_log_defaults_to_off_and_combined() {
    let config = Config::from_args(["ringway", "--upstream", "unix:/a"]).unwrap();
    assert!(config.access_log.is_none());
    let config =
        Config::from_args(["ringway", "--upstream", "unix:/a", "--access-log", "stderr"]).unwrap();
    let log = config.access_log.unwrap();
    assert_eq!(log.format, LogFormat::Combined);
    assert!(matches!(log.sinks[..], [LogSink::Stderr]));
}

/// A route's own `access_log`: a place of its own, shared by the routes naming it; the top
/// level's own file names the top level's log; `off` nowhere; the others the top level's,
/// on or off.
#[test]
fn a_route_s_access_log_names_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).display().to_string();
    let routes = format!(
        "[[routes]]\npath = \"/a/\"\nupstream = \"default\"\naccess_log = \"{api}\"\n\
         [[routes]]\npath = \"/b/\"\nupstream = \"default\"\naccess_log = \"stderr\"\n\
         [[routes]]\npath = \"/c/\"\nupstream = \"default\"\naccess_log = \"{api}\"\n\
         [[routes]]\npath = \"/d/\"\nupstream = \"default\"\naccess_log = \"{main}\"\n\
         [[routes]]\npath = \"/e/\"\nupstream = \"default\"\naccess_log = \"off\"\n",
        main = at("main.log"),
        api = at("api.log"),
    );
    let text = format!(
        "upstream = [\"unix:/a\"]\naccess_log = \"{}\"\n{routes}",
        at("main.log")
    );
    let config = load(&text, &[]).unwrap();
    let sinks = &config.access_log.as_ref().unwrap().sinks;
    assert!(
        matches!(&sinks[..], [LogSink::File { path: main, .. }, LogSink::File { path, .. }, LogSink::Stderr] if main.ends_with("main.log") && path.ends_with("api.log")),
        "{sinks:?}"
    );
    let log_to = |path: &str| route(&config, path).log_to;
    assert_eq!(
        ["/a/", "/b/", "/c/", "/d/", "/e/", "/f"].map(log_to),
        [Some(1), Some(2), Some(1), Some(0), None, Some(0)]
    );
    // Without a top-level log, the routes' own places are written, the rest nowhere (a
    // route naming main.log has it as its own place now).
    let config = load(&format!("upstream = [\"unix:/a\"]\n{routes}"), &[]).unwrap();
    let sinks = &config.access_log.as_ref().unwrap().sinks;
    assert!(matches!(&sinks[0], LogSink::Off), "{sinks:?}");
    assert_eq!(sinks.len(), 4, "{sinks:?}");
    assert_eq!(route(&config, "/f").log_to, Some(0));
    assert_eq!(route(&config, "/d/").log_to, Some(3));
}

/// A syslog place is a server: the same line in two routes is one place, another tag or
/// server another; a name is resolved at start.
#[test]
fn access_log_syslog_places() {
    use crate::access_log::SyslogAddr;
    let text = "upstream = [\"unix:/a\"]\naccess_log = \"syslog:server=localhost:5514\"\n\
         [[routes]]\npath = \"/a/\"\nupstream = \"default\"\n\
         access_log = \"syslog:server=127.0.0.1:5515,tag=api\"\n\
         [[routes]]\npath = \"/b/\"\nupstream = \"default\"\n\
         access_log = \"syslog:server=127.0.0.1:5515,tag=api\"\n\
         [[routes]]\npath = \"/c/\"\nupstream = \"default\"\n\
         access_log = \"syslog:server=unix:/dev/log,tag=api\"\n";
    let config = load(text, &[]).unwrap();
    let sinks = &config.access_log.as_ref().unwrap().sinks;
    let addrs: Vec<String> = sinks
        .iter()
        .map(|sink| match sink {
            LogSink::Syslog { addr, .. } => addr.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        addrs[1..],
        ["syslog 127.0.0.1:5515", "syslog unix:/dev/log"]
    );
    assert!(
        matches!(&sinks[0], LogSink::Syslog { addr: SyslogAddr::Inet(a), .. } if a.port() == 5514 && a.ip().is_loopback())
    );
    let log_to = |path: &str| route(&config, path).log_to;
    assert_eq!(
        ["/a/", "/b/", "/c/", "/d"].map(log_to),
        [Some(1), Some(1), Some(2), Some(0)]
    );
    let err = load(
        "upstream = [\"unix:/a\"]\naccess_log = \"syslog:server=127.0.0.1,tag=a-b\"\n",
        &[],
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("letters, digits and _"),
        "{err:#}"
    );
}

#[test]
fn access_log_file_is_opened_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let text = format!(
        "upstream = [\"unix:/a\"]\naccess_log = \"{}\"\naccess_log_format = \"json\"\n",
        path.display()
    );
    let config = load(&text, &[]).unwrap();
    let log = config.access_log.unwrap();
    assert_eq!(log.format, LogFormat::Json);
    let [LogSink::File { path: got, opened }] = &log.sinks[..] else {
        panic!("{:?}", log.sinks)
    };
    assert_eq!(got, &path);
    assert!(opened.take().is_some(), "opened once");
    assert!(opened.take().is_none(), "handed over once");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o137, 0, "created 0640 (less the umask): {mode:o}");
    // The flag wins over the file.
    let config = load(&text, &["--access-log", "off"]).unwrap();
    assert!(config.access_log.is_none());
}

#[test]
fn access_log_refusals_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    // A directory, and a file in a directory that does not exist: neither opens.
    for path in [
        dir.path().to_path_buf(),
        dir.path().join("missing").join("access.log"),
    ] {
        let text = format!(
            "upstream = [\"unix:/a\"]\naccess_log = \"{}\"\n",
            path.display()
        );
        let err = load(&text, &[]).unwrap_err();
        assert!(
            err.starts_with("access_log in ") && err.contains("cannot open"),
            "{err}"
        );
        let path = path.to_str().unwrap();
        let err = Config::from_args(["ringway", "--upstream", "unix:/a", "--access-log", path])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--access-log: cannot open"), "{err}");
    }
    let err = load("upstream = [\"unix:/a\"]\naccess_log = \"\"\n", &[]).unwrap_err();
    assert!(err.starts_with("access_log in "), "{err}");
    let err = load(
        "upstream = [\"unix:/a\"]\naccess_log_format = \"main\"\n",
        &[],
    )
    .unwrap_err();
    assert!(
        err.starts_with("access_log_format in ") && err.contains("combined, json, or a format"),
        "{err}"
    );
    let err = load(
        "upstream = [\"unix:/a\"]\naccess_log_format = '$remote_addr $upstream_cache_status'\n",
        &[],
    )
    .unwrap_err();
    assert!(
        err.contains("unknown variable `$upstream_cache_status`"),
        "{err}"
    );
    let custom = "upstream = [\"unix:/a\"]\naccess_log = \"stderr\"\n\
                  access_log_format = '$remote_addr \"$http_x_forwarded_for\"'\n";
    let log = load(custom, &[]).unwrap().access_log.unwrap();
    assert_eq!(
        log.format.to_string(),
        "$remote_addr \"$http_x_forwarded_for\""
    );
    let escaped = load(&format!("{custom}access_log_escape = \"json\"\n"), &[]);
    assert!(escaped.unwrap().access_log.is_some());
    let err = load(
        "upstream = [\"unix:/a\"]\naccess_log_format = \"json\"\naccess_log_escape = \"json\"\n",
        &[],
    )
    .unwrap_err();
    assert!(
        err.starts_with("access_log_escape in ") && err.contains("of one's own"),
        "{err}"
    );
    let err = Config::from_args([
        "ringway",
        "--upstream",
        "unix:/a",
        "--access-log-format",
        "main",
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("--access-log-format") && err.contains("combined, json, or a format"),
        "{err}"
    );
}

/// What `--check-config` says of `text` (and extra flags): the checked config, or the error.
fn check(text: &str, flags: &[&str]) -> Result<Config, String> {
    use clap::Parser;
    let (_dir, path) = temp_file(text);
    let mut args = vec!["ringway", "--config", path.to_str().unwrap()];
    args.extend_from_slice(flags);
    let settings = Settings::try_parse_from(args).unwrap();
    Config::check(settings).map_err(|e| format!("{e:#}"))
}

/// `--check-config` refuses an access log file the start could not open, and creates none
/// (found by review: a missing file's directory was only checked to be one).
#[test]
fn the_check_refuses_an_access_log_the_start_could_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let with = |log: &std::path::Path| {
        format!(
            "upstream = [\"unix:/a\"]\ntemp_dir = \"{}\"\naccess_log = \"{}\"\n",
            spool.display(),
            log.display()
        )
    };
    let fine = dir.path().join("access.log");
    check(&with(&fine), &[]).unwrap();
    assert!(!fine.exists(), "the check created {}", fine.display());

    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    for log in [
        file.join("access.log"),
        dir.path().join("missing/access.log"),
    ] {
        let err = check(&with(&log), &[]).unwrap_err();
        assert!(
            err.starts_with("access_log in ") && err.contains("cannot open"),
            "{err}"
        );
    }

    // Root may write anywhere but on a read-only mount, so only another user sees this
    // (as root, as CI runs, the end-to-end check_config test runs it as `nobody`).
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let locked = dir.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
        let err = check(&with(&locked.join("access.log")), &[]).unwrap_err();
        assert!(
            err.starts_with("access_log in ") && err.contains("ringway may not write to"),
            "{err}"
        );
    }
}

#[test]
fn a_fifo_nobody_reads_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let text = format!(
        "upstream = [\"unix:/a\"]\naccess_log = \"{}\"\n",
        fifo.display()
    );
    let err = load(&text, &[]).unwrap_err();
    assert!(
        err.starts_with("access_log in ") && err.contains("cannot open"),
        "{err}"
    );
}

/// Values copied whole from an nginx config, each a slip that used to be taken and do
/// something else (found by review): a list of index names, a log path with its format,
/// a timeout in months (`M`, nginx's size spelling), an HTTP server spoken to in uwsgi.
#[test]
fn nginx_spellings_that_mean_something_else_here_are_refused() {
    let base = "upstream = [\"unix:/a\"]\n";
    let static_route = "[[routes]]\npath = \"/s/\"\nstatic = \"/srv\"\n";
    assert_refused(
        &format!("{base}{static_route}index = \"index.html index.htm\"\n"),
        "index",
        "one file name: nginx's `index` list is a list here",
    );
    for list in [
        "[\"index.html\", \"\"]",
        "[\"index.html\", \"/index.php\"]",
        "[\".x\"]",
    ] {
        assert_refused(
            &format!("{base}{static_route}index = {list}\n"),
            "index",
            "must be a file name",
        );
    }
    assert_refused(
        &format!("{base}{static_route}index = 1\n"),
        "index",
        "a list of them",
    );
    // A route is named by its path too, not only by its place among the [[routes]].
    let err = load(&format!("{base}{static_route}index = \"a b\"\n"), &[]).unwrap_err();
    assert!(
        err.starts_with("routes[0].index (path \"/s/\") in "),
        "{err}"
    );
    assert_refused(
        &format!("{base}access_log = \"/var/log/ringway/access.log combined\"\n"),
        "access_log",
        "access_log_format",
    );
    assert_refused(
        &format!("{base}client_header_timeout = \"10M\"\n"),
        "client_header_timeout",
        "minutes are m",
    );
    assert_refused(
        &format!("{base}[upstreams.web]\nservers = [\"unix:/a\"]\nkeepalive_timeout = \"1y\"\n"),
        "keepalive_timeout",
        "minutes are m",
    );
    for command in [
        "[\"gunicorn\", \"--bind\", \"unix:/a\", \"app:app\"]",
        "[\"/srv/venv/bin/granian\", \"--interface\", \"wsgi\", \"--uds=/a\", \"app:app\"]",
        "[\"python3\", \"-m\", \"uvicorn\", \"--uds\", \"/a\", \"app:app\"]",
    ] {
        assert_refused(
            &format!("{base}[app]\ncommand = {command}\n"),
            "app.command",
            "http://unix:/path",
        );
        let http = format!("upstream = [\"http://unix:/a\"]\n[app]\ncommand = {command}\n");
        assert!(load(&http, &[]).is_ok(), "{command} behind an HTTP group");
    }
    // A uwsgi group on another address (a uWSGI of its own) beside an HTTP app server.
    let beside = "[upstreams.legacy]\nservers = [\"unix:/a\"]\n\
                  [upstreams.web]\nservers = [\"http://127.0.0.1:8000\"]\n\
                  [[routes]]\npath = \"/old/\"\nupstream = \"legacy\"\n\
                  [[routes]]\npath = \"/\"\nupstream = \"web\"\n\
                  [app]\ncommand = [\"gunicorn\", \"--bind\", \"127.0.0.1:8000\", \"app:app\"]\n";
    assert!(load(beside, &[]).is_ok(), "{:?}", load(beside, &[]).err());
    let onto = beside.replace(
        "unix:/a",
        "127.0.0.1:8000\"]\n[upstreams.x]\nservers = [\"unix:/b",
    );
    let err = load(&onto, &[]).unwrap_err();
    assert!(
        err.contains("app.command"),
        "gunicorn on a uwsgi group's port: {err}"
    );
    // Where it listens, read from its options, else its default, 127.0.0.1:8000.
    let uwsgi_at = |server: &str, command: &str| {
        load(
            &format!("upstream = [\"{server}\"]\n[app]\ncommand = {command}\n"),
            &[],
        )
    };
    let refused = [
        ("127.0.0.1:8000", "[\"gunicorn\", \"app:app\"]"),
        (
            "127.0.0.1:9000",
            "[\"uvicorn\", \"app:app\", \"--port=9000\"]",
        ),
        (
            "127.0.0.1:9000",
            "[\"gunicorn\", \"-b0.0.0.0:9000\", \"app:app\"]",
        ),
    ];
    for (server, command) in refused {
        assert!(uwsgi_at(server, command).is_err(), "{command} on {server}");
    }
    let taken = [
        (
            "10.0.0.5:8000",
            "[\"gunicorn\", \"--bind\", \"0.0.0.0:8000\", \"app:app\"]",
        ),
        (
            "127.0.0.1:3000",
            "[\"gunicorn\", \"--timeout\", \"3000\", \"-b\", \":8000\", \"app:app\"]",
        ),
        (
            "unix:/run/app",
            "[\"gunicorn\", \"--pid\", \"/run/app.pid\", \"app:app\"]",
        ),
    ];
    for (server, command) in taken {
        let config = uwsgi_at(server, command);
        assert!(config.is_ok(), "{command} beside {server}: {config:?}");
    }
    // Where nginx takes them, so does ringway: months in `expires`, a size's suffix in
    // `gzip_min_length`.
    let taken = format!(
        "{base}[gzip]\nmin_length = \"1k\"\n[[routes]]\npath = \"/s/\"\nstatic = \"/srv\"\n\
         expires = \"6M\"\n"
    );
    load(&taken, &[]).unwrap();
}

/// A relative path in the file is the file's directory's, as nginx reads its own against
/// its prefix: the same files whatever directory ringway runs from (found by review: a
/// service runs from `/`, where `--check-config` beside the file had found them).
#[test]
fn relative_paths_in_a_file_are_read_from_its_directory() {
    let (dir, path) = temp_file(
        "upstream = [\"unix:/a\"]\nerror_pages = { 404 = \"pages/404.html\" }\n\
         [[routes]]\npath = \"/s/\"\nstatic = \"site\"\n\
         auth_basic = { realm = \"r\", user_file = \"users\" }\n",
    );
    std::fs::create_dir(dir.path().join("site")).unwrap();
    std::fs::create_dir(dir.path().join("pages")).unwrap();
    std::fs::write(dir.path().join("pages/404.html"), "gone").unwrap();
    std::fs::write(
        dir.path().join("users"),
        "u:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n",
    )
    .unwrap();
    assert_ne!(std::env::current_dir().unwrap(), dir.path());
    let args = ["ringway", "--config", path.to_str().unwrap()];
    let config = Config::from_args(args).map_err(|e| format!("{e:#}"));
    assert!(config.is_ok(), "{config:?}");
}

/// A value refused as a template is not quoted back, nor what follows its `$`: a secret with
/// a `$` in it (an API key in `upstream_headers`) would go to the journal and to `systemctl
/// status` (found by review, twice); the key says where.
#[test]
fn a_refused_value_template_names_its_key_only() {
    for secret in ["k9$Tz!q", "sk$a8F3kQ9zR2", "x${a-b}y"] {
        let err = load(
            &format!(
                "upstream = [\"http://127.0.0.1:8000\"]\n\
                 upstream_headers = {{ X-Api-Key = \"{secret}\" }}\n"
            ),
            &[],
        )
        .unwrap_err();
        assert!(err.contains("X-Api-Key"), "{err}");
        let tail = secret.split('$').nth(1).unwrap_or_default();
        assert!(!err.contains(tail), "{secret} shown: {err}");
    }
    // A log format's is named, as nginx names it.
    let err = load(
        "upstream = [\"unix:/a\"]\naccess_log_format = '$nope'\n",
        &[],
    )
    .unwrap_err();
    assert!(err.contains("`$nope`"), "{err}");
}

/// A config with an `[app]` section holding `keys`.
fn with_app(keys: &str) -> Result<Config, String> {
    load(
        &format!("upstream = [\"unix:/tmp/app.sock\"]\n[app]\n{keys}\n"),
        &[],
    )
}

#[test]
fn app_defaults() {
    assert!(
        load("upstream = [\"unix:/a\"]\n", &[])
            .unwrap()
            .app
            .is_none()
    );
    let app = with_app("command = [\"uwsgi\", \"--ini\", \"app.ini\"]")
        .unwrap()
        .app
        .unwrap();
    assert_eq!(app.command, ["uwsgi", "--ini", "app.ini"]);
    assert_eq!(app.stop_signal.number, libc::SIGINT);
    assert_eq!(app.restart, crate::app::Restart::OnFailure);
    assert_eq!(app.ready_timeout, Duration::from_secs(60));
    assert_eq!(app.stop_timeout, Duration::from_secs(10));
}

#[test]
fn app_keys_are_read() {
    let app = with_app(
        "command = [\"uwsgi\"]\nstop_signal = \"QUIT\"\nrestart = \"never\"\n\
         ready_timeout = \"5s\"\nstop_timeout = \"250ms\"",
    )
    .unwrap()
    .app
    .unwrap();
    assert_eq!(app.stop_signal.name, "SIGQUIT");
    assert_eq!(app.restart, crate::app::Restart::Never);
    assert_eq!(app.ready_timeout, Duration::from_secs(5));
    assert_eq!(app.stop_timeout, Duration::from_millis(250));
    let always = with_app("command = [\"uwsgi\"]\nrestart = \"always\"").unwrap();
    assert_eq!(always.app.unwrap().restart, crate::app::Restart::Always);
}

#[test]
fn app_refusals_name_the_key() {
    for (keys, key, says) in [
        (
            "stop_signal = \"SIGINT\"",
            "app.command",
            "must name the program",
        ),
        ("command = []", "app.command", "must name the program"),
        ("command = [\"\"]", "app.command", "empty"),
        ("command = [\"a\", \"b\\u0000\"]", "app.command", "NUL"),
        (
            "command = [\"uwsgi\"]\nstop_signal = \"SIGSTOP\"",
            "app.stop_signal",
            "SIGINT, SIGTERM",
        ),
        (
            "command = [\"uwsgi\"]\nrestart = \"sometimes\"",
            "app.restart",
            "on-failure, always or never",
        ),
        (
            "command = [\"uwsgi\"]\nready_timeout = \"0s\"",
            "app.ready_timeout",
            "longer than 0",
        ),
        (
            "command = [\"uwsgi\"]\nready_timeout = \"2h\"",
            "app.ready_timeout",
            "at most 1h",
        ),
        (
            "command = [\"uwsgi\"]\nstop_timeout = \"2h\"",
            "app.stop_timeout",
            "at most 1h",
        ),
    ] {
        let err = with_app(keys).unwrap_err();
        assert!(
            err.starts_with(&format!("{key} in ")) && err.contains(says),
            "{keys}: {err}"
        );
        assert!(err.contains("ringway.toml"), "names the file: {err}");
    }
    let err = with_app("command = [\"uwsgi\"]\nrestarts = \"never\"").unwrap_err();
    assert!(
        err.starts_with("app.restarts in ") && err.ends_with("unknown key"),
        "{err}"
    );
}

#[test]
fn http_servers_make_an_http_group_with_a_keepalive_pool() {
    let text = "[upstreams.web]\n\
        servers = [\"http://127.0.0.1:8000\", \"http://[::1]:8000\", \"http://unix:/run/gunicorn.sock\"]\n\
        keepalive = 8\nkeepalive_timeout = \"5s\"\nkeepalive_requests = 100\nkeepalive_time = \"10m\"\n\
        [upstreams.old]\nservers = [\"unix:/run/app.sock\", \"127.0.0.1:3031\"]\n\
        [[routes]]\npath = \"/\"\nupstream = \"web\"\n\
        [[routes]]\npath = \"/old/\"\nupstream = \"old\"\n";
    let config = load(text, &[]).unwrap();
    let web = config.groups.iter().find(|g| g.name == "web").unwrap();
    assert_eq!(web.protocol, crate::config::Protocol::Http);
    assert_eq!(
        addrs(web),
        [
            UpstreamAddr::Tcp("127.0.0.1:8000".parse().unwrap()),
            UpstreamAddr::Tcp("[::1]:8000".parse().unwrap()),
            UpstreamAddr::Unix("/run/gunicorn.sock".into()),
        ]
    );
    assert_eq!(
        web.keepalive,
        crate::config::KeepAlive {
            idle: 8,
            timeout: Duration::from_secs(5),
            requests: 100,
            time: Duration::from_secs(600),
        }
    );
    let old = config.groups.iter().find(|g| g.name == "old").unwrap();
    assert_eq!(old.protocol, crate::config::Protocol::Uwsgi);
}

#[test]
fn an_http_group_keeps_32_connections_for_60s_by_default() {
    let config = load("upstream = [\"http://127.0.0.1:8000\"]\n", &[]).unwrap();
    let group = &config.groups[0];
    assert_eq!(group.protocol, crate::config::Protocol::Http);
    // nginx's defaults for an `upstream` block, and its documented `keepalive 32`.
    assert_eq!(
        group.keepalive,
        crate::config::KeepAlive {
            idle: 32,
            timeout: Duration::from_secs(60),
            requests: 1000,
            time: Duration::from_secs(3600),
        }
    );
    let flags = load("", &["--upstream", "http://unix:/run/app.sock"]).unwrap();
    assert_eq!(flags.groups[0].protocol, crate::config::Protocol::Http);
}

#[test]
fn each_http_upstream_mistake_is_refused_with_its_key() {
    let route = "[[routes]]\npath = \"/\"\nupstream = \"web\"\n";
    let cases = [
        (
            "[upstreams.web]\nservers = [\"http://127.0.0.1:8000\", \"unix:/run/app.sock\"]\n",
            "upstreams.web.servers",
            "different protocols",
        ),
        (
            "[upstreams.web]\nservers = [\"unix:/run/app.sock\"]\nkeepalive = 4\n",
            "upstreams.web.keepalive",
            "only HTTP servers",
        ),
        (
            "[upstreams.web]\nservers = [\"unix:/run/app.sock\"]\nkeepalive_timeout = \"5s\"\n",
            "upstreams.web.keepalive_timeout",
            "only HTTP servers",
        ),
        (
            "[upstreams.web]\nservers = [\"unix:/run/app.sock\"]\nkeepalive_requests = 100\n",
            "upstreams.web.keepalive_requests",
            "only HTTP servers",
        ),
        (
            "[upstreams.web]\nservers = [\"unix:/run/app.sock\"]\nkeepalive_time = \"1h\"\n",
            "upstreams.web.keepalive_time",
            "only HTTP servers",
        ),
        (
            "[upstreams.web]\nservers = [\"http://127.0.0.1:8000\"]\nkeepalive_requests = 0\n",
            "upstreams.web.keepalive_requests",
            "at least 1",
        ),
        (
            "[upstreams.web]\nservers = [\"http://127.0.0.1:8000\"]\nkeepalive_time = \"0s\"\n",
            "upstreams.web.keepalive_time",
            "longer than 0",
        ),
        (
            "[upstreams.web]\nservers = [\"http://127.0.0.1:8000\"]\nkeepalive = 100000\n",
            "upstreams.web.keepalive",
            "out of range",
        ),
        (
            "[upstreams.web]\nservers = [\"http://127.0.0.1:8000\"]\nkeepalive_timeout = \"0s\"\n",
            "upstreams.web.keepalive_timeout",
            "longer than 0",
        ),
        (
            "[upstreams.web]\nservers = [\"https://127.0.0.1:8000\"]\n",
            "upstreams.web",
            "schemes are http://",
        ),
        (
            "[upstreams.web]\nservers = [\"http://web:8000/app\"]\n",
            "upstreams.web",
            "upstream_path",
        ),
        (
            "[upstreams.web]\nservers = [\"http://web:8000/\"]\n",
            "upstreams.web",
            "upstream_path = \"/\"",
        ),
    ];
    let to_http = "[upstreams.web]\nservers = [\"http://127.0.0.1:8000\"]\n\
                   [[routes]]\npath = \"/api/\"\nupstream = \"web\"\n";
    let uwsgi_vars = [
        ("script_name = \"/api\"\n", "routes[0].script_name"),
        ("params = { HTTPS = \"on\" }\n", "routes[0].params"),
    ];
    for (key_line, key) in uwsgi_vars {
        let err = load(&format!("{to_http}{key_line}"), &[]).unwrap_err();
        assert!(
            err.contains(key) && err.contains("uwsgi vars") && err.contains("--url-path-prefix"),
            "{key_line}→ {err}"
        );
        assert!(err.contains("ringway.toml"), "names the file: {err}");
    }
    for (text, key, message) in cases {
        let err = load(&format!("{text}{route}"), &[]).unwrap_err();
        assert!(
            err.contains(key) && err.contains(message),
            "{text}\n→ {err}"
        );
    }
    let mixed = load(
        "upstream = [\"http://127.0.0.1:8000\", \"127.0.0.1:3031\"]\n",
        &[],
    )
    .unwrap_err();
    assert!(
        mixed.contains("upstream") && mixed.contains("different protocols"),
        "{mixed}"
    );
}

#[test]
fn each_tls_mistake_is_refused_with_its_key() {
    let tls = "upstream = [\"unix:/a\"]\n[tls]\nlisten = \"127.0.0.1:8443\"\n";
    let cert = "{ cert = \"/etc/tls/a.pem\", key = \"/etc/tls/a.key\" }";
    let cases = [
        (
            format!("{tls}certificates = [ {cert}, {cert} ]\n"),
            "tls.certificates",
            "/etc/tls/a.pem is given twice",
        ),
        (
            format!("{tls}certificates = [ {cert} ]\nhandshake_timeout = \"0s\"\n"),
            "tls.handshake_timeout",
            "longer than 0",
        ),
    ];
    for (text, key, message) in cases {
        assert_refused(&text, key, message);
    }
    // The flags' pairs replace the file's list, as a flag wins over the file.
    let flags = [
        "--tls-cert",
        "/etc/tls/c.pem",
        "--tls-key",
        "/etc/tls/c.key",
    ];
    let config = load(&format!("{tls}certificates = [ {cert} ]\n"), &flags).unwrap();
    let served: Vec<_> = config
        .tls
        .as_ref()
        .unwrap()
        .certificates
        .iter()
        .map(|c| (c.cert.display().to_string(), c.key.display().to_string()))
        .collect();
    assert_eq!(
        served,
        [("/etc/tls/c.pem".to_owned(), "/etc/tls/c.key".to_owned())]
    );
    let err = load(
        &format!("{tls}certificates = [ {cert} ]\n"),
        &["--tls-handshake-timeout", "0s"],
    )
    .unwrap_err();
    assert!(
        err.starts_with("--tls-handshake-timeout: ") && err.contains("longer than 0"),
        "{err}"
    );
    // Both lists in the file are refused, not one of them dropped; the flags' pairs still
    // replace the file's.
    let both = format!(
        "{tls}certificates = [ {cert} ]\ncert = [\"/etc/tls/b.pem\"]\nkey = [\"/etc/tls/b.key\"]\n"
    );
    assert_refused(
        &both,
        "tls.certificates",
        "tls.cert and tls.key name certificates too",
    );
    let config = load(&both, &flags).unwrap();
    let served = &config.tls.as_ref().unwrap().certificates;
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].cert, PathBuf::from("/etc/tls/c.pem"));
    let pairs = format!("{tls}cert = [\"/etc/tls/b.pem\"]\nkey = [\"/etc/tls/b.key\"]\n");
    let config = load(&pairs, &[]).unwrap();
    let served = &config.tls.as_ref().unwrap().certificates;
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].key, PathBuf::from("/etc/tls/b.key"));
}

/// `server_name` goes into a Host, SERVER_NAME and a redirect's Location: one name or
/// address, nothing a header could be made of.
#[test]
fn server_name_is_one_host_name_or_address() {
    let with = |name: &str| format!("upstream = [\"unix:/a\"]\nserver_name = {name:?}\n");
    for (name, want) in [
        ("App.Example.com", "app.example.com"),
        ("localhost", "localhost"),
        ("example.com.", "example.com"),
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8::1", "[2001:db8::1]"),
        ("[::1]", "[::1]"),
        ("exa_mple.com", "exa_mple.com"),
    ] {
        let config = load(&with(name), &[]).unwrap();
        assert_eq!(config.server_name.as_deref(), Some(want), "{name}");
    }
    for (name, message) in [
        (
            "example.com www.example.com\r\nX-Injected: 1",
            "a list of the names a server answers for belongs in `hosts`",
        ),
        ("example.com www.example.com", "belongs in `hosts`"),
        ("example.com\r\nX-Injected:1", "is not a host name"),
        ("example.com:8080", "is not a host name"),
        ("exa/mple.com", "is not a host name"),
        ("", "is empty"),
        (" ", "is empty"),
        ("_", "nginx's catch-all"),
        ("*.example.com", "is a wildcard"),
        (".example.com", "is a wildcard"),
    ] {
        assert_refused(&with(name), "server_name", message);
    }
    let err = Config::from_args(["ringway", "--upstream", "unix:/a", "--server-name", "a b"])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("--server-name: ") && err.contains("belongs in `hosts`"),
        "{err}"
    );
}

#[test]
fn an_empty_temp_dir_is_refused() {
    assert_refused(
        "upstream = [\"unix:/a\"]\ntemp_dir = \"\"\n",
        "temp_dir",
        "is empty",
    );
}

#[test]
fn durations_and_sizes_take_numbers_and_say_what_is_wrong_with_them() {
    let with = |line: &str| format!("{line}\nupstream = [\"unix:/a\"]\n");
    // A bare number is seconds for a duration, bytes for a size, in TOML as in text.
    let config = load(&with("keepalive_timeout = 75\nmax_body_size = 4096"), &[]).unwrap();
    assert_eq!(config.keepalive_timeout, Duration::from_secs(75));
    assert_eq!(config.limits.max_body_size, 4096);
    let config = load(&with("keepalive_timeout = \"75\""), &[]).unwrap();
    assert_eq!(config.keepalive_timeout, Duration::from_secs(75));
    for (line, key, message) in [
        (
            "keepalive_timeout = -5",
            "keepalive_timeout",
            "-5 is negative",
        ),
        (
            "keepalive_timeout = 1.5",
            "keepalive_timeout",
            "1.5 is not a whole number",
        ),
        ("max_body_size = -1", "max_body_size", "-1 is negative"),
        ("max_body_size = 0.5", "max_body_size", "not a whole number"),
        (
            "keepalive_timeout = true",
            "keepalive_timeout",
            "a duration",
        ),
    ] {
        assert_refused(&with(line), key, message);
    }
}

#[test]
fn keepalive_requests_defaults_to_nginxs_1000_and_is_at_least_1() {
    let config = load("upstream = [\"unix:/a\"]\n", &[]).unwrap();
    assert_eq!(config.keepalive_requests, 1000);
    let config = load("keepalive_requests = 5\nupstream = [\"unix:/a\"]\n", &[]).unwrap();
    assert_eq!(config.keepalive_requests, 5);
    assert_refused(
        "keepalive_requests = 0\nupstream = [\"unix:/a\"]\n",
        "keepalive_requests",
        "at least 1",
    );
}

#[test]
fn keepalive_time_defaults_to_nginxs_hour_and_is_over_0() {
    let config = load("upstream = [\"unix:/a\"]\n", &[]).unwrap();
    assert_eq!(config.keepalive_time, Duration::from_secs(3600));
    let flags = ["--keepalive-time", "10m"];
    let config = load("upstream = [\"unix:/a\"]\n", &flags).unwrap();
    assert_eq!(config.keepalive_time, Duration::from_secs(600));
    assert_refused(
        "keepalive_time = \"0s\"\nupstream = [\"unix:/a\"]\n",
        "keepalive_time",
        "longer than 0",
    );
}

#[test]
fn hosts_are_read_from_the_file_and_the_flags_and_checked() {
    let config = load(
        "hosts = [\"app.example.com\", \"*.example.org\"]\nupstream = [\"unix:/a\"]\n",
        &[],
    )
    .unwrap();
    assert!(config.serves_host(Some(b"APP.example.com:443")));
    assert!(config.serves_host(Some(b"a.example.org")));
    assert!(!config.serves_host(Some(b"evil.example")) && !config.serves_host(None));
    let config = load("upstream = [\"unix:/a\"]\n", &["--host", "a.test"]).unwrap();
    assert!(config.serves_host(Some(b"a.test")) && !config.serves_host(Some(b"b.test")));
    // Unset: any Host, and none.
    let config = load("upstream = [\"unix:/a\"]\n", &[]).unwrap();
    assert!(config.serves_host(Some(b"anything")) && config.serves_host(None));
    assert_refused(
        "hosts = [\"http://app.example.com\"]\nupstream = [\"unix:/a\"]\n",
        "hosts",
        "invalid host",
    );
}

/// A dual-stack metrics listener (an IPv6 socket takes IPv6 only) is two addresses; one
/// socket written twice is refused.
#[test]
fn the_metrics_endpoint_may_listen_on_several_addresses() {
    let text = |metrics: &str| format!("upstream = [\"unix:/a\"]\nmetrics = {metrics}\n");
    let config = load(&text("[\"127.0.0.1:9146\", \"[::1]:9146\"]"), &[]).unwrap();
    assert_eq!(config.metrics.addresses().len(), 2);
    assert_refused(
        &text("[\"0.0.0.0:9146\", \"127.0.0.1:9146\"]"),
        "metrics",
        "are one socket",
    );
    let flag = load(
        "upstream = [\"unix:/a\"]\n",
        &["--metrics", "127.0.0.1:9146,[::1]:9146"],
    );
    assert_eq!(flag.unwrap().metrics.addresses().len(), 2);
}

#[test]
fn each_listener_needs_a_port_of_its_own() {
    let cert = "certificates = [ { cert = \"/etc/tls/a.pem\", key = \"/etc/tls/a.key\" } ]";
    let with = |listen: &str, tls: &str, metrics: &str| {
        format!(
            "listen = \"{listen}\"\nmetrics = \"{metrics}\"\nupstream = [\"unix:/a\"]\n\
             [tls]\nlisten = \"{tls}\"\n{cert}\n"
        )
    };
    for (listen, tls) in [
        ("127.0.0.1:8443", "127.0.0.1:8443"),
        ("0.0.0.0:8443", "127.0.0.1:8443"),
        ("[::1]:8443", "[::]:8443"),
    ] {
        assert_refused(
            &with(listen, tls, "off"),
            "tls.listen",
            "takes the port of `listen`",
        );
    }
    for metrics in ["127.0.0.1:8080", "0.0.0.0:8443"] {
        assert_refused(
            &with("127.0.0.1:8080", "127.0.0.1:8443", metrics),
            "metrics",
            "takes the port of a listener",
        );
    }
    // Other ports, other addresses on one port, and port 0 (each picks its own) are fine.
    for (listen, tls, metrics) in [
        ("127.0.0.1:8080", "127.0.0.1:8443", "127.0.0.1:9145"),
        ("127.0.0.1:8443", "127.0.0.2:8443", "off"),
        ("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"),
    ] {
        let text = with(listen, tls, metrics);
        assert!(load(&text, &[]).is_ok(), "{text}: {:?}", load(&text, &[]));
    }
    // The default metrics address counts too.
    let text = "listen = \"127.0.0.1:9145\"\nupstream = [\"unix:/a\"]\n";
    let err = load(text, &[]).unwrap_err();
    assert!(err.contains("takes the port of a listener"), "{err}");
}

#[test]
fn routes_for_hosts_share_paths_with_other_hosts_but_not_with_their_own() {
    let group = "[upstreams.api]\nservers = [\"unix:/b\"]\n";
    let text = format!(
        "upstream = [\"unix:/a\"]\n{group}\
         [[routes]]\nhosts = [\"api.example.com\"]\npath = \"/\"\nupstream = \"api\"\n\
         [[routes]]\nhosts = [\"www.example.com\"]\npath = \"/\"\n\
         redirect = {{ to = \"https://example.com/\" }}\n"
    );
    let config = load(&text, &[]).unwrap();
    // The `upstream` key's route `/` is still there for every other Host.
    let find = |host: &str, path: &str| config.routes.find(Some(host.as_bytes()), path.as_bytes());
    let label = |found| match found {
        Found::Route(i) => config.routes.get(i).unwrap().label(),
        other => panic!("{other:?}"),
    };
    assert_eq!(label(find("example.com", "/x")), "/");
    assert_eq!(label(find("api.example.com", "/x")), "api.example.com/");
    assert_eq!(label(find("www.example.com", "/x")), "www.example.com/");

    let twice = format!(
        "{group}[[routes]]\nhosts = [\"a.test\", \"b.test\"]\npath = \"/\"\nupstream = \"api\"\n\
         [[routes]]\nhosts = [\"b.test\"]\npath = \"/\"\nupstream = \"api\"\n"
    );
    assert_refused(
        &twice,
        "routes[1].path",
        "another route for its Hosts has the path",
    );
    // With top-level hosts, a route's Host must be among them (found by review: its
    // requests got 421 before any route).
    let served = |top: &str, route: &str| {
        format!(
            "hosts = [\"{top}\"]\n{group}[[routes]]\nhosts = [\"{route}\"]\npath = \"/\"\n\
             upstream = \"api\"\n"
        )
    };
    assert_refused(
        &served("www.example.com", "api.example.com"),
        "routes[0].hosts",
        "none of the top-level `hosts`",
    );
    for (top, route) in [
        (".example.com", "api.example.com"),
        ("api.example.com", "*.example.com"),
    ] {
        load(&served(top, route), &[]).unwrap();
    }
    // Two spellings of one name (found by review: one route was dead).
    for (first, second) in [(".b.test", "b.test"), (".b.test", "*.b.test")] {
        let spelled = format!(
            "{group}[[routes]]\nhosts = [\"{first}\"]\npath = \"/\"\nupstream = \"api\"\n\
             [[routes]]\nhosts = [\"{second}\"]\npath = \"/\"\nupstream = \"api\"\n"
        );
        assert_refused(
            &spelled,
            "routes[1].path",
            "another route for its Hosts has the path",
        );
    }
    let bad = format!(
        "{group}[[routes]]\nhosts = [\"http://a.test\"]\npath = \"/\"\nupstream = \"api\"\n"
    );
    assert!(load(&bad, &[]).unwrap_err().contains("invalid host"));
}

/// nginx's `add_header` in a `server`: every location gets it unless it has `add_header`
/// lines of its own, which replace the server's.
#[test]
fn server_wide_response_headers_go_to_the_routes_without_their_own() {
    let text = "upstream = [\"unix:/a\"]\n\
                response_headers = { \"X-Frame-Options\" = \"DENY\", \"X-A\" = \"1\" }\n\
                [[routes]]\npath = \"/api/\"\nupstream = \"default\"\n\
                response_headers = { \"X-B\" = \"2\" }\n\
                [[routes]]\npath = \"/old/\"\nredirect = { to = \"/new/\" }\n\
                [[routes]]\npath = \"/embed/\"\nupstream = \"default\"\n\
                response_headers = {}\n";
    let config = load(text, &["--static", "/static/=/tmp"]).unwrap();
    let headers = |path: &str| {
        let names: Vec<&str> = route(&config, path)
            .response_headers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        names.join(",")
    };
    assert_eq!(headers("/x"), "X-A,X-Frame-Options");
    assert_eq!(headers("/static/a.css"), "X-A,X-Frame-Options");
    assert_eq!(headers("/old/x"), "X-A,X-Frame-Options");
    assert_eq!(headers("/api/x"), "X-B");
    // `{}`: none, as `upstream_headers = {}` sets none (found by review: the top-level
    // ones went on).
    assert_eq!(headers("/embed/x"), "");
    assert_refused(
        "upstream = [\"unix:/a\"]\nresponse_headers = { \"X Y\" = \"1\" }\n",
        "response_headers.X Y",
        "header names are tokens",
    );
}

#[test]
fn a_tls_key_at_the_top_level_is_pointed_to_its_table() {
    for key in [
        "redirect_http = true",
        "hsts = \"max-age=1\"",
        "handshake_timeout = \"5s\"",
    ] {
        assert_refused(
            &format!("upstream = [\"unix:/a\"]\n{key}\n"),
            "unknown key (it belongs in the [tls] table)",
            "",
        );
    }
    let err = load("upstream = [\"unix:/a\"]\nredirect = 1\n", &[]).unwrap_err();
    assert!(err.ends_with("unknown key"), "{err}");
}

#[test]
fn redirect_port_names_the_port_of_redirect_http_only() {
    let cert = "certificates = [ { cert = \"/etc/tls/a.pem\", key = \"/etc/tls/a.key\" } ]";
    let tls = |extra: &str| {
        format!("upstream = [\"unix:/a\"]\n[tls]\nlisten = \"0.0.0.0:8443\"\n{cert}\n{extra}\n")
    };
    let config = load(&tls("redirect_http = true\nredirect_port = 443"), &[]).unwrap();
    assert_eq!(config.tls.unwrap().redirect_port, Some(443));
    let flagged = load(&tls("redirect_http = 308"), &["--redirect-port", "443"]).unwrap();
    assert_eq!(flagged.tls.unwrap().redirect_port, Some(443));
    assert_eq!(
        load(&tls("redirect_http = true"), &[])
            .unwrap()
            .tls
            .unwrap()
            .redirect_port,
        None
    );
    assert_refused(
        &tls("redirect_port = 443"),
        "tls.redirect_port",
        "which is off",
    );
    assert_refused(
        &tls("redirect_http = true\nredirect_port = 0"),
        "tls.redirect_port",
        "a port is 1 to 65535",
    );
    let err = load(&tls(""), &["--redirect-port", "443"]).unwrap_err();
    assert!(err.starts_with("--redirect-port: "), "{err}");
}

#[test]
fn listeners_take_one_address_or_several_as_nginx_listen_lines_do() {
    let addrs = |list: &[&str]| -> Vec<std::net::SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    };
    let cert = "certificates = [ { cert = \"/etc/tls/a.pem\", key = \"/etc/tls/a.key\" } ]";
    let text = format!(
        "listen = [\"0.0.0.0:80\", \"[::]:80\"]\nupstream = [\"unix:/a\"]\nmetrics = \"off\"\n\
         [tls]\nlisten = [\"0.0.0.0:443\", \"[::]:443\"]\n{cert}\n"
    );
    let config = load(&text, &[]).unwrap();
    assert_eq!(config.listen, addrs(&["0.0.0.0:80", "[::]:80"]));
    let tls = config.tls.as_ref().unwrap();
    assert_eq!(tls.listen, addrs(&["0.0.0.0:443", "[::]:443"]));
    // Repeated flags replace the file's list.
    let flags = ["--listen", "127.0.0.1:81", "--listen", "127.0.0.2:81"];
    let config = load(&text, &flags).unwrap();
    assert_eq!(config.listen, addrs(&["127.0.0.1:81", "127.0.0.2:81"]));
    // One address as before; none is the default.
    let one = load(
        "listen = \"127.0.0.1:9000\"\nupstream = [\"unix:/a\"]\n",
        &[],
    )
    .unwrap();
    assert_eq!(one.listen, addrs(&["127.0.0.1:9000"]));
    let none = load("upstream = [\"unix:/a\"]\n", &[]).unwrap();
    assert_eq!(none.listen, addrs(&["127.0.0.1:8080"]));
    // The IPv6 sockets are IPv6-only (as nginx's): `[::]` does not take IPv4's port.
    let split = format!(
        "listen = \"0.0.0.0:8443\"\nupstream = [\"unix:/a\"]\n[tls]\nlisten = \"[::]:8443\"\n{cert}\n"
    );
    assert!(load(&split, &[]).is_ok(), "{:?}", load(&split, &[]));

    let listed = |listen: &str| format!("listen = {listen}\nupstream = [\"unix:/a\"]\n");
    assert_refused(
        &listed("[\"127.0.0.1:80\", \"127.0.0.1:80\"]"),
        "listen",
        "127.0.0.1:80 is given twice",
    );
    assert_refused(
        &listed("[\"127.0.0.1:80\", \"localhost:80\"]"),
        "listen",
        "invalid address \"localhost:80\"",
    );
    assert_refused(
        &listed("80"),
        "listen",
        "an address (\"IP:PORT\") or a list",
    );
    assert_refused(
        &listed("[]"),
        "listen",
        "an empty list, and no [tls] listen",
    );
    // TLS only: `listen = []` beside a TLS listener; a flag still gives a plain one.
    let tls_only =
        format!("listen = []\nupstream = [\"unix:/a\"]\n[tls]\nlisten = \"0.0.0.0:443\"\n{cert}\n");
    assert_eq!(load(&tls_only, &[]).unwrap().listen, addrs(&[]));
    let flag = load(&tls_only, &["--listen", "127.0.0.1:81"]).unwrap();
    assert_eq!(flag.listen, addrs(&["127.0.0.1:81"]));
    assert_refused(
        &format!("{tls_only}redirect_http = true\n"),
        "redirect_http",
        "`listen = []` takes no plain HTTP",
    );
    assert_refused(
        "upstream = [\"unix:/a\"]\n[tls]\nlisten = []\n",
        "tls.listen",
        "an empty list",
    );
    let tls_twice =
        format!("upstream = [\"unix:/a\"]\n[tls]\nlisten = [\"[::]:443\", \"[::]:443\"]\n{cert}\n");
    assert_refused(&tls_twice, "tls.listen", "[::]:443 is given twice");
    // Every address of one listener against every address of the other.
    let crossed = format!(
        "listen = [\"127.0.0.1:80\", \"[::1]:443\"]\nupstream = [\"unix:/a\"]\n\
         [tls]\nlisten = [\"127.0.0.1:443\", \"[::]:443\"]\n{cert}\n"
    );
    assert_refused(
        &crossed,
        "tls.listen",
        "[::]:443 takes the port of `listen` ([::1]:443)",
    );
}

#[test]
fn zero_timeouts_are_refused_where_zero_means_nothing() {
    let routed = |global: &str, route: &str| {
        format!(
            "{global}\n[upstreams.app]\nservers = [\"unix:/a\"]\n\
             [[routes]]\npath = \"/\"\nupstream = \"app\"\n{route}\n"
        )
    };
    for key in [
        "upstream_connect_timeout",
        "upstream_read_timeout",
        "client_body_timeout",
        "send_timeout",
    ] {
        let err = load(&routed(&format!("{key} = \"0s\""), ""), &[]).unwrap_err();
        assert!(
            err.starts_with(&format!("{key} in ")) && err.contains("longer than 0"),
            "{err}"
        );
        let err = load(&routed("", &format!("{key} = \"0s\"")), &[]).unwrap_err();
        assert!(
            err.contains(&format!("routes[0].{key}")) && err.contains("longer than 0"),
            "{err}"
        );
    }
    let err = load(&routed("client_header_timeout = \"0s\"", ""), &[]).unwrap_err();
    assert!(
        err.contains("client_header_timeout") && err.contains("longer than 0"),
        "{err}"
    );
    let err = Config::from_args(["ringway", "--upstream", "unix:/a", "--send-timeout", "0s"])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("--send-timeout: "), "{err}");
    // Where 0 means something, it stays: idle connections closed at once, stop at once.
    let config = load(
        &routed("keepalive_timeout = \"0s\"\nshutdown_timeout = \"0s\"", ""),
        &[],
    )
    .unwrap();
    assert_eq!(config.keepalive_timeout, Duration::ZERO);
    assert_eq!(config.shutdown_timeout, Duration::ZERO);
}

/// nginx's `gzip on` in `http` or `server`, and `gzip off` (or on) in a `location`.
#[test]
fn gzip_goes_to_every_route_to_an_app_or_files_unless_it_says_otherwise() {
    let text = "upstream = [\"unix:/a\"]\n\
                [gzip]\ntypes = [\"application/json\"]\nlevel = 5\nvary = true\n\
                [[routes]]\npath = \"/stream/\"\nupstream = \"default\"\ngzip = false\n\
                [[routes]]\npath = \"/files/\"\nstatic = \"/tmp\"\nfallback = \"default\"\n";
    let config = load(text, &["--static", "/static/=/tmp"]).unwrap();
    let level = |path: &str| route(&config, path).gzip.as_ref().map(|g| g.level());
    assert_eq!(level("/api"), Some(5), "the default route");
    assert_eq!(
        level("/files/a"),
        Some(5),
        "a static route's fallback answers"
    );
    assert_eq!(level("/stream/a"), None);
    assert_eq!(
        level("/static/a.css"),
        Some(5),
        "files, as nginx's gzip filter takes them"
    );
    // A route may turn it on without the section: nginx's defaults.
    let text = "upstream = [\"unix:/a\"]\n\
                [[routes]]\npath = \"/api/\"\nupstream = \"default\"\ngzip = true\n";
    let config = load(text, &[]).unwrap();
    assert_eq!(
        route(&config, "/api/x").gzip.as_deref(),
        Some(&crate::gzip::Gzip::default())
    );
    assert!(route(&config, "/x").gzip.is_none());
    assert_refused(
        "upstream = [\"unix:/a\"]\n[gzip]\nlevel = 10\n",
        "gzip.level",
        "not from 1 to 9",
    );
    assert_refused(
        "upstream = [\"unix:/a\"]\n[gzip]\ntypes = [\"text/*\"]\n",
        "gzip.types",
        "list each type",
    );
    assert_refused(
        "upstream = [\"unix:/a\"]\n[gzip]\ncomp_level = 1\n",
        "comp_level",
        "",
    );
    assert_refused(
        "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/r/\"\nrespond = { status = 200 }\ngzip = true\n",
        "routes[0].gzip",
        "does not apply",
    );
    let text = "upstream = [\"unix:/a\"]\n\
                [[routes]]\npath = \"/s/\"\nstatic = \"/tmp\"\ngzip = true\n";
    let config = load(text, &[]).unwrap();
    assert_eq!(
        route(&config, "/s/a.css").gzip.as_deref(),
        Some(&crate::gzip::Gzip::default())
    );
}

/// nginx's `add_header NAME VALUE always`: on every answer of the route, errors too; at the
/// top level also on the answers no route made.
#[test]
fn always_headers_go_on_every_answer() {
    let text = "upstream = [\"unix:/a\"]\n\
                response_headers = { \"X-Frame-Options\" = { value = \"DENY\", always = true }, \
                \"X-A\" = \"1\", \"X-B\" = { value = \"2\" } }\n\
                [[routes]]\npath = \"/api/\"\nupstream = \"default\"\n\
                response_headers = { \"X-C\" = { value = \"3\", always = true } }\n";
    let config = load(text, &[]).unwrap();
    let names = |headers: &[(String, String)]| {
        headers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    let fallback = route(&config, "/x");
    assert_eq!(names(fallback.headers_for(200)), "X-A,X-B,X-Frame-Options");
    assert_eq!(names(fallback.headers_for(404)), "X-Frame-Options");
    assert_eq!(names(fallback.headers_for(502)), "X-Frame-Options");
    let api = route(&config, "/api/x");
    assert_eq!(names(api.headers_for(200)), "X-C");
    assert_eq!(names(api.headers_for(500)), "X-C");
    assert_eq!(names(&config.response_headers_always), "X-Frame-Options");
    for (table, says) in [
        (
            "{ value = \"1\", allways = true }",
            "unknown field `allways`",
        ),
        ("{ always = true }", "missing field `value`"),
        ("1", "a header value, or { value"),
    ] {
        let err = load(
            &format!("upstream = [\"unix:/a\"]\nresponse_headers = {{ \"X-A\" = {table} }}\n"),
            &[],
        )
        .unwrap_err();
        assert!(
            err.contains(says) && err.contains("response_headers"),
            "{table}: {err}"
        );
    }
    assert_refused(
        "upstream = [\"unix:/a\"]\nresponse_headers = { \"X-A\" = { value = \"a\\r\\nB: c\", always = true } }\n",
        "response_headers.X-A",
        "header names are tokens",
    );
    // Values with variables (nginx's `add_header X $var`): those known before the answer.
    let config = load(
        "upstream = [\"unix:/a\"]\nresponse_headers = { \"X-O\" = { value = \"$http_origin\", \
         always = true }, \"X-F\" = \"fixed\" }\n",
        &[],
    )
    .unwrap();
    let fixed = config
        .response_headers_always
        .resolve_added(|_, out| out.clear());
    assert!(
        fixed.is_empty(),
        "a value that comes out empty is no header"
    );
    let resolved = route(&config, "/x")
        .headers_for(200)
        .resolve_added(|_, out| out.extend_from_slice(b"https://a.example"));
    assert_eq!(
        &*resolved,
        [
            ("X-F".to_owned(), "fixed".to_owned()),
            ("X-O".to_owned(), "https://a.example".to_owned())
        ]
    );
    assert_refused(
        "upstream = [\"unix:/a\"]\nresponse_headers = { \"X-S\" = \"$status\" }\n",
        "response_headers.X-S",
        "for log lines only",
    );
    assert_refused(
        "upstream = [\"unix:/a\"]\nresponse_headers = { \"Content-Length\" = \"$arg_n\" }\n",
        "response_headers.Content-Length",
        "framing and hop-by-hop headers",
    );
    // `add_header X "";` adds nothing; a `$$` alone is no variable.
    let config = load(
        "upstream = [\"unix:/a\"]\nresponse_headers = { \"X-E\" = { value = \"\", always = true }, \
         \"X-D\" = { value = \"a$$b\", always = true } }\n",
        &[],
    )
    .unwrap();
    let literal = config
        .response_headers_always
        .resolve_added(|template, out| {
            out.extend(template.literal().unwrap_or_default());
        });
    assert_eq!(&*literal, [("X-D".to_owned(), "a$b".to_owned())]);
}

/// nginx's `auth_basic` in `server`, replaced or turned off in a `location`.
#[test]
fn auth_basic_is_inherited_replaced_or_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, "ann:{PLAIN}secret\n").unwrap();
    let f = file.display();
    let text = format!(
        "upstream = [\"unix:/a\"]\n\
         auth_basic = {{ realm = \"Site\", user_file = \"{f}\" }}\n\
         [[routes]]\npath = \"/open/\"\nupstream = \"default\"\nauth_basic = \"off\"\n\
         [[routes]]\npath = \"/admin/\"\nupstream = \"default\"\n\
         auth_basic = {{ realm = \"Admin\", user_file = \"{f}\" }}\n"
    );
    let config = load(&text, &["--static", "/static/=/tmp"]).unwrap();
    let challenge = |path: &str| {
        route(&config, path)
            .auth
            .as_ref()
            .map(|a| a.challenge().to_owned())
    };
    assert_eq!(challenge("/x").as_deref(), Some("Basic realm=\"Site\""));
    assert_eq!(
        challenge("/static/a").as_deref(),
        Some("Basic realm=\"Site\"")
    );
    assert_eq!(challenge("/open/x"), None);
    assert_eq!(
        challenge("/admin/x").as_deref(),
        Some("Basic realm=\"Admin\"")
    );
    assert!(!route(&config, "/admin/x").satisfy_any);
    let any = format!("{text}satisfy = \"any\"\nallow = [\"10.0.0.0/8\"]\n");
    let config = load(&any, &[]).unwrap();
    assert!(route(&config, "/admin/x").satisfy_any);
    assert_refused(&format!("{text}satisfy = \"some\"\n"), "satisfy", "`all`");
    assert_refused(
        "upstream = [\"unix:/a\"]\nauth_basic = \"of\"\n",
        "auth_basic",
        "\"off\"",
    );
    assert_refused(
        "upstream = [\"unix:/a\"]\nauth_basic = { realm = \"x\" }\n",
        "user_file",
        "",
    );
    assert_refused(
        &format!(
            "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/a/\"\nupstream = \"default\"\n\
             auth_basic = {{ realm = \"x\", user_file = \"{}/missing\" }}\n",
            dir.path().display()
        ),
        "routes[0].auth_basic",
        "missing",
    );
}

/// Found by review: an `internal` route nothing inside reaches was taken, and answered
/// every request 404.
#[test]
fn an_internal_route_nothing_inside_reaches_is_refused() {
    let app = "upstream = [\"unix:/a\"]\n";
    for (route, what) in [
        (
            "path = \"/x\"\nrespond = { status = 200 }",
            "answers itself",
        ),
        (
            "path = \"/x\"\nredirect = { to = \"/y\" }",
            "answers itself",
        ),
        (
            "path = \"/x\"\nupstream = \"default\"",
            "no auth_request names",
        ),
    ] {
        let err = load(&format!("{app}[[routes]]\n{route}\ninternal = true\n"), &[]).unwrap_err();
        assert!(
            err.contains("routes[0].internal") && err.contains(what),
            "{route}: {err}"
        );
    }
    // Named by an auth_request, or a static route (X-Accel-Redirect): taken.
    load(
        &format!(
            "{app}auth_request = \"/x/check\"\n[[routes]]\npath = \"/x/\"\n\
             upstream = \"default\"\ninternal = true\n[[routes]]\npath = \"/files/\"\n\
             static = \"/tmp\"\ninternal = true\n"
        ),
        &[],
    )
    .unwrap();
}

/// nginx's `auth_request` in `server`, replaced or turned off in a `location`; its path
/// must reach an app, for every Host the route serves.
#[test]
fn auth_request_is_inherited_replaced_or_turned_off_and_must_reach_an_app() {
    let text = "upstream = [\"unix:/a\"]\n\
                auth_request = \"/auth/check?from=site\"\n\
                [[routes]]\npath = \"/auth/\"\nupstream = \"default\"\ninternal = true\n\
                [[routes]]\npath = \"/open/\"\nupstream = \"default\"\nauth_request = \"off\"\n\
                [[routes]]\npath = \"/admin/\"\nupstream = \"default\"\n\
                auth_request = { path = \"/auth/admin\", redirect_401 = \"/login?rd=$request_uri\" }\n\
                [[routes]]\npath = \"/ok\"\nexact = true\nrespond = { status = 200 }\n";
    let config = load(text, &["--static", "/static/=/tmp"]).unwrap();
    let asked = |path: &str| {
        route(&config, path)
            .auth_request
            .as_ref()
            .map(|a| format!("{}?{}", a.path, a.query))
    };
    assert_eq!(asked("/x").as_deref(), Some("/auth/check?from=site"));
    assert_eq!(asked("/static/a").as_deref(), Some("/auth/check?from=site"));
    assert_eq!(asked("/open/x"), None);
    assert_eq!(asked("/admin/x").as_deref(), Some("/auth/admin?"));
    assert!(
        route(&config, "/admin/x")
            .auth_request
            .as_ref()
            .unwrap()
            .redirect_401
            .is_some()
    );
    // A fixed answer goes before any access check, as nginx's `return`.
    assert_eq!(asked("/ok"), None);

    assert_refused(
        "upstream = [\"unix:/a\"]\nauth_request = \"/nowhere\"\n\
         [[routes]]\npath = \"/nowhere\"\nexact = true\nrespond = { status = 204 }\n",
        "auth_request",
        "no route passing requests to an upstream serves \"/nowhere\"",
    );
    assert_refused(
        "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/a/\"\nupstream = \"default\"\n\
         hosts = [\"a.example\"]\nauth_request = \"/auth\"\n\
         [[routes]]\npath = \"/auth\"\nupstream = \"default\"\nhosts = [\"b.example\"]\n",
        "routes[0].auth_request",
        "for the Host a.example",
    );
    // A wildcard's subdomain with routes of its own looks among those.
    assert_refused(
        "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/x/\"\nupstream = \"default\"\n\
         hosts = [\"*.example.com\"]\nauth_request = \"/auth\"\n\
         [[routes]]\npath = \"/auth\"\nupstream = \"default\"\nhosts = [\"*.example.com\"]\n\
         [[routes]]\npath = \"/auth\"\nexact = true\nrespond = { status = 200 }\n\
         hosts = [\"a.example.com\"]\n",
        "routes[0].auth_request",
        "for the Host a.example.com",
    );
    // A narrower wildcard with routes of its own, likewise.
    assert_refused(
        "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/x/\"\nupstream = \"default\"\n\
         hosts = [\"*.example.com\"]\nauth_request = \"/auth\"\n\
         [[routes]]\npath = \"/auth\"\nupstream = \"default\"\nhosts = [\"*.example.com\"]\n\
         [[routes]]\npath = \"/auth\"\nexact = true\nrespond = { status = 200 }\n\
         hosts = [\"*.a.example.com\"]\n",
        "routes[0].auth_request",
        "for the Host *.a.example.com",
    );
    for bad in ["auth", "/a/../b", "/a b", "/a%20b", "/a#b"] {
        assert_refused(
            &format!("upstream = [\"unix:/a\"]\nauth_request = \"{bad}\"\n"),
            "auth_request",
            "expected a normalised path",
        );
    }
    assert_refused(
        "upstream = [\"unix:/a\"]\nauth_request = { path = \"/\", redirect_401 = \"$status\" }\n",
        "auth_request.redirect_401",
        "for log lines only",
    );
    assert_refused(
        "upstream = [\"unix:/a\"]\nauth_request = { path = \"/\", login = \"/x\" }\n",
        "login",
        "",
    );
}

#[test]
fn a_regex_route_is_matched_by_its_pattern_and_refused_where_it_cannot_work() {
    let group = "[upstreams.app]\nservers = [\"unix:/a\"]\n";
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{group}[[routes]]\npath = \"/\"\nupstream = \"app\"\n\
         [[routes]]\npath = \"/media/\"\nupstream = \"app\"\nno_regex = true\n\
         [[routes]]\nregex = '(?i)\\.(css|js)$'\nstatic = \"{}\"\nexpires = \"30d\"\n",
        dir.path().display()
    );
    let config = load(&text, &[]).unwrap();
    let assets = route(&config, "/app/A.JS");
    assert!(matches!(assets.action, Action::Static(_)), "{assets:?}");
    assert_eq!(assets.path, "/", "a file is looked up by the whole path");
    assert_eq!(route(&config, "/media/a.js").path, "/media/");
    assert_eq!(route(&config, "/app/a.py").path, "/");
    // The README's dotfiles rule: refused but for ACME challenges.
    let text = format!(
        "{group}[[routes]]\npath = \"/\"\nupstream = \"app\"\n\
         [[routes]]\nregex = '/\\.'\nrespond = {{ status = 403 }}\n\
         [[routes]]\npath = \"/.well-known/\"\nno_regex = true\nstatic = \"{}\"\n",
        dir.path().display()
    );
    let config = load(&text, &[]).unwrap();
    assert!(matches!(route(&config, "/.env").action, Action::Respond(_)));
    assert!(matches!(
        route(&config, "/a/.git/config").action,
        Action::Respond(_)
    ));
    let challenge = route(&config, "/.well-known/acme-challenge/t0k3n");
    assert!(matches!(challenge.action, Action::Static(_)));
    assert!(matches!(
        route(&config, "/a.b/c").action,
        Action::Upstream { .. }
    ));

    let refused = [
        ("regex = '('\n", "routes[0].regex", "\"(\""),
        (
            "path = \"/x/\"\nregex = 'a'\n",
            "routes[0].regex",
            "not both",
        ),
        (
            "regex = 'a'\nexact = true\n",
            "routes[0].exact",
            "matches by its pattern",
        ),
        (
            "regex = 'a'\nno_regex = true\n",
            "routes[0].no_regex",
            "prefix route",
        ),
        (
            "path = \"/x\"\nexact = true\nno_regex = true\n",
            "routes[0].no_regex",
            "prefix route",
        ),
        (
            "regex = 'a'\nscript_name = \"/a\"\n",
            "routes[0].script_name",
            "no path to mount",
        ),
        (
            "regex = 'a'\n[[routes]]\nregex = 'a'\nupstream = \"app\"\n",
            "routes[1].regex",
            "has the pattern \"~a\" already",
        ),
        ("", "routes[0].path", "needs a `path`"),
    ];
    for (route_text, key, message) in refused {
        let text = format!("{group}[[routes]]\nupstream = \"app\"\n{route_text}");
        assert_refused(&text, key, message);
    }
    // upstream_path: an HTTP group's prefix routes only.
    let http = "[upstreams.web]\nservers = [\"http://127.0.0.1:8000\"]\n";
    let config = load(
        &format!("{http}[[routes]]\npath = \"/api/\"\nupstream = \"web\"\nupstream_path = \"/\"\n"),
        &[],
    )
    .unwrap();
    assert!(matches!(
        &route(&config, "/api/x").action,
        Action::Upstream { upstream_path: Some(p), .. } if p == "/"
    ));
    for (route_text, message) in [
        (
            "path = \"/api/\"\nupstream = \"app\"\nupstream_path = \"/\"\n",
            "speaks uwsgi",
        ),
        (
            "regex = 'a'\nupstream = \"web\"\nupstream_path = \"/\"\n",
            "no path prefix",
        ),
        (
            "path = \"/api/\"\nupstream = \"web\"\nupstream_path = \"v1/\"\n",
            "normalised",
        ),
        (
            "path = \"/api/\"\nupstream = \"web\"\nupstream_path = \"/v1 x?y#z/\\r\\nX-Evil: 1/\"\n",
            "normalised",
        ),
        (
            "path = \"/api/\"\nrespond = { status = 204 }\nupstream_path = \"/\"\n",
            "does not apply",
        ),
    ] {
        let text = format!("{group}{http}[[routes]]\n{route_text}");
        assert_refused(&text, "routes[0].upstream_path", message);
    }
    // A redirect names the groups its regex has, and only a regex route's.
    let redirect = |route_text: &str| format!("{group}[[routes]]\n{route_text}");
    load(
        &redirect("regex = '^/p/([0-9]+)$'\nredirect = { to = \"/product/$1\" }\n"),
        &[],
    )
    .unwrap();
    assert_refused(
        &redirect("regex = '^/p/([0-9]+)$'\nredirect = { to = \"/product/$2\" }\n"),
        "routes[0].redirect.to",
        "names $2, and the regex has 1 group(s)",
    );
    assert_refused(
        &redirect("path = \"/p/\"\nredirect = { to = \"/product/$1\" }\n"),
        "routes[0].redirect.to",
        "groups come from a regex route",
    );
}

#[test]
fn next_upstream_from_the_top_a_route_or_a_flag() {
    let text = "next_upstream = [\"error\", \"http_502\"]\n\
                [upstreams.app]\nservers = [\"unix:/a\", \"unix:/b\"]\n\
                [[routes]]\npath = \"/api/\"\nupstream = \"app\"\nnext_upstream = \"off\"\n\
                [[routes]]\npath = \"/\"\nupstream = \"app\"\n";
    let config = load(text, &[]).unwrap();
    let api = route(&config, "/api/x").limits.next_upstream;
    assert!(!api.on_error(), "the route's own: off");
    let rest = route(&config, "/x").limits.next_upstream;
    assert!(
        rest.on_error() && rest.on_status(502) && !rest.on_timeout(),
        "the top's"
    );
    let flagged = load(text, &["--next-upstream", "timeout,http_503"]).unwrap();
    let rest = route(&flagged, "/x").limits.next_upstream;
    assert!(
        rest.on_timeout() && rest.on_status(503) && !rest.on_error(),
        "the flag wins"
    );
    let plain = load("upstream = [\"unix:/a\"]\n", &[]).unwrap();
    assert_eq!(
        route(&plain, "/").limits.next_upstream,
        crate::config::NextUpstream::DEFAULT,
        "nginx's default: error timeout"
    );
    let limits = route(&plain, "/").limits;
    assert_eq!(
        (limits.next_upstream_tries, limits.next_upstream_timeout),
        (0, None),
        "nginx's defaults: no bound"
    );
    let bounded = "next_upstream_tries = 2\nnext_upstream_timeout = \"10s\"\n\
                   upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/\"\nupstream = \"default\"\n\
                   next_upstream_timeout = 0\n";
    let limits = route(&load(bounded, &[]).unwrap(), "/").limits;
    assert_eq!(
        (limits.next_upstream_tries, limits.next_upstream_timeout),
        (2, None),
        "the top's tries, the route's own 0: no time bound"
    );
}

#[test]
fn access_log_statuses_are_all_unless_listed() {
    let on = "upstream = [\"unix:/a\"]\naccess_log = \"stderr\"\n";
    let statuses =
        |text: &str, flags: &[&str]| load(text, flags).unwrap().access_log.unwrap().statuses;
    assert_eq!(statuses(on, &[]), LoggedStatuses::ALL);
    let errors = statuses(
        &format!("{on}access_log_statuses = [\"4xx\", \"5xx\"]\n"),
        &[],
    );
    let logged = |set: LoggedStatuses| [200, 304, 404, 499, 503].map(|s| set.contains(s));
    assert_eq!(logged(errors), [false, false, true, true, true]);
    let flagged = statuses(on, &["--access-log-statuses", "499,5xx"]);
    assert_eq!(logged(flagged), [false, false, false, true, true]);
    assert_refused(
        &format!("{on}access_log_statuses = []\n"),
        "access_log_statuses",
        "log nothing",
    );
    assert_refused(
        &format!("{on}access_log_statuses = [\"6xx\"]\n"),
        "access_log_statuses",
        "not a status",
    );
}

#[test]
fn ignore_client_abort_is_off_unless_set_at_the_top_in_a_route_or_by_flag() {
    let text = "upstream = [\"unix:/a\"]\n\
                [[routes]]\npath = \"/report/\"\nupstream = \"default\"\n\
                ignore_client_abort = true\n";
    let config = load(text, &[]).unwrap();
    let ignores = |config: &Config, path: &str| route(config, path).limits.ignore_client_abort;
    assert!(ignores(&config, "/report/x"), "the route's own");
    assert!(!ignores(&config, "/x"), "nginx's default: off");
    let flagged = load(text, &["--ignore-client-abort"]).unwrap();
    assert!(ignores(&flagged, "/x"), "the flag: every route");
    let top = "ignore_client_abort = true\nupstream = [\"unix:/a\"]\n\
               [[routes]]\npath = \"/live/\"\nupstream = \"default\"\n\
               ignore_client_abort = false\n";
    let config = load(top, &[]).unwrap();
    assert!(ignores(&config, "/x"), "the top's");
    assert!(
        !ignores(&config, "/live/x"),
        "a route's own false over the top's"
    );
}

#[test]
fn http2_is_offered_only_when_asked_for() {
    let cert = "certificates = [ { cert = \"/etc/tls/a.pem\", key = \"/etc/tls/a.key\" } ]";
    let tls = |extra: &str| {
        format!("upstream = [\"unix:/a\"]\n[tls]\nlisten = \"0.0.0.0:443\"\n{cert}\n{extra}")
    };
    let http2 = |text: &str, flags: &[&str]| load(text, flags).unwrap().tls.unwrap().http2;
    assert!(!http2(&tls(""), &[]), "off by default, as nginx's");
    assert!(http2(&tls("http2 = true\n"), &[]));
    assert!(http2(&tls(""), &["--http2"]));
    assert_refused(
        "upstream = [\"unix:/a\"]\n[tls]\nhttp2 = true\n",
        "tls.listen",
        "",
    );
}

#[test]
fn tls_versions_tickets_and_client_certificates() {
    let cert = "certificates = [ { cert = \"/etc/tls/a.pem\", key = \"/etc/tls/a.key\" } ]";
    let tls = |extra: &str| {
        format!("upstream = [\"unix:/a\"]\n[tls]\nlisten = \"0.0.0.0:443\"\n{cert}\n{extra}")
    };
    let loaded = |text: &str, flags: &[&str]| load(text, flags).unwrap().tls.unwrap();
    let both = vec![TlsVersion::Tls12, TlsVersion::Tls13];
    let plain = loaded(&tls(""), &[]);
    assert_eq!(plain.protocols, both, "both by default");
    assert!(plain.session_tickets && plain.client_auth.is_none());
    assert_eq!(
        loaded(&tls("protocols = [\"TLSv1.3\"]\n"), &[]).protocols,
        [TlsVersion::Tls13]
    );
    assert_eq!(
        loaded(&tls(""), &["--tls-protocols", "TLSv1.3,TLSv1.2,TLSv1.3"]).protocols,
        both
    );
    assert!(!loaded(&tls("session_tickets = false\n"), &[]).session_tickets);
    assert!(
        !plain.reject_unknown_names,
        "the first certificate for unknown names"
    );
    assert!(loaded(&tls("reject_unknown_names = true\n"), &[]).reject_unknown_names);
    assert!(loaded(&tls(""), &["--tls-reject-unknown-names"]).reject_unknown_names);
    assert_eq!(plain.record_size, None, "TLS's maximum");
    assert_eq!(
        loaded(&tls("record_size = \"4k\"\n"), &[]).record_size,
        Some(4096)
    );
    assert_eq!(
        loaded(&tls(""), &["--tls-record-size", "16k"]).record_size,
        Some(16384)
    );
    for bad in ["32k", "100"] {
        assert_refused(
            &tls(&format!("record_size = \"{bad}\"\n")),
            "tls.record_size",
            "out of range",
        );
    }
    assert_refused(
        &tls("protocols = [\"TLSv1.1\", \"TLSv1.2\"]\n"),
        "TLSv1.1",
        "not offered",
    );
    assert_refused(
        &tls("protocols = []\n"),
        "tls.protocols",
        "names no version",
    );

    // Key exchange groups: OpenSSL's names and aliases, any case, once each in the order
    // given; the post-quantum hybrid first by default.
    use KeyExchangeGroup::*;
    for group in KeyExchangeGroup::ALL {
        assert_eq!(group.name().parse(), Ok(group), "the name read back");
    }
    assert_eq!(
        plain.key_exchange_groups,
        [X25519Mlkem768, X25519, Secp256r1, Secp384r1]
    );
    assert_eq!(
        loaded(
            &tls("key_exchange_groups = [\"x25519\", \"P-256\", \"X25519\", \"secp384r1\"]\n"),
            &[]
        )
        .key_exchange_groups,
        [X25519, Secp256r1, Secp384r1]
    );
    assert_eq!(
        loaded(
            &tls(""),
            &["--tls-key-exchange-groups", "SecP256r1MLKEM768,prime256v1"]
        )
        .key_exchange_groups,
        [Secp256r1Mlkem768, Secp256r1]
    );
    assert_refused(
        &tls("key_exchange_groups = [\"X25519\", \"secp521r1\"]\n"),
        "\"secp521r1\"",
        "is not offered",
    );
    assert_refused(
        &tls("key_exchange_groups = [\"auto\"]\n"),
        "auto",
        "leave the setting out",
    );
    assert_refused(
        &tls("key_exchange_groups = []\n"),
        "tls.key_exchange_groups",
        "names no group",
    );
    // TLS 1.2 cannot use the hybrids: it must have a classical group, unless it is off.
    assert_refused(
        &tls("key_exchange_groups = [\"X25519MLKEM768\"]\n"),
        "tls.key_exchange_groups",
        "no group TLS 1.2 can use",
    );
    assert_eq!(
        loaded(
            &tls("protocols = [\"TLSv1.3\"]\nkey_exchange_groups = [\"X25519MLKEM768\"]\n"),
            &[]
        )
        .key_exchange_groups,
        [X25519Mlkem768]
    );
    for setting in [
        "key_exchange_groups = [\"X25519\"]",
        "handshake_timeout = \"5s\"",
    ] {
        assert!(
            load(
                &format!("upstream = [\"unix:/a\"]\n[tls]\n{setting}\n"),
                &[]
            )
            .unwrap_err()
            .contains("no address to accept TLS on"),
            "{setting}"
        );
    }

    let auth = loaded(
        &tls("verify_client = \"optional\"\nclient_certificate = \"/etc/tls/ca.pem\"\n"),
        &[],
    )
    .client_auth
    .unwrap();
    assert!(!auth.required && auth.revoked.is_none());
    assert_eq!(auth.authorities, std::path::Path::new("/etc/tls/ca.pem"));
    let required = loaded(
        &tls(""),
        &[
            "--tls-verify-client",
            "on",
            "--tls-client-certificate",
            "/ca.pem",
            "--tls-client-crl",
            "/crl.pem",
        ],
    );
    let required = required.client_auth.unwrap();
    assert!(required.required);
    assert_eq!(
        required.revoked.as_deref(),
        Some(std::path::Path::new("/crl.pem"))
    );
    assert_refused(
        &tls("verify_client = \"on\"\n"),
        "tls.verify_client",
        "needs client_certificate",
    );
    assert_refused(
        &tls("client_certificate = \"/ca.pem\"\n"),
        "tls.client_certificate",
        "only with verify_client",
    );
    assert_refused(
        &tls("verify_client = \"optional_no_ca\"\n"),
        "optional_no_ca",
        "not offered",
    );
    assert_refused(
        &tls("client_crl = \"/crl.pem\"\n"),
        "tls.client_crl",
        "only with verify_client",
    );
    let err = load(&tls(""), &["--tls-client-crl", "/crl.pem"]).unwrap_err();
    assert!(err.contains("--tls-client-crl"), "{err}");
    // An explicit off (a flag over the file's `on`) asks for nothing, the files unused.
    let file_on = tls("verify_client = \"on\"\nclient_certificate = \"/ca.pem\"\n");
    assert!(
        loaded(&file_on, &["--tls-verify-client", "off"])
            .client_auth
            .is_none()
    );
    assert!(!loaded(&file_on, &[]).client_auth.unwrap().pass_pem);
    let passing = loaded(&file_on, &["--tls-pass-client-certificate", "true"]);
    assert!(passing.client_auth.unwrap().pass_pem);
    assert_refused(
        "upstream = [\"unix:/a\"]\n[tls]\nverify_client = \"on\"\n",
        "tls.listen",
        "",
    );
}

#[test]
fn expires_takes_nginx_forms() {
    for (text, want) in [
        ("30d", Some(Expires::For(2_592_000))),
        ("+1h", Some(Expires::For(3600))),
        ("0", Some(Expires::For(0))),
        ("-1", Some(Expires::Stale(1))),
        ("-1h", Some(Expires::Stale(3600))),
        ("epoch", Some(Expires::Epoch)),
        ("max", Some(Expires::Max)),
        ("off", None),
        ("3600", Some(Expires::For(3600))),
    ] {
        let config = load(
            &format!(
                "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/s/\"\nstatic = \"/srv\"\n\
                 expires = \"{text}\"\n"
            ),
            &[],
        )
        .unwrap();
        let Action::Static(files) = &route(&config, "/s/").action else {
            panic!("a static route");
        };
        assert_eq!(files.expires, want, "{text}");
    }
    // A bare TOML integer is seconds, as for every duration; a negative one is stale.
    for (number, want) in [(86400, Expires::For(86400)), (-1, Expires::Stale(1))] {
        let config = load(
            &format!(
                "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/s/\"\nstatic = \"/srv\"\n\
                 expires = {number}\n"
            ),
            &[],
        )
        .unwrap();
        let Action::Static(files) = &route(&config, "/s/").action else {
            panic!("a static route");
        };
        assert_eq!(files.expires, Some(want), "{number}");
    }
    assert_refused(
        "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/s/\"\nstatic = \"/srv\"\n\
         expires = \"modified +1h\"\n",
        "expires",
        "epoch, max or off",
    );
    for expires in [
        "",
        "expires = \"-1\"\n",
        "expires = \"epoch\"\n",
        "expires = \"off\"\n",
    ] {
        assert_refused(
            &format!(
                "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/s/\"\nstatic = \"/srv\"\n\
                 immutable = true\n{expires}"
            ),
            "immutable",
            "needs an `expires` time",
        );
    }
}

#[test]
fn a_server_name_becomes_a_server_per_address_with_its_options() {
    let text = "[upstreams.web]\nservers = [\"http://localhost:8000 weight=2\"]\n\
                [[routes]]\npath = \"/\"\nupstream = \"web\"\n";
    let config = load(text, &[]).unwrap();
    let servers = &config.groups[0].servers;
    assert_eq!(
        servers[0].addr,
        UpstreamAddr::Tcp("127.0.0.1:8000".parse().unwrap())
    );
    assert!(servers.iter().all(|s| s.options.weight == 2));

    let flags = load("", &["--upstream", "localhost:3031"]).unwrap();
    assert_eq!(
        addrs(&flags.groups[0])[0],
        UpstreamAddr::Tcp("127.0.0.1:3031".parse().unwrap())
    );

    // A name not found stops the start, the key named (asked of no DNS server here).
    let text = "[upstreams.web]\nservers = [\"unix:/a\", \"web:3031\"]\n\
                [[routes]]\npath = \"/\"\nupstream = \"web\"\n";
    let err = Config::from_file_text(text, std::path::Path::new("ringway.toml")).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("upstreams.web.servers") && err.contains("host not found: web:3031"),
        "{err}"
    );
}

#[test]
fn charset_and_its_types_are_inherited_each_on_its_own() {
    let text = "charset = \"utf-8\"\ncharset_types = [\"application/json\"]\n\
        [upstreams.app]\nservers = [\"unix:/a\"]\n\
        [[routes]]\npath = \"/a/\"\nupstream = \"app\"\n\
        [[routes]]\npath = \"/b/\"\nupstream = \"app\"\ncharset = \"off\"\n\
        [[routes]]\npath = \"/b2/\"\nupstream = \"app\"\ncharset = \"Off\"\n\
        [[routes]]\npath = \"/c/\"\nupstream = \"app\"\ncharset = \"koi8-r\"\n\
        [[routes]]\npath = \"/d/\"\nupstream = \"app\"\ncharset_types = [\"text/css\"]\n";
    let config = load(text, &[]).unwrap();
    let label = |path: &str, value: &[u8]| {
        let route = config.routes.iter().find(|r| r.path == path).unwrap();
        route
            .charset
            .as_ref()
            .and_then(|c| c.for_answer(200, value).map(str::to_owned))
    };
    assert_eq!(label("/a/", b"application/json").as_deref(), Some("utf-8"));
    assert_eq!(
        label("/a/", b"text/plain"),
        None,
        "the list replaced nginx's"
    );
    assert_eq!(label("/b/", b"text/html"), None, "off");
    // `off` in any case, as every setting takes it (found by review: `Off` was a charset).
    assert_eq!(label("/b2/", b"text/html"), None, "Off");
    assert_eq!(label("/c/", b"application/json").as_deref(), Some("koi8-r"));
    assert_eq!(label("/d/", b"text/css").as_deref(), Some("utf-8"));
    assert_eq!(label("/d/", b"application/json"), None);

    let route = "[[routes]]\npath = \"/\"\nupstream = \"app\"\n";
    let group = "[upstreams.app]\nservers = [\"unix:/a\"]\n";
    assert_refused(
        &format!("charset = \"utf 8\"\n{group}{route}"),
        "charset",
        "not a charset name",
    );
    assert_refused(
        &format!("charset = \"utf-8\"\ncharset_types = [\"html\"]\n{group}{route}"),
        "charset_types",
        "not a media type",
    );
    // Each inherited on its own, as nginx's: types at the top, the name in a route.
    let split = "charset_types = [\"application/json\"]\n[upstreams.app]\n\
                 servers = [\"unix:/a\"]\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n\
                 charset = \"utf-8\"\n";
    let config = load(split, &[]).unwrap();
    let charset = config
        .routes
        .iter()
        .find(|r| r.path == "/")
        .unwrap()
        .charset
        .clone();
    assert_eq!(
        charset.and_then(|c| c.for_answer(200, b"application/json").map(str::to_owned)),
        Some("utf-8".to_owned())
    );
    // A bad top-level list is named at the top, not in the route that uses it.
    let err = load(
        &format!(
            "charset = \"off\"\ncharset_types = [\"html\"]\n{group}{route}charset = \"utf-8\"\n"
        ),
        &[],
    )
    .unwrap_err();
    assert!(
        err.contains("charset_types") && !err.contains("routes[0]"),
        "{err}"
    );
    assert_refused(
        "[[routes]]\npath = \"/old/\"\nredirect = { to = \"/new/\" }\ncharset = \"utf-8\"\n",
        "routes[0].charset",
        "does not apply",
    );
}

#[test]
fn a_names_addresses_are_one_server_as_written_for_the_app_to_accept_on() {
    let text = "upstream = [\"http://localhost:8000\", \"http://127.0.0.1:8001\", \
                \"http://127.0.0.1:8002 down\"]\n\
                [upstreams.again]\nservers = [\"http://localhost:8000 weight=2\"]\n";
    let config = Config::from_file_text(text, std::path::Path::new("ringway.toml")).unwrap();
    let tcp = |s: &str| UpstreamAddr::Tcp(s.parse().unwrap());
    assert_eq!(config.groups[0].servers.len(), 4);
    // Not the one marked down.
    assert_eq!(
        config.servers_as_written(),
        [
            vec![tcp("127.0.0.1:8000"), tcp("[::1]:8000")],
            vec![tcp("127.0.0.1:8001")],
        ]
    );
}

#[test]
fn limit_rate_is_set_at_the_top_over_a_flag_and_per_route() {
    let text = "upstream = [\"unix:/a\"]\nlimit_rate = \"100k\"\nlimit_rate_after = \"1m\"\n\
                [[routes]]\npath = \"/media/\"\nupstream = \"default\"\nlimit_rate = 0\n\
                [[routes]]\npath = \"/big/\"\nupstream = \"default\"\nlimit_rate = 512\n";
    let config = load(text, &[]).unwrap();
    let limits = |path| route(&config, path).limits;
    assert_eq!(limits("/x").limit_rate, 100 << 10);
    assert_eq!(limits("/x").limit_rate_after, 1 << 20);
    assert_eq!(limits("/media/a").limit_rate, 0, "0 lifts the limit");
    assert_eq!(
        limits("/media/a").limit_rate_after,
        1 << 20,
        "the rest inherited"
    );
    assert_eq!(limits("/big/a").limit_rate, 512);
    let config = load("upstream = [\"unix:/a\"]\n", &["--limit-rate", "2m"]).unwrap();
    assert_eq!(route(&config, "/").limits.limit_rate, 2 << 20);
    assert_eq!(route(&config, "/").limits.limit_rate_after, 0);
    assert_refused(
        "upstream = [\"unix:/a\"]\nlimit_rate = \"fast\"\n",
        "limit_rate",
        "fast",
    );
}

#[test]
fn a_group_balances_round_robin_by_least_conn_or_by_ip_hash() {
    let group = |lines: &str| {
        format!("[upstreams.app]\n{lines}\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n")
    };
    let config = load(&group("servers = [\"unix:/a\", \"unix:/b\"]"), &[]).unwrap();
    assert_eq!(config.groups[0].balance, crate::config::Balance::RoundRobin);
    let hashed = group("servers = [\"unix:/a\", \"unix:/b weight=2\"]\nbalance = \"ip_hash\"");
    let config = load(&hashed, &[]).unwrap();
    assert_eq!(config.groups[0].balance, crate::config::Balance::IpHash);
    // With backups, as nginx's least_conn takes them.
    let least = group("servers = [\"unix:/a\", \"unix:/b backup\"]\nbalance = \"least_conn\"");
    let config = load(&least, &[]).unwrap();
    assert_eq!(config.groups[0].balance, crate::config::Balance::LeastConn);
    assert_refused(
        &group("servers = [\"unix:/a\"]\nbalance = \"hash\""),
        "upstreams.app.balance",
        "expected \"round_robin\", \"least_conn\" or \"ip_hash\"",
    );
    assert_refused(
        &group("servers = [\"unix:/a\", \"unix:/b backup\"]\nbalance = \"ip_hash\""),
        "upstreams.app.balance",
        "ip_hash takes no `backup` server",
    );
}

/// nginx's `index` is `index.html` with no directive; beside a fallback (`try_files $uri
/// @app`, `try_files $uri /index.html`) nginx never uses it; `index = ""` (or `[]`) names
/// none; a list is tried in its order, as nginx's `index index.html index.htm;`.
#[test]
fn a_static_route_has_nginx_s_index_unless_it_falls_back_to_a_group_or_names_none() {
    for (extra, want) in [
        ("", &["index.html"][..]),
        ("index = \"home.htm\"\n", &["home.htm"]),
        ("index = \"\"\n", &[]),
        ("index = []\n", &[]),
        (
            "index = [\"index.html\", \"index.htm\"]\n",
            &["index.html", "index.htm"],
        ),
        ("fallback = \"default\"\n", &[]),
        (
            "fallback = \"default\"\nindex = \"index.html\"\n",
            &["index.html"],
        ),
        ("fallback = \"/s/spa.html\"\n", &[]),
    ] {
        let config = load(
            &format!(
                "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/s/\"\nstatic = \"/srv\"\n\
                 {extra}"
            ),
            &[],
        )
        .unwrap();
        let Action::Static(files) = &route(&config, "/s/").action else {
            panic!("a static route");
        };
        assert_eq!(files.index, want, "{extra}");
    }
}

/// An error names the key inside its table, and a flag by its own name (found by review:
/// `gzip in FILE` for a bad `level`, `--tls-redirect-http`, which does not exist, and the
/// file blamed for `--hsts`).
#[test]
fn errors_name_the_key_in_its_table_and_the_flag_as_spelt() {
    let base = "upstream = [\"unix:/a\"]\n";
    for (table, key) in [
        ("[gzip]\nlevel = \"high\"\n", "gzip.level"),
        (
            "[tls]\nhandshake_timeout = \"4q\"\n",
            "tls.handshake_timeout",
        ),
        ("[app]\nworkers = \"two\"\n", "app.workers"),
    ] {
        let err = load(&format!("{base}{table}"), &[]).unwrap_err();
        assert!(err.contains(key), "{table}→ {err}");
    }
    let pair = [
        "--tls-cert",
        "/etc/tls/c.pem",
        "--tls-key",
        "/etc/tls/c.key",
    ];
    let hsts = ["--tls-listen", "127.0.0.1:8443", "--hsts", "max-age=1\u{1}"];
    let err = load(base, &[&pair[..], &hsts].concat()).unwrap_err();
    assert!(err.starts_with("--hsts: "), "{err}");
    let clash = ["--tls-listen", "127.0.0.1:8080"];
    let with_listen = format!("{base}listen = [\"127.0.0.1:8080\"]\n");
    let err = load(&with_listen, &[&pair[..], &clash].concat()).unwrap_err();
    assert!(err.starts_with("--tls-listen: "), "{err}");
    let flag = super::validate::tls_flag;
    assert_eq!(flag("redirect_http").as_deref(), Some("--redirect-http"));
    assert_eq!(flag("listen").as_deref(), Some("--tls-listen"));
    assert_eq!(flag("certificates"), None);
}

/// An exact route's one file is typed by its path's last segment, or by its own name when
/// the path ends in `/` (found by review: `path = "/"` served a page as octet-stream);
/// `index = ""` says no index there too.
#[test]
fn a_one_file_route_is_typed_by_its_path_or_its_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("landing.html"), "<p>hi</p>").unwrap();
    std::fs::write(dir.path().join("fav.png"), "png").unwrap();
    for (path, file, extra, want) in [
        ("/", "landing.html", "", "landing.html"),
        ("/favicon.ico", "fav.png", "", "favicon.ico"),
        ("/favicon.ico", "fav.png", "index = \"\"\n", "favicon.ico"),
    ] {
        let config = load(
            &format!(
                "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"{path}\"\nexact = true\n\
                 static = '{}'\n{extra}",
                dir.path().join(file).display()
            ),
            &[],
        )
        .unwrap();
        let Action::Static(files) = &route(&config, path).action else {
            panic!("a static route");
        };
        let one = files.file.as_ref().expect("one file");
        assert_eq!((one.name.as_str(), one.typed_as.as_str()), (file, want));
    }
}

/// A host name may have `_`, as a request's Host may (a docker-compose service name) and
/// as nginx's `server_name` takes it (found by review: `my_app` was refused).
#[test]
fn host_names_take_underscores() {
    let config = load(
        "upstream = [\"unix:/a\"]\nserver_name = \"my_app\"\nhosts = [\"my_app\", \"*.my_app\"]\n",
        &[],
    )
    .unwrap();
    assert_eq!(config.server_name.as_deref(), Some("my_app"));
    assert!(config.serves_host(Some(b"my_app:8000")));
}

/// nginx's `deny` lists: a block list (`deny 1.2.3.4; allow all;`), `deny all;`, and an
/// exception inside a broader range of the other list; what cannot be decided is refused.
#[test]
fn deny_lists_are_read_and_a_range_in_both_lists_is_refused() {
    use crate::routes::Access::{Allowed, Denied, NoRule};
    let at = |lists: &str, ip: &str| {
        let config = load(
            &format!("upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/a/\"\nupstream = \"default\"\n{lists}"),
            &[],
        )
        .unwrap();
        route(&config, "/a/").access_of(ip.parse().unwrap())
    };
    let block = "deny = [\"192.0.2.7\", \"198.51.100.0/24\"]\n";
    assert_eq!(at(block, "192.0.2.7"), Denied);
    assert_eq!(at(block, "198.51.100.9"), Denied);
    assert_eq!(
        at(block, "::ffff:198.51.100.9"),
        Denied,
        "a mapped peer is its IPv4"
    );
    assert_eq!(at(block, "192.0.2.8"), NoRule);
    assert_eq!(at(block, "2001:db8::1"), NoRule);
    let everyone = "deny = [\"all\"]\n";
    assert_eq!(at(everyone, "127.0.0.1"), Denied);
    assert_eq!(at(everyone, "::1"), Denied);
    // `allow 10.1.1.1; deny 10.0.0.0/8; allow all;`, and `deny 10.9.0.0/16; allow
    // 10.0.0.0/8; deny all;`.
    let exception = "allow = [\"10.1.1.1\", \"all\"]\ndeny = [\"10.0.0.0/8\"]\n";
    assert_eq!(at(exception, "10.1.1.1"), Allowed);
    assert_eq!(at(exception, "10.1.1.2"), Denied);
    assert_eq!(at(exception, "192.0.2.1"), Allowed);
    let hole = "allow = [\"10.0.0.0/8\"]\ndeny = [\"10.9.0.0/16\"]\n";
    assert_eq!(at(hole, "10.9.0.1"), Denied);
    assert_eq!(at(hole, "10.8.0.1"), Allowed);
    assert_eq!(
        at(hole, "192.0.2.1"),
        Denied,
        "outside an allow list: nginx's deny all"
    );
    let base = "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/a/\"\nupstream = \"default\"\n";
    assert_refused(&format!("{base}deny = []\n"), "deny", "refuses no one");
    for (allow, deny) in [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("all", "all"),
        ("all", "0.0.0.0/0"),
        ("::/0", "all"),
    ] {
        assert_refused(
            &format!("{base}allow = [\"{allow}\"]\ndeny = [\"{deny}\"]\n"),
            "deny",
            "is in `allow` too",
        );
    }
    assert_eq!(
        at("allow = [\"0.0.0.0/0\"]\ndeny = [\"::/0\"]\n", "192.0.2.1"),
        Allowed
    );
    assert_refused(&format!("{base}deny = [\"everyone\"]\n"), "deny", "or all");
}

/// A route's `referers`: `server_names` are its own `hosts`, else the top level's; its
/// status 403 unless it names one; refusing unless it is a dry run.
#[test]
fn referers_take_the_route_s_names_else_the_top_level_s() {
    let config = load(
        "upstream = [\"unix:/a\"]\nhosts = [\"example.com\", \"*.example.org\", \"cdn.example.net\"]\n\
         [[routes]]\npath = \"/img/\"\nupstream = \"default\"\n\
         referers = { valid = [\"server_names\"] }\n\
         [[routes]]\npath = \"/cdn/\"\nhosts = [\"example.com\", \"cdn.example.net\"]\n\
         upstream = \"default\"\n\
         referers = { valid = [\"none\", \"server_names\"], status = 444, dry_run = true }\n",
        &[],
    )
    .unwrap();
    let img = route(&config, "/img/");
    let check = img.referers.as_ref().unwrap();
    assert!(check.valid.allow(Some(b"https://www.example.org/")));
    assert!(!check.valid.allow(Some(b"https://example.net/")));
    assert!(!check.valid.allow(None));
    assert_eq!((check.status, check.dry_run), (403, false));
    let cdn = config.routes.iter().find(|r| r.path == "/cdn/").unwrap();
    let check = cdn.referers.as_ref().unwrap();
    assert!(check.valid.allow(Some(b"https://cdn.example.net/")));
    assert!(!check.valid.allow(Some(b"https://www.example.org/")));
    assert!(check.valid.allow(None));
    assert_eq!((check.status, check.dry_run), (444, true));
    assert!(route(&config, "/other").referers.is_none());
}

/// `cookie_flags`, `cookie_domain`, `cookie_path` and `location_rewrite` at the top go to
/// every route without its own, each key on its own (as nginx inherits each
/// `proxy_cookie_*` and `proxy_redirect`); a route's
/// replaces the top level's, `[]` for none; a route that reaches no app has nothing to
/// apply them to; a bad rule is refused with its key.
#[test]
fn cookie_rules_are_inherited_key_by_key_replaced_and_checked() {
    let text = |route: &str| {
        format!(
            "upstream = [\"unix:/a\"]\ncookie_flags = [\"~ secure\"]\n\
             cookie_domain = [\"localhost example.org\"]\ncookie_path = [\"/ /app/\"]\n\
             [[routes]]\npath = \"/api/\"\nupstream = \"default\"\n{route}\n"
        )
    };
    let rewritten = |config: &Config, path: &str| {
        route(config, path)
            .rewrites
            .as_ref()
            .and_then(|rules| {
                (rules.cookies).rewrite(b"id=1; Domain=localhost; Path=/", &|_, _| {})
            })
            .map(|v| String::from_utf8(v).unwrap())
    };
    let all = "id=1; Domain=example.org; Path=/app/; Secure";
    let config = load(&text(""), &[]).unwrap();
    assert_eq!(rewritten(&config, "/api/").as_deref(), Some(all));
    assert_eq!(rewritten(&config, "/x").as_deref(), Some(all));
    let own = load(&text("cookie_flags = [\"id httponly\"]"), &[]).unwrap();
    assert_eq!(
        rewritten(&own, "/api/").as_deref(),
        Some("id=1; Domain=example.org; Path=/app/; HttpOnly"),
        "its own flags, the top level's domain and path"
    );
    let own_path = load(&text("cookie_path = [\"/ /api/\"]"), &[]).unwrap();
    assert_eq!(
        rewritten(&own_path, "/api/").as_deref(),
        Some("id=1; Domain=example.org; Path=/api/; Secure")
    );
    let none = load(
        &text("cookie_flags = []\ncookie_domain = []\ncookie_path = []"),
        &[],
    )
    .unwrap();
    assert_eq!(rewritten(&none, "/api/"), None);
    assert!(
        route(&none, "/api/").rewrites.is_none(),
        "no rules: nothing to run"
    );
    assert_refused(
        &text("cookie_flags = [\"~ secured\"]"),
        "routes[0].cookie_flags",
        "is not a flag",
    );
    assert_refused(
        &text("cookie_path = [\"/\"]"),
        "routes[0].cookie_path",
        "PATTERN REPLACEMENT",
    );
    let location = |config: &Config, path: &str| {
        route(config, path).rewrites.as_ref().and_then(|rules| {
            (rules.locations)
                .rewrite(b"/login", &|_, _| {})
                .map(|v| String::from_utf8(v).unwrap())
        })
    };
    let top_location = load(
        &format!(
            "location_rewrite = [\"/ /app/\"]\n{}",
            text("cookie_flags = []")
        ),
        &[],
    )
    .unwrap();
    assert_eq!(
        location(&top_location, "/api/").as_deref(),
        Some("/app/login"),
        "inherited beside a route's own cookie_flags"
    );
    let own_location = load(&text("location_rewrite = [\"/ /api/\"]"), &[]).unwrap();
    assert_eq!(
        location(&own_location, "/api/").as_deref(),
        Some("/api/login")
    );
    assert_eq!(location(&own_location, "/x").as_deref(), None);
    assert_refused(
        &text("location_rewrite = [\"default\"]"),
        "routes[0].location_rewrite",
        "the client's Host",
    );
    assert_refused(
        "upstream = [\"unix:/a\"]\ncookie_flags = [\"id\"]\n",
        "cookie_flags",
        "no flag",
    );
    assert_refused(
        "upstream = [\"unix:/a\"]\ncookie_domain = [\"~( x\"]\n",
        "cookie_domain",
        "is no regex",
    );
    for key in [
        "cookie_flags",
        "cookie_domain",
        "cookie_path",
        "location_rewrite",
    ] {
        assert_refused(
            &format!(
                "upstream = [\"unix:/a\"]\n[[routes]]\npath = \"/old/\"\n\
                 redirect = {{ to = \"/new/\" }}\n{key} = [\"~ secure\"]\n"
            ),
            &format!("routes[0].{key}"),
            "does not apply",
        );
    }
}
