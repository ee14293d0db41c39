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
//! cargo xtask image             build the container image (podman, FROM scratch)
//! cargo xtask bench [--secs N] [--pairs N] [--vm] [--startup-only]
//!                               measure overhead, start-up, event pipeline
//! cargo xtask soak [--minutes N] long run under traffic: memory, accounting
//! cargo xtask fuzz [--secs N]   fuzz the packet decoder and the rule parser
//! ```
//!
//! The commands and options are declared in `cli.rs`; the test tiers live in
//! `tiers.rs`, the VM they boot in `vm/`.

mod bench;
mod cli;
mod image;
mod setup;
mod soak;
mod tiers;
mod toolchain;
mod vm;

use std::{
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Command, ExitCode},
};

use anyhow::{Context as _, bail};
use clap::{CommandFactory as _, Parser as _};

use crate::cli::{Cli, Cmd};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: Option<Cmd>) -> anyhow::Result<()> {
    let Some(cmd) = cmd else {
        Cli::command().print_help()?;
        return Ok(());
    };
    match cmd {
        Cmd::Setup => setup::with(setup::Tiers::All).map(|_| ()),
        Cmd::Build => build(&setup::all()?),
        Cmd::Image => image::build_image(&setup::all()?).map(|_| ()),
        Cmd::Run { args } => run(&args),
        Cmd::Test => tiers::test(),
        Cmd::Vm { startup } => tiers::vm(&setup::with(setup::Tiers::All)?, startup),
        Cmd::Bench {
            secs,
            pairs,
            vm,
            only,
            reference,
            startup_only,
        } => bench::cmd(
            &bench::Options {
                secs,
                pairs: pairs as usize,
                reference,
                only,
                startup_only,
            },
            vm,
        ),
        Cmd::BenchInner {
            bin,
            reference,
            secs,
            pairs,
            startup_only,
        } => bench::vm_inner(
            &bin,
            &bench::Options {
                secs,
                pairs: pairs as usize,
                reference,
                only: None,
                startup_only,
            },
        ),
        Cmd::Soak { minutes } => {
            let env = setup::all()?;
            build(&env)?;
            soak::run(&workspace_root().join("target/release/nettrace"), minutes.into())
        }
        Cmd::Fuzz { secs } => fuzz(&setup::all()?, secs),
        Cmd::Flood {
            addr,
            port,
            secs,
            threads,
            rate,
        } => bench::flood(&addr, port, secs, threads, rate),
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

fn run(args: &[String]) -> anyhow::Result<()> {
    let env = setup::all()?;
    build(&env)?;
    let bin = workspace_root().join("target/release/nettrace");
    // Replace xtask with nettrace: signals (Ctrl-C) and the exit status go
    // straight to and from the tool.
    let err = Command::new(&bin).args(args).exec();
    Err(err).with_context(|| format!("exec {}", bin.display()))
}
