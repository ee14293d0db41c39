//! The container image of `cargo xtask image` runs under podman as a fleet
//! would run it: host PID and network namespaces, the host's BTF and
//! tracefs, and sees a drop the test causes in a namespace pair it creates.
//! Once `--privileged` (the simplest way), once with only the capabilities
//! deploy/daemonset.yaml grants, so the manifest's list is known to work.
//!
//! `cargo xtask test` builds the image before this tier and names it in
//! `NETTRACE_TEST_IMAGE`; run by hand, the test uses
//! `localhost/nettrace:latest` (build it with `cargo xtask image`). Without
//! podman the test is skipped with a line saying so (failed under CI).
//!
//! podman runs only as `podman --runtime runc … --ulimit …` on these
//! machines: crun fails on their cgroup set-up, and root may not raise the
//! default ulimits (no CAP_SYS_RESOURCE).

use std::{
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::Deserialize as _;
use serde_yaml::Value;

use crate::util::{self, Pair, assert_drop};

/// The image under test.
fn image() -> String {
    std::env::var("NETTRACE_TEST_IMAGE").unwrap_or_else(|_| "localhost/nettrace:latest".into())
}

/// The pod template of deploy/daemonset.yaml's DaemonSet.
fn daemonset_pod() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/daemonset.yaml"))
        .expect("deploy/daemonset.yaml");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("YAML"))
        .find(|v| v["kind"] == "DaemonSet")
        .expect("a DaemonSet in deploy/daemonset.yaml")["spec"]["template"]["spec"]
        .clone()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// podman's flags for what the DaemonSet's container is given: its
/// capabilities (after dropping all), seccomp profile, read-only root and
/// host mounts, read from the manifest itself so the two cannot drift
/// apart.
fn daemonset_podman_args(pod: &Value) -> Vec<String> {
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(strs(&security["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(security["privileged"], false);
    let mut args = vec![
        "--cap-drop".to_string(),
        "all".into(),
        "--cap-add".into(),
        strs(&security["capabilities"]["add"]).join(","),
    ];
    if security["seccompProfile"]["type"] == "Unconfined" {
        args.extend(["--security-opt".into(), "seccomp=unconfined".into()]);
    }
    if security["readOnlyRootFilesystem"] == true {
        args.push("--read-only".into());
    }
    for mount in container["volumeMounts"].as_sequence().expect("volumeMounts") {
        let name = &mount["name"];
        let volume = pod["volumes"]
            .as_sequence()
            .expect("volumes")
            .iter()
            .find(|v| &v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name:?}"));
        let at = mount["mountPath"].as_str().expect("mountPath");
        if let Some(host) = volume["hostPath"]["path"].as_str() {
            let ro = if mount["readOnly"] == true { ":ro" } else { "" };
            args.extend(["--volume".into(), format!("{host}:{at}{ro}")]);
        } else {
            args.extend(["--tmpfs".into(), at.to_string()]);
        }
    }
    args
}

/// A container running the image, its stdout collected line by line;
/// removed by name on drop (killing the podman client alone could leave
/// the container running).
struct Container {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Container {
    fn run(name: &str, podman_args: &[&str], nettrace_args: &[&str]) -> Self {
        let _ = Command::new("podman")
            .args(["rm", "-f", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let mut child = Command::new("podman")
            .args(["--runtime", "runc", "run", "--rm", "--name", name])
            .args([
                "--pid",
                "host",
                "--network",
                "host",
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=4096:4096",
                "--env",
                "NO_COLOR=1",
            ])
            .args(podman_args)
            .arg(image())
            .args(nettrace_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn podman");
        let (lines, stderr) = util::collect_output(&mut child);
        Container {
            name: name.to_string(),
            child,
            lines,
            stderr,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn output(&self) -> String {
        format!(
            "stdout: {:#?}\nstderr: {}",
            self.lines(),
            self.stderr.lock().unwrap()
        )
    }

    /// Waits for a line containing `needle` while `poke` runs every half
    /// second (traffic until the tracer has seen it), and for the exit.
    fn expect_exit_after(&mut self, needle: &str, mut poke: impl FnMut()) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(200));
                assert!(st.success(), "podman run exited {st}\n{}", self.output());
                return self
                    .lines()
                    .into_iter()
                    .find(|l| l.contains(needle))
                    .unwrap_or_else(|| panic!("no {needle:?}\n{}", self.output()));
            }
            assert!(
                Instant::now() < deadline,
                "the container did not finish within 90 s\n{}",
                self.output()
            );
            if self.lines().iter().any(|l| l == "begin trace...") {
                poke();
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("podman")
                .args(["rm", "-f", "-t", "0", &self.name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Container {
    /// Polls `done` every half second; panics with the output if it does
    /// not hold within 60 s or the container exits.
    fn wait_until(&mut self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("the container exited ({st}) before {what}\n{}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within 60 s\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Whether the image test can run: podman installed (else skipped, failed
/// under CI), and the image present (else a failure that says how to
/// build it).
fn ready() -> bool {
    if !util::have_tool("podman", "podman") {
        return false;
    }
    let present = Command::new("podman")
        .args(["image", "exists", &image()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        present,
        "image {} not found: build it with `cargo xtask image` (`cargo xtask test` does)",
        image()
    );
    true
}

/// The drop of a SYN to a closed port in the pair, seen from the container.
fn sees_a_drop(name: &str, podman_args: &[&str]) {
    let net = Pair::new();
    let port = 20000 + (std::process::id() % 10000) as u16;
    let ps = port.to_string();
    let mut c = Container::run(
        &format!("{name}-{}", std::process::id()),
        podman_args,
        &["--drop", "-c", "1", "-p", "tcp", "--dport", &ps, "-d", &net.b4],
    );
    let line = c.expect_exit_after("] TCP: ", || net.syn(port));
    assert!(
        line.contains(&format!("{}:", net.a4)) && line.contains(&format!("{}:{port}", net.b4)),
        "{line}"
    );
    assert_drop(&line, "NO_SOCKET", "tcp_v4_rcv+0x");
    eprintln!("{name}: {line}");
}

#[test]
fn image_runs_privileged_and_sees_a_drop() {
    if !ready() {
        return;
    }
    sees_a_drop(
        "nettrace-image-privileged",
        &["--privileged", "--volume", "/sys/kernel/btf:/sys/kernel/btf:ro"],
    );
}

/// The DaemonSet's container as podman runs it: its capabilities instead
/// of `--privileged`, its mounts, its arguments (on a free port instead of
/// 9464); the kubelet's probes answer on the paths the manifest names, and
/// a drop the test causes is counted in `/metrics`.
#[test]
fn image_runs_as_the_daemonset_runs_it() {
    if !ready() {
        return;
    }
    let pod = daemonset_pod();
    let container = &pod["containers"][0];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["hostPID"], true);
    let declared = &container["ports"][0];
    let declared_port = declared["containerPort"].as_u64().expect("containerPort");
    let port = util::free_port();
    let args: Vec<String> = strs(&container["args"])
        .into_iter()
        .map(|a| match a.strip_suffix(&format!(":{declared_port}")) {
            Some(host) => format!("{host}:{port}"),
            None => a,
        })
        .collect();
    assert!(
        args.iter().any(|a| a.ends_with(&format!(":{port}"))),
        "the DaemonSet's args {args:?} serve no metrics on its containerPort {declared_port}"
    );
    let podman = daemonset_podman_args(&pod);
    eprintln!(
        "podman flags from deploy/daemonset.yaml: {podman:?}
args: {args:?}"
    );
    let podman: Vec<&str> = podman.iter().map(String::as_str).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let net = Pair::new();
    let mut c = Container::run(
        &format!("nettrace-image-daemonset-{}", std::process::id()),
        &podman,
        &args,
    );
    // The probes, on the paths and the named port the manifest gives.
    let probe = |kind: &str| {
        let get = &container[kind]["httpGet"];
        assert_eq!(get["port"], declared["name"], "{kind}");
        get["path"].as_str().expect("probe path").to_string()
    };
    let (live, ready) = (probe("livenessProbe"), probe("readinessProbe"));
    c.wait_until("readiness", || {
        util::http_get(port, &ready).is_some_and(|r| r.0 == 200)
    });
    assert_eq!(util::http_get(port, &live).map(|r| r.0), Some(200));
    let closed = util::free_port();
    let drops = format!(
        "nettrace_packets_dropped_total{{reason=\"{}\",location=\"tcp_v4_rcv+0x",
        util::metric_reason("NO_SOCKET")
    );
    c.wait_until("a NO_SOCKET drop in /metrics", || {
        net.syn(closed);
        util::http_get(port, "/metrics").is_some_and(|(_, m)| util::sample(&m, &drops) >= 1.0)
    });
    // `kubectl delete` ends it with SIGTERM: a clean exit.
    util::sh(&["podman", "stop", "-t", "10", &c.name]);
    let st = c.child.wait().expect("podman run");
    assert!(st.success(), "{st}\n{}", c.output());
    assert!(c.lines().iter().any(|l| l == "end trace..."), "{}", c.output());
}

/// Containers named from inside the DaemonSet's container: with its
/// capabilities and `hostPID`, nettrace reads the runtimes' state through
/// `/proc/1/root`, and `--container` filters in the kernel.
#[test]
fn image_names_containers_as_the_daemonset_runs_it() {
    if !ready() || !util::have_tool("runc", "runc") {
        return;
    }
    let podman = daemonset_podman_args(&daemonset_pod());
    let podman: Vec<&str> = podman.iter().map(String::as_str).collect();
    let busybox = util::podman::Image::busybox();
    let web = util::podman::Container::start(&busybox, "nt-web");
    let port = 20000 + (std::process::id() % 10000) as u16 + 1;
    let ps = port.to_string();
    let mut c = Container::run(
        &format!("nettrace-image-attribution-{}", std::process::id()),
        &podman,
        &[
            "--drop",
            "--detail",
            "-c",
            "1",
            "-p",
            "tcp",
            "--dport",
            &ps,
            "--container",
            &web.name,
        ],
    );
    let line = c.expect_exit_after("] TCP: ", || web.connect("127.0.0.1", port));
    assert!(line.ends_with(&format!("[ctr:{}]", web.name)), "{line}");
    assert!(line.contains(&format!("netns:{} ", web.netns)), "{line}");
    eprintln!("{line}");
}
