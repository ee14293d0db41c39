//! `--container`, `--pod`, `--wait-container` and `--metrics-labels`: the
//! selection the kernel filter is made from, and which owner labels the
//! metrics carry.

use nettrace_common::Filter;

use super::UsageError;
use crate::{
    attribution::select::{Selection, Selector},
    cli::args::Args,
};

/// Owner labels of `--metrics` counters (`--metrics-labels`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsLabels {
    pub pod: bool,
    pub container: bool,
}

/// The selection (`None` without `--container`/`--pod`); marks `filter` as
/// checked against the kernel's namespace set when there is one.
pub(super) fn selection(args: &Args, filter: &mut Filter) -> Result<Option<Selection>, UsageError> {
    let c = &args.containers;
    let mut selectors = Vec::new();
    for v in &c.container {
        selectors.push(Selector::container(v).map_err(UsageError)?);
    }
    for v in &c.pod {
        selectors.push(Selector::pod(v).map_err(UsageError)?);
    }
    if selectors.is_empty() {
        if c.wait_container {
            return Err(usage!("--wait-container needs --container or --pod"));
        }
        return Ok(None);
    }
    if args.filters.netns.is_some() || args.filters.netns_current {
        return Err(usage!(
            "--container/--pod and --netns/--netns-current both pick namespaces: give one of them"
        ));
    }
    filter.netns_set = 1;
    Ok(Some(Selection {
        selectors,
        wait: c.wait_container,
    }))
}

pub(super) fn metrics_labels(args: &Args) -> Result<MetricsLabels, UsageError> {
    let mut labels = MetricsLabels::default();
    for l in &args.containers.metrics_labels {
        match l.as_str() {
            "pod" => labels.pod = true,
            "container" => labels.container = true,
            other => {
                return Err(usage!(
                    "--metrics-labels: '{other}' is not a label; take pod and/or container"
                ));
            }
        }
    }
    if labels != MetricsLabels::default() && args.output.metrics.is_none() {
        return Err(usage!("--metrics-labels needs --metrics"));
    }
    Ok(labels)
}
