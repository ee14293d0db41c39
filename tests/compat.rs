//! Root integration tests for what C nettrace users rely on beyond the
//! output format: hooks this kernel lacks are skipped with a warning,
//! `--force`, `--btf-path`, `--libbpf-debug`.

use std::{path::PathBuf, process::Command};

use crate::util::{self, BIN, Pair, Tracer};

/// A rule pack in a temporary file, removed on drop.
struct Pack(PathBuf);

impl Pack {
    fn new(tag: &str, hooks: &str) -> Self {
        let path = std::env::temp_dir().join(format!("nettrace-{tag}-{}.yaml", std::process::id()));
        std::fs::write(
            &path,
            format!("version: 1\ngroups:\n  - name: {tag}\n    hooks: {hooks}\n"),
        )
        .unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Pack {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Hooks no kernel has: a function and a tracepoint.
const MISSING: &str =
    "[{name: nettrace_no_such_function}, {name: nettrace_no_such_tp, tp: \"skb:nettrace_no_such_tp\"}]";

fn ping(net: &Pair) {
    net.exec(&net.a, &["ping", "-c", "1", "-W", "1", &net.b4]);
}

fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("nettrace: skipping "))
        .collect()
}

#[test]
fn named_hooks_this_kernel_lacks_are_skipped_with_one_warning_each() {
    let net = Pair::new();
    let pack = Pack::new("missing", MISSING);
    let mut t = Tracer::start(&[
        "--rules",
        pack.path(),
        "-t",
        "nettrace_no_such_function,nettrace_no_such_tp,net_dev_queue,consume_skb",
        "--trace-matcher",
        "nettrace_no_such_tp,net_dev_queue",
        "--trace-free",
        "nettrace_no_such_function,consume_skb",
        "-p",
        "icmp",
        "-d",
        &net.b4,
        "-c",
        "1",
    ]);
    ping(&net);
    assert!(t.wait_exit(util::start_timeout()).success(), "{}", t.stderr());
    let stderr = t.stderr();
    assert_eq!(
        warnings(&stderr),
        [
            "nettrace: skipping nettrace_no_such_function: not in this kernel (no BTF function, no tracepoint)",
            "nettrace: skipping nettrace_no_such_tp: not in this kernel (no BTF function, no tracepoint)",
        ],
        "{stderr}"
    );
    // The rest traced the ping as usual.
    let lines = t.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("[net_dev_queue") && l.contains("ICMP: ")),
        "{lines:#?}"
    );
}

#[test]
fn nothing_attachable_and_typos_are_one_line_exit_2() {
    let pack = Pack::new("missing", MISSING);
    for (args, needle) in [
        (
            vec!["-t", "nettrace_no_such_function,nettrace_no_such_tp"],
            "no hook could be attached (nettrace_no_such_function: not in this kernel",
        ),
        // Names not in the catalogue at all stay an error, with suggestions.
        (
            vec!["-t", "nettrace_no_such_functoin"],
            "did you mean: nettrace_no_such_function",
        ),
        (
            vec![
                "-t",
                "consume_skb,nettrace_no_such_tp",
                "--trace-matcher",
                "nettrace_no_such_tp",
            ],
            "--trace-matcher: none of its hooks could be attached",
        ),
    ] {
        let out = Command::new(BIN)
            .args(["--rules", pack.path()])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {needle:?} not in {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// A hook the kernel has but that cannot be attached (a tracepoint with no
/// sk_buff): named in -t it is an error; `--force` skips it with a warning.
#[test]
fn force_skips_hooks_that_exist_but_cannot_be_attached() {
    let net = Pair::new();
    let pack = Pack::new(
        "unattachable",
        "[{name: nettrace_sched_switch, tp: \"sched:sched_switch\"}]",
    );
    let args = [
        "--rules",
        pack.path(),
        "-t",
        "nettrace_sched_switch,net_dev_queue,consume_skb",
        "-p",
        "icmp",
        "-d",
        &net.b4,
        "-c",
        "1",
    ];
    let out = Command::new(BIN).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "nettrace: cannot attach hook nettrace_sched_switch: tracepoint has no sk_buff argument (--force skips it)"
    );

    let mut t = Tracer::start(&[&args[..], &["--force"]].concat());
    ping(&net);
    assert!(t.wait_exit(util::start_timeout()).success(), "{}", t.stderr());
    let stderr = t.stderr();
    assert_eq!(
        warnings(&stderr),
        ["nettrace: skipping nettrace_sched_switch: cannot attach: tracepoint has no sk_buff argument"],
        "{stderr}"
    );
    assert!(
        t.lines().iter().any(|l| l.contains("[net_dev_queue")),
        "{:#?}",
        t.lines()
    );
}

/// `--btf-path` with a copy of the running kernel's BTF: everything BTF
/// gives (offsets, the drop reason's name, the loader) comes from the copy.
#[test]
fn btf_path_copy_of_vmlinux_sees_a_real_drop() {
    let net = Pair::new();
    let copy = std::env::temp_dir().join(format!("nettrace-vmlinux-{}.btf", std::process::id()));
    std::fs::copy("/sys/kernel/btf/vmlinux", &copy).unwrap();
    let mut t = Tracer::start(&[
        "--drop",
        "--debug",
        "--btf-path",
        copy.to_str().unwrap(),
        "-p",
        "tcp",
        "-d",
        &net.b4,
        "-D",
        "9941",
        "-c",
        "1",
    ]);
    net.syn(9941);
    let st = t.wait_exit(util::start_timeout());
    let _ = std::fs::remove_file(&copy);
    assert!(st.success(), "{}", t.stderr());
    assert!(
        t.stderr()
            .contains(&format!("kernel BTF from {}", copy.display())),
        "{}",
        t.stderr()
    );
    let lines = t.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(":9941 ") && l.contains("reason: NO_SOCKET, tcp_v4_rcv+0x")),
        "{lines:#?}"
    );
}

/// `--libbpf-debug` prints the verifier's log of each program the kernel
/// refuses. Where this kernel refuses a capability probe (fentry on the CI
/// host), that probe's log appears; the run itself goes on.
#[test]
fn libbpf_debug_prints_the_log_of_refused_programs() {
    let out = Command::new(BIN)
        .args(["--drop", "--debug", "--libbpf-debug", "-c", "1", "-D", "1"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The probes run before `begin trace...`; one second is plenty.
    std::thread::sleep(std::time::Duration::from_secs(2));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(out.id() as i32, libc::SIGINT) };
    let out = out.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let caps = stderr.lines().find(|l| l.contains("fentry/fexit ")).unwrap_or("");
    if caps.contains("refused to load") {
        assert!(
            stderr.contains("nettrace: capability probe fentry: the kernel refused to load it (")
                && stderr.contains("; verifier log:"),
            "{stderr}"
        );
    }
    // Without the flag no log is printed.
    let quiet = Command::new(BIN)
        .args(["--drop", "-c", "1", "-D", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(quiet.id() as i32, libc::SIGINT) };
    let quiet = quiet.wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("verifier log:"));
}

fn generated(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// No root needed: the scripts and the page come from the flag definitions.
#[test]
fn bash_completion_is_valid_shell_and_knows_the_flags() {
    let script = generated(&["completions", "bash"]);
    assert!(
        script.contains("--drop") && script.contains("--trace-matcher"),
        "{script}"
    );
    let path = std::env::temp_dir().join(format!("nettrace-completion-{}.bash", std::process::id()));
    std::fs::write(&path, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    for shell in ["zsh", "fish"] {
        assert!(
            generated(&["completions", shell]).contains("drop-stack"),
            "{shell}"
        );
    }
}

#[test]
fn man_page_is_roff_with_the_flags() {
    let page = generated(&["man"]);
    assert!(page.contains(".TH nettrace 8"), "{page}");
    assert!(page.contains("\\fB\\-\\-drop\\fR"), "{page}");
    assert!(page.contains("\\-\\-btf\\-path"), "{page}");
}
