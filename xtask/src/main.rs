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
        "setup" => setup::with(setup::Tiers::All).map(|_| ()),
        "build" => build(&setup::all()?),
        "run" => run(rest),
        "test" => test(),
        "vm" => vm_tier(
            &setup::with(setup::Tiers::All)?,
            rest.iter().any(|a| a == "--startup"),
        ),
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
    let vm = args.iter().any(|a| a == "--vm");
    let env = setup::with(if vm { setup::Tiers::All } else { setup::Tiers::Host })?;
    let opts = bench::Options {
        secs: flag_value(args, "--secs", 5)?,
        pairs: flag_value(args, "--pairs", 3)? as usize,
    };
    build(&env)?;
    if vm {
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
    let kernel = vm::fetch(&setup::cache_dir(), "bookworm")?;
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
    let env = setup::with(setup::Tiers::All)?;
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

/// Runs the VM tier on every kernel of the matrix (`vm::matrix`), one boot
/// per kernel. `startup`: also report start-up of the default hook set.
fn vm_tier(env: &setup::Env, startup: bool) -> anyhow::Result<()> {
    println!("== tier 3: VM (Debian cloud kernels 5.10, 6.1, 6.12 under qemu/TCG: fentry, fexit, kprobes)");
    let bins = test_binaries(env, &vm::matrix::tests())?;
    let nettrace = workspace_root().join("target/debug/nettrace");
    let mut failed = Vec::new();
    for release in vm::matrix::RELEASES {
        if !vm::matrix::selected("NETTRACE_VM_KERNELS", release.series) {
            continue;
        }
        let mut passes = Vec::new();
        for spec in vm::matrix::PASSES {
            if !spec.kernels.contains(&release.series)
                || !vm::matrix::selected("NETTRACE_VM_PASSES", spec.name)
            {
                continue;
            }
            let binary = bins
                .iter()
                .find(|(name, _)| name == spec.test)
                .map(|(_, p)| p.clone())
                .with_context(|| format!("no {} test binary", spec.test))?;
            let mut env = vec![("NETTRACE_TEST_START_SECS".to_string(), "240".to_string())];
            if let Some(b) = spec.backend {
                env.push(("NETTRACE_TEST_BACKEND".into(), b.into()));
            }
            let mut args = vec!["--test-threads=1".to_string()];
            args.extend(spec.args.iter().map(|a| a.to_string()));
            passes.push(vm::Pass {
                name: spec.name.into(),
                env,
                binary,
                args,
            });
        }
        // For exploring a kernel by hand: `NETTRACE_VM_SCRIPT=probe.sh
        // NETTRACE_VM_KERNELS=5.10 cargo xtask vm` runs that script (with
        // nettrace at target/debug/nettrace) instead of the test passes.
        if let Some(script) = std::env::var_os("NETTRACE_VM_SCRIPT") {
            passes = vec![vm::Pass {
                name: "script".into(),
                env: Vec::new(),
                binary: std::fs::canonicalize(script)?,
                args: Vec::new(),
            }];
        }
        if passes.is_empty() {
            continue;
        }
        let kernel = vm::fetch(&setup::cache_dir(), release.suite)?;
        let initrd = workspace_root().join(format!("target/vm/initrd-{}.gz", release.series));
        std::fs::create_dir_all(initrd.parent().unwrap())?;
        // Every run records how the default hook set attaches on each kernel
        // (hooks per backend, what is skipped and why): the matrix's facts.
        let startup_backends: &[&str] = if startup { &["auto", "kprobe"] } else { &["auto"] };
        vm::initramfs(&kernel, &nettrace, &passes, startup_backends, &initrd)?;
        println!(
            "vm: kernel {} ({}), initramfs {} MiB, passes: {}",
            kernel.release,
            release.suite,
            std::fs::metadata(&initrd)?.len() >> 20,
            passes
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        // Every kernel runs even when one fails: the matrix is the result.
        if let Err(e) = vm::boot(&kernel, &initrd, &passes, std::time::Duration::from_secs(25 * 60)) {
            println!("vm: {} failed: {e:#}", release.series);
            failed.push(format!("{} ({e:#})", release.series));
        }
    }
    if !failed.is_empty() {
        bail!("VM tier failed on {}", failed.join("; "));
    }
    Ok(())
}
