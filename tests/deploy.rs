//! deploy/'s manifests, checked by the tools a fleet would use on them:
//! kubernetes-validate (PyPI; it carries the Kubernetes schemas, so no
//! cluster is needed) for the DaemonSet, the Kubernetes parts of the
//! PodMonitor against the same schemas (the Prometheus Operator's own kind
//! is not among them), and for the scrape configuration `promtool` and a
//! real Prometheus server whose relabelling must keep exactly the
//! DaemonSet's metrics port. Each check is also shown to fail on a broken
//! copy, and the files are checked against each other (labels, port names,
//! namespace), since that is where such examples usually go wrong.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde::Deserialize as _;
use serde_yaml::Value;

use crate::util::{self, Prometheus, Tracer, free_port, start_timeout};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(file)
}

/// Every YAML document of a deploy/ file.
fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(deploy(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
}

fn of_kind(file: &str, kind: &str) -> Value {
    documents(file)
        .into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {file}"))
}

/// kubernetes-validate: on PATH (`cargo xtask test` puts it there), else
/// where `cargo xtask setup` installs it. Missing: skipped with a line
/// saying why, failed under CI, always skipped in the VM tier.
fn kubernetes_validate() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("kubernetes-validate"))
            .find(|c| c.is_file())
    });
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|c| c.join("nettrace"));
    let in_cache = cache.and_then(|c| {
        std::fs::read_dir(c)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("kubernetes-validate-")
            })
            .map(|e| e.path().join("bin/kubernetes-validate"))
            .find(|c| c.is_file())
    });
    if let Some(found) = on_path.or(in_cache) {
        return Some(found);
    }
    util::tool_missing("kubernetes-validate", "PyPI, in a venv under ~/.cache/nettrace");
    None
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(cmd: &Path, args: &[&Path]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", cmd.display()))
}

/// A file in a fresh temp folder of this test, holding `content`.
fn scratch(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nettrace-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// Removes the temp folder of [`scratch`] on drop.
struct Scratch;

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("nettrace-deploy-{}", std::process::id())),
        );
    }
}

#[test]
fn daemonset_validates_against_the_kubernetes_schema() {
    let Some(kv) = kubernetes_validate() else {
        return;
    };
    let _cleanup = Scratch;
    let manifest = deploy("daemonset.yaml");
    let out = Command::new(&kv).arg("--strict").arg(&manifest).output().unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    for resource in [
        "namespace/nettrace",
        "serviceaccount/nettrace",
        "daemonset/nettrace",
    ] {
        assert!(
            said.contains(&format!("passed for resource {resource}")),
            "{said}"
        );
    }
    // The validator does validate: a field of the wrong type and an
    // unknown field (`--strict`) are refused.
    let original = std::fs::read_to_string(&manifest).unwrap();
    for (from, to, named) in [
        ("hostPID: true", "hostPID: all", "hostPID"),
        (
            "hostNetwork: true",
            "hostNetwork: true\n      hostNetworking: true",
            "hostNetworking",
        ),
    ] {
        assert!(original.contains(from), "{from}");
        let broken = scratch("broken.yaml", &original.replacen(from, to, 1));
        let out = Command::new(&kv).arg("--strict").arg(&broken).output().unwrap();
        let said = text(&out);
        assert!(!out.status.success(), "{to}: {said}");
        assert!(said.contains(named), "{said}");
    }
}

/// Checks `metadata` and `spec.selector` of the YAML file argv[1] against
/// the Kubernetes schemas kubernetes-validate carries (its newest strict
/// set): ObjectMeta and LabelSelector.
const KUBERNETES_PARTS: &str = r#"
import json, sys, yaml, jsonschema
from importlib import resources
from referencing import Registry, Resource
doc = yaml.safe_load(open(sys.argv[1]))
root = resources.files('kubernetes_validate') / 'kubernetes-json-schema'
ver = lambda d: tuple(int(x) for x in d.name[1:].split('-')[0].split('.'))
base = max((d for d in root.iterdir() if d.name.endswith('-local-strict')), key=ver)
load = lambda name: json.loads((base / name).read_text())
failed = False
for part, name in [('metadata', 'objectmeta-meta-v1.json'), ('spec.selector', 'labelselector-meta-v1.json')]:
    value = doc
    for k in part.split('.'):
        value = value[k]
    schema = load(name)
    registry = Resource.from_contents(load('_definitions.json')) @ (Resource.from_contents(schema) @ Registry())
    errors = list(jsonschema.Draft202012Validator(schema, registry=registry).iter_errors(value))
    for e in errors:
        print(f'{part}: {e.message}')
    failed |= bool(errors)
    if not errors:
        print(f'{part} passed against {base.name}/{name}')
sys.exit(1 if failed else 0)
"#;

#[test]
fn podmonitor_selects_the_daemonsets_pods_and_port() {
    let Some(kv) = kubernetes_validate() else {
        return;
    };
    let _cleanup = Scratch;
    let file = deploy("podmonitor.yaml");
    // kubernetes-validate knows Kubernetes' own kinds only: it says so
    // for the operator's PodMonitor, and passes the file.
    let out = run(&kv, &[Path::new("--strict"), &file]);
    assert!(out.status.success(), "{}", text(&out));
    // Its Kubernetes parts, against the same schemas, with the venv's
    // python (the one kubernetes-validate runs with).
    let python = std::fs::canonicalize(&kv).unwrap().with_file_name("python");
    let script = scratch("parts.py", KUBERNETES_PARTS);
    let out = run(&python, &[&script, &file]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("spec.selector passed"), "{}", text(&out));
    let original = std::fs::read_to_string(&file).unwrap();
    let broken = scratch("broken.yaml", &original.replace("matchLabels:", "matchLabel:"));
    let out = run(&python, &[&script, &broken]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("'matchLabel' was unexpected"),
        "{}",
        text(&out)
    );

    // It selects the DaemonSet's pods, in their namespace, on their port.
    let monitor = of_kind("podmonitor.yaml", "PodMonitor");
    let daemonset = of_kind("daemonset.yaml", "DaemonSet");
    assert_eq!(
        monitor["metadata"]["namespace"],
        daemonset["metadata"]["namespace"]
    );
    let pod_labels = daemonset["spec"]["template"]["metadata"]["labels"]
        .as_mapping()
        .expect("pod labels");
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .expect("matchLabels")
    {
        assert_eq!(
            pod_labels.get(k),
            Some(v),
            "selector {k:?}={v:?} matches no pod label"
        );
    }
    let ports: Vec<&Value> = daemonset["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .map(|p| &p["name"])
        .collect();
    for e in monitor["spec"]["podMetricsEndpoints"]
        .as_sequence()
        .expect("endpoints")
    {
        assert!(
            ports.contains(&&e["port"]),
            "{:?} is not one of {ports:?}",
            e["port"]
        );
    }
}

/// `deploy/prometheus-scrape.yml` with its Kubernetes discovery replaced
/// by a file of targets (Debian's Prometheus is built without Kubernetes
/// discovery), scraping every second.
fn with_file_discovery(targets: &Path) -> String {
    let mut config = first_document("prometheus-scrape.yml");
    config["global"]["scrape_interval"] = "1s".into();
    for job in config["scrape_configs"]
        .as_sequence_mut()
        .expect("scrape_configs")
    {
        let map = job.as_mapping_mut().expect("a scrape config");
        assert!(
            map.remove("kubernetes_sd_configs").is_some(),
            "no kubernetes_sd_configs"
        );
        let file_sd: Value = serde_yaml::from_str(&format!(
            "- files: ['{}']\n  refresh_interval: 1s\n",
            targets.display()
        ))
        .unwrap();
        map.insert("file_sd_configs".into(), file_sd);
    }
    serde_yaml::to_string(&config).unwrap()
}

fn first_document(file: &str) -> Value {
    documents(file).into_iter().next().expect("one document")
}

#[test]
fn scrape_config_keeps_only_the_daemonsets_metrics_port() {
    if !util::have_tool("prometheus", "prometheus") || !util::have_tool("promtool", "prometheus") {
        return;
    }
    let _cleanup = Scratch;
    let out = run(
        Path::new("promtool"),
        &[
            Path::new("check"),
            Path::new("config"),
            &deploy("prometheus-scrape.yml"),
        ],
    );
    let said = text(&out);
    if !out.status.success() {
        // Debian builds Prometheus without Kubernetes discovery; anything
        // else wrong with the file is a failure.
        assert!(said.contains("field kubernetes_sd_configs not found"), "{said}");
        eprintln!("promtool: this build has no Kubernetes discovery; checking the rest with file discovery");
    }

    // What Kubernetes discovery would find: the DaemonSet's pod on its
    // metrics port (a real nettrace), the same pod on another port, and
    // another app's pod.
    let daemonset = of_kind("daemonset.yaml", "DaemonSet");
    let app = daemonset["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        .as_str()
        .expect("app.kubernetes.io/name label");
    let port_name = daemonset["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"]
        .as_str()
        .expect("port name");
    let metrics_port = free_port();
    let mut t = Tracer::start(&[
        "--drop",
        "-P",
        "1",
        "--metrics",
        &format!("127.0.0.1:{metrics_port}"),
    ]);
    let target = |addr: String, app: &str, port: &str, node: &str| {
        serde_json::json!({"targets": [addr], "labels": {
            "__meta_kubernetes_pod_label_app_kubernetes_io_name": app,
            "__meta_kubernetes_pod_container_port_name": port,
            "__meta_kubernetes_pod_node_name": node,
        }})
    };
    let dir = Prometheus::dir();
    std::fs::create_dir_all(&dir).unwrap();
    let targets = dir.join("targets.json");
    let discovered = serde_json::json!([
        target(format!("127.0.0.1:{metrics_port}"), app, port_name, "node-a"),
        target(format!("127.0.0.1:{}", free_port()), app, "other", "node-a"),
        target(format!("127.0.0.1:{}", free_port()), "web", port_name, "node-b"),
    ]);
    std::fs::write(&targets, discovered.to_string()).unwrap();
    let config = with_file_discovery(&targets);
    let checked = scratch("prometheus.yml", &config);
    let out = run(
        Path::new("promtool"),
        &[Path::new("check"), Path::new("config"), &checked],
    );
    assert!(out.status.success(), "{}\n{config}", text(&out));

    let prom = Prometheus::start(&config);
    let up = prom.query_until(r#"up{job="nettrace"}"#, |r| r.values().any(|&v| v == 1.0));
    let node_of_nettrace = prom.query("nettrace_attached");
    let targets = prom.api("/api/v1/targets");
    let active = targets["activeTargets"].as_array().expect("activeTargets");
    assert_eq!(active.len(), 1, "{targets}");
    assert_eq!(active[0]["labels"]["node"], "node-a", "{targets}");
    assert_eq!(
        active[0]["labels"]["instance"],
        format!("127.0.0.1:{metrics_port}"),
        "{targets}"
    );
    assert_eq!(
        targets["droppedTargets"].as_array().map(Vec::len),
        Some(2),
        "{targets}"
    );
    assert_eq!(up.len(), 1, "{up:?}");
    assert!(
        node_of_nettrace.keys().any(|k| k.contains("node=node-a")),
        "{node_of_nettrace:?}"
    );
    eprintln!("prometheus: up {up:?}, nettrace_attached {node_of_nettrace:?}");
    t.signal(libc::SIGINT);
    assert!(t.wait_exit(start_timeout()).success());
}
