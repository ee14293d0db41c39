//! Containers and pods: filters by name, and their names as metric labels.

/// Containers and Kubernetes pods (podman, docker, containerd, CRI-O).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Containers")]
pub struct ContainerArgs {
    /// Only packets and sockets of this container's network namespace, by name or id (or an
    /// id prefix of 4+ hex digits); several times for several containers. Filtered in the kernel;
    /// containers that match and start later are added as they start.
    #[arg(long, value_name = "NAME|ID")]
    pub container: Vec<String>,

    /// Only packets and sockets of this Kubernetes pod (NAMESPACE/NAME, or NAME in any
    /// namespace); several times for several pods.
    #[arg(long, value_name = "[NAMESPACE/]NAME")]
    pub pod: Vec<String>,

    /// With --container/--pod: start even if none matches yet, and trace them once they run.
    #[arg(long)]
    pub wait_container: bool,

    /// --metrics: also label the drop counter by pod and/or container (comma-separated:
    /// pod,container). Off by default: each container adds series.
    #[arg(long, value_name = "LABELS", value_delimiter = ',')]
    pub metrics_labels: Vec<String>,
}
