//! Each runtime's state, read from real captures in
//! `tests/data/attribution/host` (see its SOURCES.md).

use std::path::Path;

use super::*;

fn roots() -> Roots {
    Roots::under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/attribution/host"))
}

fn find(id: &str, hint: Option<Runtime>) -> Found {
    roots().find(id, hint).unwrap_or_else(|| panic!("{id} not found"))
}

#[test]
fn podman_name_from_containers_json() {
    let id = "34a7bcde2e74c0da92e64988de6cf55c8f1566b4e51dc26d26a69a6ccf2b08b8";
    let f = find(id, Some(Runtime::Podman));
    assert_eq!(f.container.runtime, Runtime::Podman);
    assert_eq!(f.container.name, "web-1");
    assert_eq!((f.pod, f.sandbox), (None, false));
    // Without the cgroup's hint, every runtime is asked.
    assert_eq!(find(id, None).container.name, "web-1");
}

#[test]
fn crio_pod_from_annotations() {
    let f = find(
        "134b58ab2e0cfd7432a9db818b1b4ec52fdc747333f0ba2c9342860dc2ea7c50",
        Some(Runtime::Crio),
    );
    assert_eq!(f.container.runtime, Runtime::Crio);
    assert_eq!(f.container.name, "POD");
    assert!(f.sandbox);
    assert_eq!(
        f.pod,
        Some(Pod {
            namespace: "default".into(),
            name: "segfaulter".into()
        })
    );
}

#[test]
fn docker_name_without_its_slash() {
    let f = find(
        "10acac0b3466813c9e1f85e2aa7d06298e51fbfe86bbcb6b7a19dd33d3798f6a",
        Some(Runtime::Docker),
    );
    assert_eq!(
        (f.container.runtime, f.container.name.as_str()),
        (Runtime::Docker, "reverent_wing")
    );
    assert_eq!(f.pod, None);
}

#[test]
fn containerd_workload_and_sandbox_of_one_pod() {
    let pod = Some(Pod {
        namespace: "kube-system".into(),
        name: "coredns-5d78c9869d-79bfv".into(),
    });
    let workload = find(
        "f3a240d625b1e97b859e29f81360fd79538021c46eaafb325dc0fa195c8e4b6a",
        None,
    );
    assert_eq!(workload.container.runtime, Runtime::Containerd);
    assert_eq!(workload.container.name, "coredns");
    assert_eq!((&workload.pod, workload.sandbox), (&pod, false));
    let sandbox = find(
        "3eff2d8d3a4f3d3c0d1c4d4737c21b397bf7cbf77fd8a0fe370f6a59129cd535",
        None,
    );
    assert_eq!(
        (sandbox.container.name.as_str(), &sandbox.pod, sandbox.sandbox),
        ("POD", &pod, true)
    );
}

#[test]
fn older_containerd_pod_from_its_log_directory() {
    let f = find(
        "f7ca3e453aaf4b6a313f3047d5089ec3b2a14c64333f171f2b3bfed801f29665",
        None,
    );
    assert_eq!(
        f.pod,
        Some(Pod {
            namespace: "default".into(),
            name: "crashing-app-699c49b4ff-86wrh".into()
        })
    );
}

#[test]
fn unknown_id() {
    assert_eq!(roots().find(&"0".repeat(64), None), None);
}

#[test]
fn storage_conf() {
    let conf = "[storage]\ndriver = \"overlay\"\nrunroot = \"/var/data/crioruntimestorage\"\ngraphroot = \"/var/data/criorootstorage\"\n# rootless_storage_path = \"$HOME/x\"\n";
    assert_eq!(
        storage_conf_roots(conf),
        [
            PathBuf::from("/var/data/crioruntimestorage"),
            PathBuf::from("/var/data/criorootstorage")
        ]
    );
}
