//! nettrace: follow network packets through the Linux kernel with eBPF.
//!
//! `main` only wires the pipeline together: `cli` (what the user asked) →
//! `run` (kernel facts, load, attach, stream, print). Exit status: 0 on
//! success, 1 on a runtime failure, 2 on bad usage or an unusable system.

mod attach;
mod attribution;
mod catalogue;
mod cli;
mod decode;
mod detach;
mod error;
mod events;
mod expr;
mod kernel;
mod load;
mod modes;
mod output;
mod plan;
mod run;
mod session;

use std::process::ExitCode;

use clap::{Parser as _, error::ErrorKind};

use crate::cli::Config;

fn main() -> ExitCode {
    let args = match cli::Args::try_parse() {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message is several lines; the first says what is wrong.
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            eprintln!("nettrace: {first} (see --help)");
            return ExitCode::from(2);
        }
    };
    if let Some(command) = args.command {
        // A closed pipe (`nettrace man | head`) ends quietly, like tracing.
        return match cli::generate::run(command, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("nettrace: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nettrace: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nettrace: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(&config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nettrace: {e}");
            e.exit_code()
        }
    }
}
