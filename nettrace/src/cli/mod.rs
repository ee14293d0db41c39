//! Command line: `args` is what was typed, `config` what it means.

mod args;
mod config;
pub mod generate;

pub use args::{Args, BackendChoice};
pub use config::{BenchOpts, Config, Diag, Lifecycle, MetricsLabels, Mode, Pcap, PcapTo, Rt, Sock};
