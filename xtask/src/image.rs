//! `cargo xtask image`: a container image for fleets (deploy/'s DaemonSet),
//! built with podman `FROM scratch`: the release binary and exactly the
//! shared libraries it loads (glibc, libpcap and what libpcap links, read
//! from `ldd` as the VM tier's initramfs does), nothing else: no shell, no
//! package manager, nothing to patch but nettrace and the libraries.
//!
//! There is no registry here: the image stays in local storage as
//! [`NAME`] (and `:VERSION`); push it to yours with `podman push`.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

use crate::{build, setup, status, vm, workspace_root};

/// The image's name in podman's local storage.
pub const NAME: &str = "localhost/nettrace:latest";

/// Builds the release binary and the image; returns the image's name.
pub fn build_image(env: &setup::Env) -> anyhow::Result<String> {
    build(env)?;
    let podman = setup::require("podman")?;
    setup::require("ldd")?;
    let root = workspace_root();
    let bin = root.join("target/release/nettrace");
    let context = root.join("target/image");
    let rootfs = context.join("rootfs");
    let _ = fs::remove_dir_all(&context);
    fs::create_dir_all(&rootfs)?;

    put(&rootfs, &bin, Path::new("/nettrace"))?;
    let mut libs = BTreeSet::new();
    vm::libraries(&bin, &mut libs)?;
    for lib in &libs {
        put(&rootfs, lib, lib)?;
    }
    // Mount points the runtime and the DaemonSet fill: tracefs and BTF are
    // mounted from the host, /tmp is a tmpfs (the root stays read-only).
    for dir in ["proc", "sys", "tmp"] {
        fs::create_dir_all(rootfs.join(dir))?;
    }
    let version = env!("CARGO_PKG_VERSION");
    fs::write(
        context.join("Containerfile"),
        format!(
            "FROM scratch\n\
             COPY rootfs/ /\n\
             LABEL org.opencontainers.image.title=nettrace \
             org.opencontainers.image.version={version} \
             org.opencontainers.image.description=\"eBPF packet tracer: drops with their reason, TCP resets and retransmits, Prometheus metrics\"\n\
             ENTRYPOINT [\"/nettrace\"]\n\
             CMD [\"--monitor\", \"--metrics\", \"0.0.0.0:9464\"]\n"
        ),
    )?;
    let versioned = format!("localhost/nettrace:{version}");
    let before = image_id(&podman);
    status({
        let mut c = Command::new(&podman);
        // FROM scratch and COPY run no container, so no runtime is started
        // (crun, podman's default, fails on this host's cgroups anyway).
        c.args(["build", "--runtime", "runc", "--quiet", "--tag", NAME, "--tag"])
            .arg(&versioned)
            .arg("--file")
            .arg(context.join("Containerfile"))
            .arg(&context);
        c
    })?;
    // The image this build replaced (another binary) would stay behind
    // untagged, one per build: remove it, unless something still uses it.
    if let Some(old) = before
        && image_id(&podman).is_some_and(|new| new != old)
    {
        let _ = Command::new(&podman)
            .args(["rmi", &old])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
    let size = Command::new(&podman)
        .args(["image", "inspect", "--format", "{{.Size}}", NAME])
        .output()
        .context("podman image inspect")?;
    println!(
        "image: {NAME} ({versioned}), {} MiB: /nettrace and {} libraries",
        String::from_utf8_lossy(&size.stdout)
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
            >> 20,
        libs.len()
    );
    Ok(NAME.to_string())
}

/// The id of [`NAME`] in local storage, if there is one.
fn image_id(podman: &Path) -> Option<String> {
    let out = Command::new(podman)
        .args(["image", "inspect", "--format", "{{.Id}}", NAME])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !id.is_empty()).then_some(id)
}

/// Copies `src` (following symlinks) to `dst` under `rootfs`.
fn put(rootfs: &Path, src: &Path, dst: &Path) -> anyhow::Result<()> {
    let target: PathBuf = rootfs.join(dst.strip_prefix("/").unwrap_or(dst));
    fs::create_dir_all(target.parent().expect("a file has a folder"))?;
    fs::copy(fs::canonicalize(src)?, &target).with_context(|| format!("copy {}", src.display()))?;
    Ok(())
}
