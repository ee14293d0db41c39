//! Makes a fresh machine ready: Debian packages the tests use, the pinned
//! toolchain with `rust-src`, bpf-linker, tracefs. Each step checks first and
//! does nothing when already done, so re-running costs well under a second.

use std::{
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{
    status,
    toolchain::{BPF_LINKER_VERSION, PINNED},
};

/// What later commands need from set-up.
pub struct Env {
    /// PATH with our bpf-linker first.
    pub path: OsString,
}

/// A Debian package and the command it provides: the command is what every
/// tier checks before use, so a missing tool is named with its package
/// instead of surfacing as `No such file or directory`. An empty command:
/// a package of files only (its install status is the check).
pub struct Package {
    pub name: &'static str,
    pub command: &'static str,
}

const fn pkg(name: &'static str, command: &'static str) -> Package {
    Package { name, command }
}

/// A package that provides no command of its own.
const fn files(name: &'static str) -> Package {
    Package { name, command: "" }
}

impl Package {
    /// Installed, and its command (if any) found.
    fn present(&self) -> bool {
        installed(self.name) && (self.command.is_empty() || find(self.command).is_some())
    }
}

/// What building, running and the host tiers use (`run`, `build`, `test`).
const HOST: &[Package] = &[
    pkg("iproute2", "ip"),
    pkg("iptables", "iptables"),
    pkg("nftables", "nft"),
    pkg("iputils-ping", "ping"),
    pkg("netcat-openbsd", "nc"),
    pkg("iperf3", "iperf3"),
    pkg("bpftool", "bpftool"),
    // Test servers and the benchmark's flood.
    pkg("python3", "python3"),
    // The certificate of the real TLS server `--rt-proto http` is tested
    // against.
    pkg("openssl", "openssl"),
    // setpriv (tests run a process as another user).
    pkg("util-linux", "setpriv"),
    // libpcap's headers and library: the pcap crate links it to compile
    // filter expressions (`pcap-config` comes with the package).
    pkg("libpcap-dev", "pcap-config"),
    // The pcapng tests read nettrace's `-w` files with the real reader.
    pkg("tshark", "tshark"),
    // The fleet tests: a real Prometheus server scrapes `--metrics`
    // (promtool, in the same package, checks deploy/'s scrape config);
    // `cargo xtask image` builds the container image with podman, and a
    // test runs it. podman only works here with the runc runtime (crun
    // fails on this host's cgroup set-up), so runc is named, not left to
    // podman's `crun | runc` dependency.
    pkg("prometheus", "prometheus"),
    pkg("podman", "podman"),
    pkg("runc", "runc"),
    // A virtual environment for kubernetes-validate (PyPI), which checks
    // deploy/'s manifests against the Kubernetes schema.
    files("python3-venv"),
];

/// debconf answers given before installing a package whose install would
/// otherwise ask: tshark's wireshark-common asks whether non-root users
/// may capture (no: nettrace runs as root, and tshark only reads files).
const PRESEED: &[(&str, &str)] = &[(
    "tshark",
    "wireshark-common wireshark-common/install-setuid boolean false",
)];

/// Feeds `debconf-set-selections` the answers the `missing` packages need.
fn preseed(missing: &[&str]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let answers: Vec<&str> = PRESEED
        .iter()
        .filter(|(name, _)| missing.contains(name))
        .map(|(_, answer)| *answer)
        .collect();
    if answers.is_empty() {
        return Ok(());
    }
    let mut child = Command::new("debconf-set-selections")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("run debconf-set-selections")?;
    let mut stdin = child.stdin.take().context("debconf-set-selections stdin")?;
    for a in &answers {
        writeln!(stdin, "{a}")?;
    }
    drop(stdin);
    let st = child.wait()?;
    if !st.success() {
        bail!("debconf-set-selections {answers:?}: {st}");
    }
    Ok(())
}

/// What the VM tier adds (`test`, `vm`, `bench --vm`): qemu, the initramfs
/// (busybox as `/init`, cpio and gzip to pack it, objcopy to strip the test
/// binaries, ldd for their libraries), and xz/zstd for kernels whose modules
/// are compressed.
const VM: &[Package] = &[
    pkg("qemu-system-x86", "qemu-system-x86_64"),
    pkg("busybox-static", "busybox"),
    pkg("cpio", "cpio"),
    pkg("gzip", "gzip"),
    pkg("binutils", "objcopy"),
    pkg("libc-bin", "ldd"),
    pkg("xz-utils", "xz"),
    pkg("zstd", "zstd"),
];

/// Which tiers' packages to make sure of.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tiers {
    /// Building, running, the host tests.
    Host,
    /// Those and the VM tier (what `cargo xtask setup` and `test` install).
    All,
}

pub fn all() -> anyhow::Result<Env> {
    with(Tiers::Host)
}

pub fn with(tiers: Tiers) -> anyhow::Result<Env> {
    let mut wanted: Vec<&Package> = HOST.iter().collect();
    if tiers == Tiers::All {
        wanted.extend(VM);
    }
    packages(&wanted)?;
    let sysroot = toolchain()?;
    let bin_dir = bpf_linker(&sysroot)?;
    let mut dirs = vec![bin_dir];
    // Only the tests use it (`setup`, `test`): `run` and `build` need no
    // PyPI.
    if tiers == Tiers::All {
        dirs.push(kubernetes_validate()?);
    }
    tracefs();
    let path = std::env::join_paths(dirs.into_iter().chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    Ok(Env { path })
}

fn installed(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", name])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Where `command` is found: PATH, then the sbin folders root's PATH may
/// lack.
pub fn find(command: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(command))
        .find(|p| p.is_file())
}

/// The path of a command a tier needs, or an error naming its package.
pub fn require(command: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = find(command) {
        return Ok(p);
    }
    let package = HOST
        .iter()
        .chain(VM)
        .find(|p| p.command == command)
        .map_or("?", |p| p.name);
    bail!(
        "{command} not found: it comes with the Debian package {package}, which `cargo xtask setup` installs"
    )
}

fn packages(wanted: &[&Package]) -> anyhow::Result<()> {
    let missing: Vec<&str> = wanted.iter().filter(|p| !p.present()).map(|p| p.name).collect();
    if !missing.is_empty() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { geteuid() } != 0 {
            bail!("missing Debian packages {missing:?}; run as root so xtask can apt-get install them");
        }
        eprintln!("xtask: installing Debian packages {}", missing.join(" "));
        status({
            let mut c = Command::new("apt-get");
            c.arg("update").arg("-q");
            c
        })?;
        preseed(&missing)?;
        status({
            let mut c = Command::new("apt-get");
            c.env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing);
            c
        })?;
    }
    for p in wanted {
        if !p.present() {
            bail!(
                "{} still missing after installing the Debian package {}",
                p.command,
                p.name
            );
        }
    }
    Ok(())
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

/// Installs the pinned toolchain with rust-src; returns its sysroot.
fn toolchain() -> anyhow::Result<PathBuf> {
    let sysroot = |_: ()| -> Option<PathBuf> {
        let out = Command::new("rustc")
            .env("RUSTUP_TOOLCHAIN", PINNED)
            .args(["--print", "sysroot"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    };
    if let Some(root) = sysroot(())
        && root.join("lib/rustlib/src/rust/library/core").is_dir()
    {
        return Ok(root);
    }
    eprintln!("xtask: installing toolchain {PINNED} with rust-src");
    status({
        let mut c = Command::new("rustup");
        c.args([
            "toolchain",
            "install",
            PINNED,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]);
        c
    })?;
    sysroot(()).context("pinned toolchain still not usable after install")
}

/// Where downloaded and built tools live: outside `target/` so `cargo clean`
/// keeps them.
pub fn cache_dir() -> PathBuf {
    let home = || PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache");
    std::env::var_os("XDG_CACHE_HOME")
        .map_or_else(home, PathBuf::from)
        .join("nettrace")
}

/// Keyed by versions so a bump rebuilds.
fn tools_dir() -> PathBuf {
    cache_dir().join(format!("bpf-linker-{BPF_LINKER_VERSION}-{PINNED}"))
}

/// Builds bpf-linker against the toolchain's libLLVM; returns its bin dir.
fn bpf_linker(sysroot: &Path) -> anyhow::Result<PathBuf> {
    let root = tools_dir();
    let bin = root.join("bin");
    let linker = bin.join("bpf-linker");
    if Command::new(&linker)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Ok(bin);
    }
    // The toolchain ships LLVM as lib/libLLVM.so.<major>.<minor>-rust-<ver>.
    let lib = sysroot.join("lib");
    let llvm = fs::read_dir(&lib)?
        .filter_map(std::result::Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM.so."))
        .with_context(|| format!("no libLLVM.so.* in {}", lib.display()))?;
    let major = llvm
        .trim_start_matches("libLLVM.so.")
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .with_context(|| format!("cannot read LLVM major from {llvm}"))?;
    eprintln!("xtask: building bpf-linker {BPF_LINKER_VERSION} against {llvm} (about a minute)");

    // A minimal LLVM "prefix": bpf-linker's build script links
    // <prefix>/lib/libLLVM.so and wants <prefix>/bin/llvm-config to exist;
    // the binary's rpath is <prefix>/lib, so the versioned soname is there too.
    let prefix = root.join("llvm");
    fs::create_dir_all(prefix.join("lib"))?;
    fs::create_dir_all(prefix.join("bin"))?;
    for name in ["libLLVM.so", llvm.as_str()] {
        let link = prefix.join("lib").join(name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(lib.join(&llvm), &link)?;
    }
    let config = prefix.join("bin/llvm-config");
    fs::write(&config, format!("#!/bin/sh\necho {major}.1.0\n"))?;
    fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;

    status({
        let mut c = Command::new("cargo");
        c.env("RUSTUP_TOOLCHAIN", PINNED)
            .env("LLVM_PREFIX", &prefix)
            .env_remove("RUSTC")
            .env_remove("CARGO")
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--locked",
                "--root",
            ])
            .arg(&root)
            .args(["--no-default-features", "--features", &format!("llvm-{major}")]);
        c
    })?;
    if !Command::new(&linker)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        bail!("{} was built but does not run", linker.display());
    }
    Ok(bin)
}

/// Tests attach classic tracepoints through tracefs; mount it if missing.
/// (nettrace itself does the same at start-up.)
fn tracefs() {
    if Path::new("/sys/kernel/tracing/events").is_dir() {
        return;
    }
    let ok = Command::new("mount")
        .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        eprintln!("xtask: mounted tracefs at /sys/kernel/tracing");
    } else {
        eprintln!("xtask: could not mount tracefs; classic-tracepoint tests will fail");
    }
}

/// kubernetes-validate from PyPI, pinned: it carries the Kubernetes
/// schemas, so validating needs no cluster and no network.
pub const KUBERNETES_VALIDATE_VERSION: &str = "1.37.0";

/// Installs kubernetes-validate into a venv under the cache (Debian's
/// Python refuses `pip install` outside one); returns a bin dir holding only
/// its command, so putting it on PATH shadows no `python3` or `pip`.
fn kubernetes_validate() -> anyhow::Result<PathBuf> {
    let root = cache_dir().join(format!("kubernetes-validate-{KUBERNETES_VALIDATE_VERSION}"));
    let bin = root.join("bin");
    let command = bin.join("kubernetes-validate");
    let works = |c: &Path| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works(&command) {
        return Ok(bin);
    }
    eprintln!("xtask: installing kubernetes-validate {KUBERNETES_VALIDATE_VERSION} (PyPI) in a venv");
    let venv = root.join("venv");
    // Debian's python3, not whichever a version manager puts first on PATH:
    // python3-venv (installed above) is what gives it `-m venv`.
    let debian = Path::new("/usr/bin/python3");
    let python = if debian.is_file() {
        debian.to_path_buf()
    } else {
        require("python3")?
    };
    status({
        let mut c = Command::new(python);
        c.args(["-m", "venv", "--clear"]).arg(&venv);
        c
    })?;
    status({
        let mut c = Command::new(venv.join("bin/pip"));
        c.args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("kubernetes-validate=={KUBERNETES_VALIDATE_VERSION}"));
        c
    })?;
    fs::create_dir_all(&bin)?;
    let _ = fs::remove_file(&command);
    std::os::unix::fs::symlink(venv.join("bin/kubernetes-validate"), &command)?;
    if !works(&command) {
        bail!("{} was installed but does not run", command.display());
    }
    Ok(bin)
}

/// cargo-fuzz, pinned; only `cargo xtask fuzz` needs it.
const CARGO_FUZZ_VERSION: &str = "0.13.1";

/// Installs cargo-fuzz under the cache; returns its bin dir. Built with
/// the default (stable) toolchain: its locked dependencies detect a nightly
/// compiler and then use attributes today's nightly rejects. Running the
/// targets uses the pinned nightly (`cargo fuzz` needs `-Z` flags).
pub fn cargo_fuzz() -> anyhow::Result<PathBuf> {
    let root = cache_dir().join(format!("cargo-fuzz-{CARGO_FUZZ_VERSION}"));
    let bin = root.join("bin");
    if bin.join("cargo-fuzz").exists() {
        return Ok(bin);
    }
    eprintln!("xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION} (about a minute)");
    status({
        let mut c = Command::new("cargo");
        c.env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTC")
            .env_remove("CARGO")
            .args([
                "install",
                "cargo-fuzz",
                "--version",
                CARGO_FUZZ_VERSION,
                "--locked",
                "--root",
            ])
            .arg(&root);
        c
    })?;
    Ok(bin)
}
