//! The deployment files checked by the tools their users run: `systemd-analyze verify` for
//! deploy/systemd/ringway.service, `kubernetes-validate --strict` for deploy/kubernetes/. The
//! validator has no schema for the Prometheus Operator's PodMonitor (a CRD): it says so and
//! passes it, so the test checks that resource against the Deployment itself (it has to
//! select the pods and name a port they have), and never counts the warning as a pass.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ringway_tests::command::status_and_output as run;
use ringway_tests::tls::tool;
use ringway_tests::{Req, Ringway, paths, roundtrip};
use serde_json::Value;

fn deploy_dir(sub: &str) -> PathBuf {
    paths::workspace_root().join("deploy").join(sub)
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let unit = fs::read_to_string(deploy_dir("systemd").join("ringway.service"))
        .expect("read deploy/systemd/ringway.service");
    assert!(
        unit.lines()
            .any(|l| l == "ExecReload=/bin/kill -HUP $MAINPID"),
        "reload is not wired to SIGHUP:\n{unit}"
    );
    // An [app] is stopped by ringway after its drain, so systemd signals ringway alone.
    assert!(
        unit.lines().any(|l| l == "KillMode=mixed"),
        "systemd would signal the app with ringway:\n{unit}"
    );
    // A reload checks the config first, so that `systemctl reload` fails on a bad one.
    assert!(
        unit.lines()
            .any(|l| l
                == "ExecReload=/usr/local/bin/ringway --check-config --config /etc/ringway.toml"),
        "reload does not check the config first:\n{unit}"
    );
    // verify insists that the binaries exist: the installed path is pointed at the binary
    // under test, everything else is verified as shipped.
    let installed = "=/usr/local/bin/ringway ";
    assert_eq!(unit.matches(installed).count(), 2, "{unit}");
    let bin = paths::ringway_bin();
    let here = unit.replace(installed, &format!("={} ", bin.display()));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ringway.service");
    fs::write(&path, here).expect("write the unit");
    let (ok, out) = run(Command::new(tool("systemd-analyze", "systemd"))
        .args(["verify", "--man=no"])
        .arg(&path));
    assert!(ok, "systemd-analyze verify failed:\n{out}");
    assert!(
        out.trim().is_empty(),
        "systemd-analyze verify warned:\n{out}"
    );
}

/// The YAML documents of a file, as JSON (read by PyYAML, which kubernetes-validate brings
/// into the test venv).
fn yaml_documents(path: &Path) -> Vec<Value> {
    let python = paths::venv().join("bin/python");
    let (ok, out) = run(Command::new(python)
        .arg("-c")
        .arg(
            "import json, sys, yaml\n\
         print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
        )
        .arg(path));
    assert!(ok, "reading {}:\n{out}", path.display());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(deploy_dir("kubernetes"))
        .expect("read deploy/kubernetes")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Every resource in deploy/kubernetes, by kind.
fn resources() -> Vec<Value> {
    manifests().iter().flat_map(|p| yaml_documents(p)).collect()
}

fn one_of_kind(resources: &[Value], kind: &str) -> Value {
    let found: Vec<&Value> = resources.iter().filter(|r| r["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} expected: {found:?}");
    found[0].clone()
}

#[test]
fn kubernetes_manifests_pass_strict_validation() {
    let files = manifests();
    let validator = paths::venv().join("bin/kubernetes-validate");
    assert!(
        validator.is_file(),
        "{} is missing: tests/apps/requirements.txt lists it (cargo xtask test installs it)",
        validator.display()
    );
    let (ok, out) = run(Command::new(&validator).arg("--strict").args(&files));
    assert!(ok, "kubernetes-validate --strict:\n{out}");
    for resource in resources() {
        let kind = resource["kind"].as_str().expect("kind").to_owned();
        let name = resource["metadata"]["name"].as_str().expect("name");
        let passed = format!("passed for resource {}/{name}", kind.to_lowercase());
        if resource["apiVersion"] == "monitoring.coreos.com/v1" {
            // A CRD: the validator has no schema and says so (checked below instead).
            assert!(
                out.contains(&format!("Couldn't find schema for kind {kind}")),
                "{out}"
            );
        } else {
            assert!(out.contains(&passed), "{kind}/{name} not validated:\n{out}");
        }
    }
    assert!(
        !out.contains("ERROR"),
        "kubernetes-validate reported errors:\n{out}"
    );
}

#[test]
fn pod_monitor_scrapes_the_deployments_metrics_port() {
    let all = resources();
    let deployment = one_of_kind(&all, "Deployment");
    let monitor = one_of_kind(&all, "PodMonitor");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("PodMonitor spec.selector.matchLabels");
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(
            &pod_labels[key], value,
            "the PodMonitor selects {key}={value}, the pods have {pod_labels}"
        );
    }
    let ports: Vec<&Value> = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .collect();
    let endpoints = monitor["spec"]["podMetricsEndpoints"]
        .as_array()
        .expect("PodMetricsEndpoints");
    assert!(!endpoints.is_empty());
    for endpoint in endpoints {
        assert!(
            ports.iter().any(|p| p["name"] == endpoint["port"]),
            "the PodMonitor scrapes port {}, the pod has {ports:?}",
            endpoint["port"]
        );
        assert_eq!(endpoint["path"], "/metrics");
    }
}

/// The port and the drain the Deployment assumes are the ones ringway's config sets.
#[test]
fn deployment_matches_ringways_config() {
    let all = resources();
    let deployment = one_of_kind(&all, "Deployment");
    let config_map = one_of_kind(&all, "ConfigMap");
    let toml = config_map["data"]["ringway.toml"]
        .as_str()
        .expect("ringway.toml in the ConfigMap");
    let key = |name: &str| -> String {
        toml.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .trim()
                    .strip_prefix('=')?
                    .trim()
                    .into()
            })
            .map(|v: &str| v.trim_matches('"').to_owned())
            .unwrap_or_else(|| panic!("{name} not set in ringway.toml:\n{toml}"))
    };
    let metrics_port: u64 = key("metrics")
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("metrics = \"IP:PORT\"");
    let drain: u64 = key("shutdown_timeout")
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .expect("shutdown_timeout in seconds");

    let pod = &deployment["spec"]["template"]["spec"];
    let ringway = pod["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == "ringway")
        .expect("a container named ringway");
    let metrics = ringway["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("a port named metrics");
    assert_eq!(metrics["containerPort"], metrics_port);
    assert_eq!(ringway["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(ringway["livenessProbe"]["httpGet"]["path"], "/healthz");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(ringway[probe]["httpGet"]["port"], "metrics", "{probe}");
    }
    assert_eq!(
        ringway["securityContext"]["seccompProfile"]["type"],
        "Localhost"
    );
    assert!(
        ringway["securityContext"]["seccompProfile"]["localhostProfile"]
            .as_str()
            .is_some_and(|p| p.ends_with("/seccomp-io_uring.json")),
        "{}",
        ringway["securityContext"]
    );
    // Docker's profile, which the image test runs with and the pod's is made from (below),
    // allows io_uring.
    let profile: Value = serde_json::from_str(
        &fs::read_to_string(paths::workspace_root().join("docker/seccomp-io_uring.json"))
            .expect("docker/seccomp-io_uring.json"),
    )
    .expect("the seccomp profile is JSON");
    let allowed: Vec<&str> = profile["syscalls"]
        .as_array()
        .expect("syscalls")
        .iter()
        .filter(|rule| rule["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|rule| rule["names"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    for call in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
        assert!(allowed.contains(&call), "the profile allows {call}");
    }

    let sleep = |container: &Value| -> u64 {
        let command = &container["lifecycle"]["preStop"]["exec"]["command"];
        assert_eq!(command[0], "sleep", "{command}");
        command[1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("sleep SECONDS")
    };
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    let ringway_done = sleep(ringway) + drain;
    assert!(
        grace > ringway_done,
        "grace {grace}s does not cover preStop + shutdown_timeout ({ringway_done}s)"
    );
    // The app container keeps serving until ringway has drained.
    for app in pod["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter(|c| c["name"] != "ringway")
    {
        let app_stops = sleep(app);
        assert!(
            app_stops > ringway_done && grace > app_stops,
            "{} stops after {app_stops}s: ringway drains until {ringway_done}s, grace {grace}s",
            app["name"]
        );
    }
}

/// The ConfigMap's ringway.toml is a config ringway accepts as it is (addresses moved to free
/// loopback ports by flags, which win over the file), and with the probes off it exports no
/// probe state for the probes-down alert to fire on.
#[test]
fn config_map_is_a_config_ringway_runs() {
    let all = resources();
    let config_map = one_of_kind(&all, "ConfigMap");
    let toml = config_map["data"]["ringway.toml"]
        .as_str()
        .expect("ringway.toml in the ConfigMap");
    let ringway = Ringway::with_config(toml)
        .arg("--metrics", "127.0.0.1:0")
        .start();
    let metrics = ringway.metrics_addr();
    assert_eq!(roundtrip(metrics, &Req::get("/healthz")).status, 200);
    // Nothing listens on the pod's uWSGI socket here: not ready, and it says why.
    let ready = roundtrip(metrics, &Req::get("/readyz"));
    assert_eq!(ready.status, 503, "{ready:?}");
    let text = roundtrip(metrics, &Req::get("/metrics")).text();
    assert!(text.contains("ringway_requests_total"), "{text}");
    assert!(!text.contains("ringway_ebpf_up"), "{text}");
}

/// The Kubernetes seccomp profile is Docker's (`docker/seccomp-io_uring.json`, the default
/// plus io_uring) with its conditions resolved for a container holding no capability on an
/// amd64 or arm64 node: containerd reads a Localhost profile in the OCI form, which has no
/// conditions, and would take every conditional rule as an unconditional allow (`bpf`,
/// `unshare`, `mount`... for a container with no capabilities). It lies outside
/// deploy/kubernetes/, whose every file `kubectl apply -f` takes for a manifest.
#[test]
fn the_kubernetes_seccomp_profile_is_docker_s_resolved_for_no_capabilities() {
    let read = |path: PathBuf| -> Value {
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let docker = read(paths::workspace_root().join("docker/seccomp-io_uring.json"));
    let shipped = read(deploy_dir("seccomp").join("seccomp-io_uring.json"));
    let listed = |v: &Value, key: &str| -> Vec<String> {
        v.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Docker matches a rule's arches against the node's own: amd64 or arm64 here. One
    // file serves both, so a rule kept for one must not be one the other excludes.
    let nodes = ["amd64", "arm64"];
    let applies_on = |rule: &Value, node: &str| {
        let (inc, exc) = (&rule["includes"], &rule["excludes"]);
        let inc_arches = listed(inc, "arches");
        listed(inc, "caps").is_empty()
            && (inc_arches.is_empty() || inc_arches.iter().any(|a| a == node))
            && !listed(exc, "arches").iter().any(|a| a == node)
    };
    let known = ["caps", "arches", "minKernel"];
    let mut rules = Vec::new();
    for rule in docker["syscalls"].as_array().expect("syscalls") {
        for condition in ["includes", "excludes"] {
            if let Some(keys) = rule[condition].as_object() {
                for key in keys.keys() {
                    assert!(
                        known.contains(&key.as_str()),
                        "a condition to resolve: {key}"
                    );
                }
            }
        }
        // io_uring needs Linux 5.1: a rule for an older kernel holds on every node.
        if let Some(min) = rule["includes"]["minKernel"].as_str() {
            let major: u32 = min
                .split('.')
                .next()
                .and_then(|m| m.parse().ok())
                .expect("a version");
            assert!(major <= 5, "a rule for kernels from {min}");
        }
        let on: Vec<bool> = nodes.iter().map(|n| applies_on(rule, n)).collect();
        if !on.contains(&true) {
            continue;
        }
        // Kept for one node only: fine for an allow of that node's own calls (`arch_prctl`),
        // not for a rule that narrows what the other node's default allows.
        if on.contains(&false) {
            assert_eq!(rule["action"], "SCMP_ACT_ALLOW", "{rule}");
            assert!(listed(&rule["excludes"], "arches").is_empty(), "{rule}");
        }
        let mut kept = serde_json::Map::new();
        for key in ["names", "action", "args", "errnoRet"] {
            if let Some(v) = rule.get(key).filter(|v| !v.is_null()) {
                kept.insert(key.to_owned(), v.clone());
            }
        }
        rules.push(Value::Object(kept));
    }
    assert_eq!(shipped["syscalls"], Value::Array(rules), "the rules");
    assert_eq!(shipped["defaultAction"], docker["defaultAction"]);
    assert_eq!(shipped["defaultErrnoRet"], docker["defaultErrnoRet"]);
    let arches = listed(&shipped, "architectures");
    for arch in ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"] {
        assert!(arches.contains(&arch.to_owned()), "{arches:?}");
    }
    // No condition left for containerd to drop, and io_uring allowed.
    let text = shipped.to_string();
    assert!(!text.contains("includes") && !text.contains("excludes"));
    assert!(text.contains("io_uring_setup"), "io_uring allowed");
    // The Deployment loads it; kubectl finds no file but manifests beside it.
    let deployment = one_of_kind(&resources(), "Deployment");
    let profiles: Vec<String> = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["securityContext"]["seccompProfile"]["localhostProfile"].as_str())
        .map(str::to_owned)
        .collect();
    assert_eq!(profiles, ["ringway/seccomp-io_uring.json"]);
    let strays: Vec<PathBuf> = fs::read_dir(deploy_dir("kubernetes"))
        .expect("read deploy/kubernetes")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "yml"))
        .collect();
    assert!(
        strays.is_empty(),
        "kubectl would take these for manifests: {strays:?}"
    );
}
