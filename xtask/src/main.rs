//! `cargo xtask`: the project's own set-up, build, run and test driver.
//!
//! Every command first makes sure the machine has what it needs (see
//! `setup`), so a fresh clone needs nothing installed by hand:
//!
//! ```text
//! cargo xtask run -- --drop     build everything, then run nettrace with these flags
//! cargo xtask test              run every test tier
//! cargo xtask setup             only install/check the prerequisites
//! cargo xtask build             only build (release)
//! cargo xtask bench [--secs N] [--pairs N] [--vm]
//!                               measure overhead, start-up, event pipeline
//! cargo xtask soak [--minutes N] long run under traffic: memory, accounting
//! cargo xtask fuzz [--secs N]   fuzz the packet decoder and the rule parser
//! ```

mod bench;
mod setup;
mod soak;
mod toolchain;
mod vm;

use std::{
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Command, ExitCode},
};

use anyhow::{Context as _, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: &[String]) -> anyhow::Result<()> {
    let (cmd, rest) = args
        .split_first()
        .map(|(c, r)| (c.as_str(), r))
        .unwrap_or(("help", &[]));
    match cmd {
        "setup" => setup::all().map(|_| ()),
        "build" => build(&setup::all()?),
        "run" => run(rest),
        "test" => test(),
        "vm" => vm_tier(&setup::all()?, rest.iter().any(|a| a == "--startup")),
        "bench" => bench_cmd(rest),
        // Internal: the VM side of `bench --vm`.
        "bench-inner" => {
            let bin = rest
                .iter()
                .position(|a| a == "--bin")
                .and_then(|i| rest.get(i + 1))
                .context("bench-inner needs --bin PATH")?;
            let opts = bench::Options {
                secs: flag_value(rest, "--secs", 3)?,
                pairs: flag_value(rest, "--pairs", 1)? as usize,
            };
            bench::vm_inner(std::path::Path::new(bin), &opts)
        }
        "soak" => {
            let env = setup::all()?;
            build(&env)?;
            let minutes = flag_value(rest, "--minutes", 10)?;
            soak::run(&workspace_root().join("target/release/nettrace"), minutes.into())
        }
        "fuzz" => fuzz(&setup::all()?, flag_value(rest, "--secs", 180)?),
        // Internal: the benchmark's UDP flood, run inside a namespace.
        "flood" => {
            let arg = |i: usize| rest.get(i).map(String::as_str).unwrap_or("");
            bench::flood(
                arg(0),
                arg(1).parse()?,
                arg(2).parse()?,
                arg(3).parse()?,
                arg(4).parse().ok(),
            )
        }
        "help" | "-h" | "--help" => {
            println!(
                "usage: cargo xtask <setup|build|run [-- nettrace flags]|test|vm [--startup]|bench [--secs N] [--pairs N] [--vm]|soak [--minutes N]|fuzz [--secs N]>"
            );
            Ok(())
        }
        other => bail!("unknown command '{other}' (try: setup, build, run, test)"),
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `cargo` with the pinned toolchain and our bpf-linker on PATH. xtask itself
/// is built by whatever `cargo` the user has; everything else needs the
/// pinned nightly (aya 0.16 requires rustc 1.98).
fn cargo(env: &setup::Env) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace_root())
        .env("RUSTUP_TOOLCHAIN", toolchain::PINNED)
        .env("PATH", &env.path)
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("CARGO");
    cmd
}

fn status(mut cmd: Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let st = cmd.status().with_context(|| format!("spawn {shown}"))?;
    if !st.success() {
        bail!("{shown} failed ({st})");
    }
    Ok(())
}

fn build(env: &setup::Env) -> anyhow::Result<()> {
    let mut cmd = cargo(env);
    cmd.args(["build", "--release", "--package", "nettrace"]);
    status(cmd)
}

/// `--flag N` among `args` (a positive number), or `default`.
fn flag_value(args: &[String], flag: &str, default: u32) -> anyhow::Result<u32> {
    match args.iter().position(|a| a == flag) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .filter(|&v| v > 0)
            .with_context(|| format!("{flag} needs a positive number")),
        None => Ok(default),
    }
}

/// Runs each cargo-fuzz target for `secs`. New inputs go to
/// `target/fuzz-corpus/` (the checked-in seeds in `fuzz/corpus/` stay
/// small); crashes to `target/fuzz-artifacts/`.
fn fuzz(env: &setup::Env, secs: u32) -> anyhow::Result<()> {
    let fuzz_bin = setup::cargo_fuzz()?;
    let root = workspace_root();
    for target in ["decode", "rules"] {
        let grown = root.join("target/fuzz-corpus").join(target);
        let artifacts = root.join("target/fuzz-artifacts").join(target);
        std::fs::create_dir_all(&grown)?;
        std::fs::create_dir_all(&artifacts)?;
        println!("== fuzz {target} for {secs} s");
        let mut c = cargo(env);
        let path =
            std::env::join_paths(std::iter::once(fuzz_bin.clone()).chain(std::env::split_paths(&env.path)))?;
        c.current_dir(&root)
            .env("PATH", path)
            .args(["fuzz", "run", "--fuzz-dir", "fuzz", target])
            .arg(&grown)
            .arg(root.join("fuzz/corpus").join(target))
            .arg("--")
            .arg(format!("-max_total_time={secs}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()));
        status(c)?;
    }
    Ok(())
}

fn bench_cmd(args: &[String]) -> anyhow::Result<()> {
    let env = setup::all()?;
    let opts = bench::Options {
        secs: flag_value(args, "--secs", 5)?,
        pairs: flag_value(args, "--pairs", 3)? as usize,
    };
    build(&env)?;
    if args.iter().any(|a| a == "--vm") {
        return vm_bench(&opts);
    }
    bench::run(&workspace_root().join("target/release/nettrace"), &opts)
}

/// `bench --vm`: start-up of the default set (fentry and kprobe backends)
/// and the overhead rows, inside the VM's 6.1 kernel.
fn vm_bench(o: &bench::Options) -> anyhow::Result<()> {
    println!(
        "bench --vm: qemu emulates the CPU (TCG), so every time and ratio here is pessimistic, \
         often many times the host's."
    );
    let nettrace = workspace_root().join("target/release/nettrace");
    let passes = [vm::Pass {
        name: "bench".into(),
        env: Vec::new(),
        binary: std::env::current_exe()?,
        args: vec![
            "bench-inner".into(),
            "--bin".into(),
            nettrace.display().to_string(),
            "--secs".into(),
            // The VM's runs are short: emulated start-up dominates anyway.
            o.secs.min(3).to_string(),
            "--pairs".into(),
            o.pairs.min(2).to_string(),
        ],
    }];
    let kernel = vm::kernel(&setup::cache_dir())?;
    let initrd = workspace_root().join("target/vm/initrd-bench.gz");
    std::fs::create_dir_all(initrd.parent().unwrap())?;
    vm::initramfs(&kernel, &nettrace, &passes, &["auto", "kprobe"], &initrd)?;
    vm::boot(&kernel, &initrd, &passes, std::time::Duration::from_secs(40 * 60))
}

fn run(args: &[String]) -> anyhow::Result<()> {
    let env = setup::all()?;
    build(&env)?;
    let args = match args.first().map(String::as_str) {
        Some("--") => &args[1..],
        _ => args,
    };
    let bin = workspace_root().join("target/release/nettrace");
    // Replace xtask with nettrace: signals (Ctrl-C) and the exit status go
    // straight to and from the tool.
    let err = Command::new(&bin).args(args).exec();
    Err(err).with_context(|| format!("exec {}", bin.display()))
}

fn test() -> anyhow::Result<()> {
    let env = setup::all()?;
    println!("== tier 1: unit tests (parsers, decoder, BTF walker, rules)");
    let mut unit = cargo(&env);
    // The eBPF crate only builds for the BPF target (via nettrace's build.rs).
    unit.args([
        "test",
        "--workspace",
        "--exclude",
        "nettrace-ebpf",
        "--bins",
        "--lib",
    ]);
    status(unit)?;
    println!("== tier 2: root integration tests (real eBPF, namespaces, veth, netfilter)");
    let mut integ = cargo(&env);
    // One thread: tests load programs and count what is loaded.
    integ.args([
        "test",
        "--package",
        "nettrace",
        "--test",
        "*",
        "--",
        "--test-threads=1",
    ]);
    status(integ)?;
    vm_tier(&env, false)
}

/// Test executables cargo built for `--test NAME`, from its JSON messages.
fn test_binaries(env: &setup::Env, names: &[&str]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut cmd = cargo(env);
    cmd.args([
        "test",
        "--package",
        "nettrace",
        "--no-run",
        "--message-format=json",
    ]);
    for n in names {
        cmd.args(["--test", n]);
    }
    let out = cmd.stderr(std::process::Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("building test binaries failed");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = Vec::new();
    for line in text.lines().filter(|l| l.contains("\"executable\":\"")) {
        let exe = line
            .split("\"executable\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("");
        let name = line
            .split("\"name\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("");
        if names.contains(&name) {
            found.push((name.to_string(), PathBuf::from(exe)));
        }
    }
    Ok(found)
}

/// `startup`: also report start-up of the default hook set in the VM.
fn vm_tier(env: &setup::Env, startup: bool) -> anyhow::Result<()> {
    println!("== tier 3: VM (Debian 12 cloud kernel under qemu/TCG: fentry, fexit, kprobes)");
    let bins = test_binaries(env, &["drop", "lifecycle", "diag", "tcp", "stats", "sock"])?;
    let bin = |n: &str| {
        bins.iter()
            .find(|(name, _)| name == n)
            .map(|(_, p)| p.clone())
            .context(format!("no {n} test binary"))
    };
    let (drop, lifecycle, diag) = (bin("drop")?, bin("lifecycle")?, bin("diag")?);
    let (tcp, stats) = (bin("tcp")?, bin("stats")?);
    let sock = bin("sock")?;
    let nettrace = workspace_root().join("target/debug/nettrace");
    let passes = [
        vm::Pass {
            name: "drop".into(),
            env: vec![("NETTRACE_TEST_START_SECS".into(), "240".into())],
            binary: drop,
            // python3 (the flood) is not in the VM; loss accounting is covered on the host.
            args: vec![
                "--test-threads=1".into(),
                "--skip".into(),
                "ring_buffer_overflow".into(),
            ],
        },
        vm::Pass {
            name: "lifecycle-fentry".into(),
            env: vec![("NETTRACE_TEST_START_SECS".into(), "240".into())],
            binary: lifecycle.clone(),
            args: vec!["--test-threads=1".into()],
        },
        vm::Pass {
            name: "diag".into(),
            env: vec![("NETTRACE_TEST_START_SECS".into(), "240".into())],
            binary: diag,
            args: vec!["--test-threads=1".into()],
        },
        // RTT samples from tcp_ack_update_rtt (fentry); the other TCP tests
        // drive python3 servers, which the VM does not have.
        vm::Pass {
            name: "tcp-rtt".into(),
            env: vec![("NETTRACE_TEST_START_SECS".into(), "240".into())],
            binary: tcp,
            args: vec!["--test-threads=1".into(), "rtt_".into()],
        },
        // --latency, --monitor, --func-stats with function hooks; the
        // rate-limit test floods with python3 (host only).
        vm::Pass {
            name: "stats".into(),
            env: vec![("NETTRACE_TEST_START_SECS".into(), "240".into())],
            binary: stats,
            args: vec!["--test-threads=1".into(), "--skip".into(), "rate_limit".into()],
        },
        vm::Pass {
            name: "lifecycle-kprobe".into(),
            env: vec![
                ("NETTRACE_TEST_BACKEND".into(), "kprobe".into()),
                ("NETTRACE_TEST_START_SECS".into(), "240".into()),
            ],
            binary: lifecycle,
            args: vec!["--test-threads=1".into()],
        },
        // --sock's function hooks, fentry by default and kprobes forced:
        // the host can only show its tracepoints.
        vm::Pass {
            name: "sock-fentry".into(),
            env: vec![("NETTRACE_TEST_START_SECS".into(), "240".into())],
            binary: sock.clone(),
            args: vec!["--test-threads=1".into()],
        },
        vm::Pass {
            name: "sock-kprobe".into(),
            env: vec![
                ("NETTRACE_TEST_BACKEND".into(), "kprobe".into()),
                ("NETTRACE_TEST_START_SECS".into(), "240".into()),
            ],
            binary: sock,
            args: vec!["--test-threads=1".into()],
        },
    ];
    // For development: `NETTRACE_VM_PASSES=diag cargo xtask vm` runs one pass.
    let only = std::env::var("NETTRACE_VM_PASSES").ok();
    let passes: Vec<vm::Pass> = passes
        .into_iter()
        .filter(|p| only.as_deref().is_none_or(|o| o.split(',').any(|n| n == p.name)))
        .collect();
    let kernel = vm::kernel(&setup::cache_dir())?;
    let initrd = workspace_root().join("target/vm/initrd.gz");
    std::fs::create_dir_all(initrd.parent().unwrap())?;
    let startup_backends: &[&str] = if startup { &["auto", "kprobe"] } else { &[] };
    vm::initramfs(&kernel, &nettrace, &passes, startup_backends, &initrd)?;
    println!(
        "vm: kernel {}, initramfs {} MiB",
        kernel.release,
        std::fs::metadata(&initrd)?.len() >> 20
    );
    vm::boot(&kernel, &initrd, &passes, std::time::Duration::from_secs(25 * 60))
}
