//! `cargo xtask`'s commands and options, declared once with clap's derive
//! (as aya's xtask does), so `--help` and the errors come from the same
//! definitions the dispatch in `main.rs` matches on.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "nettrace's own set-up, build, run and test driver",
    after_help = "The VM tier is narrowed with NETTRACE_VM_KERNELS=5.10,6.12 and NETTRACE_VM_PASSES=diag; \
                  NETTRACE_VM_SCRIPT=probe.sh boots the kernels with that script instead of the passes."
)]
pub struct Cli {
    /// Without one, this help.
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

/// A number of seconds, minutes or pairs: zero is refused.
fn positive(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| "needs a positive number".to_string())
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Only install/check the prerequisites.
    Setup,
    /// Only build (release).
    Build,
    /// Build the container image `localhost/nettrace:latest` (podman, FROM
    /// scratch: the release binary and the libraries it loads).
    Image,
    /// Build everything, then run nettrace with these flags (`run -- --drop`).
    #[command(disable_help_flag = true)]
    Run {
        /// nettrace's flags, passed on unchanged.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run every test tier: unit, root integration, VM.
    Test,
    /// Run the VM tier alone.
    Vm {
        /// Also start the default hook set with `--backend kprobe`.
        #[arg(long)]
        startup: bool,
    },
    /// Measure overhead, start-up and the event pipeline.
    Bench {
        /// Seconds per iperf3 run.
        #[arg(long, default_value = "5", value_parser = positive)]
        secs: u32,
        /// Untraced/traced pairs per row.
        #[arg(long, default_value = "3", value_parser = positive)]
        pairs: u32,
        /// In the VM's 6.1 kernel (fentry and kprobe backends).
        #[arg(long)]
        vm: bool,
        /// Host: only the overhead rows whose name contains this (and the
        /// floor), no start-up, flood or replay rows.
        #[arg(long, value_name = "TEXT", conflicts_with = "vm")]
        only: Option<String>,
        /// With --vm: also run the same rows with this binary of the C
        /// nettrace (OpenCloudOS/nettrace, built by you: nothing of it is
        /// in this repository), side by side with ours in the same boot.
        #[arg(long, value_name = "PATH", requires = "vm")]
        reference: Option<PathBuf>,
        /// Only the start-up and exit rows (minutes instead of an hour in
        /// the VM; the other rows need the machine to themselves).
        #[arg(long, conflicts_with = "only")]
        startup_only: bool,
    },
    /// Internal: the VM side of `bench --vm`.
    #[command(hide = true)]
    BenchInner {
        /// The nettrace binary to measure.
        #[arg(long)]
        bin: PathBuf,
        /// The reference binary (C nettrace), if any.
        #[arg(long)]
        reference: Option<PathBuf>,
        #[arg(long, default_value = "3", value_parser = positive)]
        secs: u32,
        #[arg(long, default_value = "1", value_parser = positive)]
        pairs: u32,
        #[arg(long)]
        startup_only: bool,
    },
    /// Long run under traffic: memory, accounting.
    Soak {
        #[arg(long, default_value = "10", value_parser = positive)]
        minutes: u32,
    },
    /// Fuzz the packet decoder and the rule parser.
    Fuzz {
        /// Seconds per fuzz target.
        #[arg(long, default_value = "180", value_parser = positive)]
        secs: u32,
    },
    /// Internal: the benchmark's UDP flood, run inside a namespace.
    #[command(hide = true)]
    Flood {
        addr: String,
        port: u16,
        secs: u64,
        threads: usize,
        /// Datagrams per second per thread; unlimited without.
        rate: Option<u64>,
    },
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::{Cli, Cmd};

    fn parse(args: &[&str]) -> Option<Cmd> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .command
    }

    fn run_args(args: &[&str]) -> Vec<String> {
        match parse(args) {
            Some(Cmd::Run { args }) => args,
            _ => panic!("{args:?} is not run"),
        }
    }

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_passes_nettrace_flags_on_with_or_without_the_separator() {
        assert_eq!(
            run_args(&["run", "--", "--drop", "-p", "icmp"]),
            ["--drop", "-p", "icmp"]
        );
        assert_eq!(run_args(&["run", "--drop"]), ["--drop"]);
        assert_eq!(run_args(&["run", "--help"]), ["--help"]);
        assert!(run_args(&["run"]).is_empty());
    }

    #[test]
    fn numbers_default_and_must_be_positive() {
        assert!(matches!(
            parse(&["bench"]),
            Some(Cmd::Bench {
                secs: 5,
                pairs: 3,
                vm: false,
                reference: None,
                only: None,
                startup_only: false,
            })
        ));
        assert!(matches!(
            parse(&["bench", "--vm", "--secs", "2", "--pairs", "1"]),
            Some(Cmd::Bench {
                secs: 2,
                pairs: 1,
                vm: true,
                reference: None,
                only: None,
                startup_only: false,
            })
        ));
        assert!(matches!(
            parse(&["bench", "--startup-only"]),
            Some(Cmd::Bench {
                startup_only: true,
                ..
            })
        ));
        assert!(matches!(parse(&["soak"]), Some(Cmd::Soak { minutes: 10 })));
        assert!(matches!(
            parse(&["fuzz", "--secs", "9"]),
            Some(Cmd::Fuzz { secs: 9 })
        ));
        assert!(Cli::try_parse_from(["xtask", "bench", "--secs", "0"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "soak", "--minutes", "x"]).is_err());
    }

    #[test]
    fn internal_commands_parse_what_xtask_passes_them() {
        assert!(matches!(
            parse(&["bench-inner", "--bin", "/n", "--secs", "3", "--pairs", "2"]),
            Some(Cmd::BenchInner {
                secs: 3,
                pairs: 2,
                ..
            })
        ));
        assert!(matches!(
            parse(&["flood", "10.201.0.2", "9", "5", "4"]),
            Some(Cmd::Flood {
                port: 9,
                secs: 5,
                threads: 4,
                rate: None,
                ..
            })
        ));
        assert!(matches!(
            parse(&["flood", "10.201.0.2", "9", "60", "1", "1000"]),
            Some(Cmd::Flood { rate: Some(1000), .. })
        ));
        assert!(matches!(
            parse(&["vm", "--startup"]),
            Some(Cmd::Vm { startup: true })
        ));
        assert!(matches!(parse(&["image"]), Some(Cmd::Image)));
        assert!(parse(&[]).is_none());
    }
}
