//! `cargo xtask test` and `cargo xtask vm`: the three test tiers. Unit tests
//! and the root integration tests run on this host through cargo; the VM tier
//! boots each kernel of `vm::matrix` with the one integration-test binary and
//! runs it once per pass, filtered to that pass's module.

use std::{
    io::BufReader,
    path::{Path, PathBuf},
    process::Stdio,
};

use anyhow::{Context as _, bail};
use cargo_metadata::Message;

use crate::{cargo, image, setup, status, vm, workspace_root};

/// The one integration-test binary (`tests/tests.rs`, a module per area).
const TEST_BINARY: &str = "tests";

pub fn test() -> anyhow::Result<()> {
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
    println!(
        "== tier 2: root integration tests (real eBPF, namespaces, veth, netfilter, podman, Prometheus)"
    );
    // The image test runs what `cargo xtask image` builds from this tree.
    let image = image::build_image(&env)?;
    let mut integ = cargo(&env);
    integ.env("NETTRACE_TEST_IMAGE", &image);
    // One thread: tests load programs and count what is loaded.
    integ.args([
        "test",
        "--package",
        "nettrace",
        "--test",
        TEST_BINARY,
        "--",
        "--test-threads=1",
    ]);
    status(integ)?;
    vm(&env, false)
}

/// Builds the integration-test binary `name` and returns its path, read from
/// cargo's JSON messages (its compiler diagnostics are shown as cargo would).
fn test_binary(env: &setup::Env, name: &str) -> anyhow::Result<PathBuf> {
    let mut cmd = cargo(env);
    cmd.args([
        "test",
        "--package",
        "nettrace",
        "--no-run",
        "--message-format=json-render-diagnostics",
        "--test",
        name,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    let mut child = cmd.spawn().context("spawn cargo test --no-run")?;
    let stdout = child.stdout.take().expect("piped");
    let mut found = None;
    for message in Message::parse_stream(BufReader::new(stdout)) {
        if let Message::CompilerArtifact(artifact) = message.context("read cargo's JSON messages")?
            && artifact.target.name == name
            && let Some(exe) = artifact.executable
        {
            found = Some(exe.into_std_path_buf());
        }
    }
    if !child.wait()?.success() {
        bail!("building test binaries failed");
    }
    found.with_context(|| format!("cargo built no {name} test binary"))
}

/// The test binary's run for one pass: that pass's tests only, one thread.
fn pass(spec: &vm::matrix::Spec, binary: &Path) -> vm::Pass {
    let mut env = vec![
        ("NETTRACE_TEST_START_SECS".to_string(), "240".to_string()),
        // Tests that read nettrace's output with host tools (tshark) skip.
        ("NETTRACE_TEST_VM".to_string(), "1".to_string()),
    ];
    if let Some(b) = spec.backend {
        env.push(("NETTRACE_TEST_BACKEND".into(), b.into()));
    }
    let mut args = vec!["--test-threads=1".to_string(), spec.filter.to_string()];
    for skip in spec.skip {
        args.extend(["--skip".to_string(), skip.to_string()]);
    }
    if spec.show_output {
        args.push("--show-output".to_string());
    }
    vm::Pass {
        programs: Vec::new(),
        name: spec.name.into(),
        env,
        binary: binary.to_path_buf(),
        args,
    }
}

/// Runs the VM tier on every kernel of the matrix (`vm::matrix`), one boot
/// per kernel. `startup`: also report start-up of the default hook set.
pub fn vm(env: &setup::Env, startup: bool) -> anyhow::Result<()> {
    println!("== tier 3: VM (Debian cloud kernels 5.10, 6.1, 6.12 under qemu/TCG: fentry, fexit, kprobes)");
    let binary = test_binary(env, TEST_BINARY)?;
    let nettrace = workspace_root().join("target/debug/nettrace");
    let mut failed = Vec::new();
    for release in vm::matrix::RELEASES {
        if !vm::matrix::selected("NETTRACE_VM_KERNELS", release.series) {
            continue;
        }
        let mut passes: Vec<vm::Pass> = vm::matrix::PASSES
            .iter()
            .filter(|spec| {
                spec.kernels.contains(&release.series)
                    && vm::matrix::selected("NETTRACE_VM_PASSES", spec.name)
            })
            .map(|spec| pass(spec, &binary))
            .collect();
        // For exploring a kernel by hand: `NETTRACE_VM_SCRIPT=probe.sh
        // NETTRACE_VM_KERNELS=5.10 cargo xtask vm` runs that script (with
        // nettrace at target/debug/nettrace) instead of the test passes.
        if let Some(script) = std::env::var_os("NETTRACE_VM_SCRIPT") {
            passes = vec![vm::Pass {
                programs: Vec::new(),
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
