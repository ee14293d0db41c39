//! VM test tier: the integration tests on a kernel this host cannot show.
//!
//! The CI host refuses fentry and has no kprobes, so those backends are
//! tested in Debian 12's cloud kernel (`linux-image-*-cloud-amd64`, which
//! has kprobes, BPF trampolines and BTF) booted under qemu with software
//! emulation. The VM is an initramfs: busybox as `/init`, the test binary
//! and `nettrace` at the same absolute paths as on the host (tests find the
//! binary through a compile-time path), the tools tests run (ip, iptables,
//! nft, ping, nc, bash, bpftool, setpriv) with their libraries, and the
//! kernel modules for veth and netfilter. Results come back over the serial
//! console as `NETTRACE-VM-RESULT <name> rc=<n>` lines.

mod kernel;
pub mod matrix;

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{setup::require, status};
pub use kernel::{Kernel, fetch};

/// Modules the tests need (dependencies are added from `.modinfo`).
const MODULES: &[&str] = &[
    "veth",
    "nf_tables",
    // iptables-nft adds a counter to every rule; before 5.16 (our 5.10)
    // that expression is its own module, later it is part of nf_tables.
    "nft_counter",
    // --conn's sock_diag handlers (the VM has no modprobe to load them on demand).
    "inet_diag",
    "tcp_diag",
    "udp_diag",
    "nft_compat",
    "nft_chain_nat",
    "nft_nat",
    "nft_ct",
    "nft_reject_ipv4",
    "nf_nat",
    "nf_conntrack",
    "x_tables",
    "ip_tables",
    "iptable_filter",
    "xt_tcpudp",
    "xt_nat",
    "xt_conntrack",
    "xt_MASQUERADE",
];

/// How long one pass may take in the VM before it is killed (the longest
/// passes take about 3 minutes under emulation).
pub const PASS_LIMIT: Duration = Duration::from_secs(600);

/// Console lines kept to show with a failure (the end of the log is what
/// a CI summary shows).
const TAIL_LINES: usize = 40;

/// Host tools copied into the VM (resolved through symlinks), by the name
/// tests call them.
const TOOLS: &[(&str, &str)] = &[
    ("/usr/sbin/ip", "/usr/sbin/ip"),
    ("/usr/sbin/xtables-nft-multi", "/usr/sbin/xtables-nft-multi"),
    ("/usr/sbin/xtables-legacy-multi", "/usr/sbin/xtables-legacy-multi"),
    ("/usr/sbin/nft", "/usr/sbin/nft"),
    ("/usr/bin/ping", "/usr/bin/ping"),
    // `cargo xtask bench --vm` measures overhead with it.
    ("/usr/bin/iperf3", "/usr/bin/iperf3"),
    ("/bin/nc.openbsd", "/usr/bin/nc"),
    ("/bin/bash", "/bin/bash"),
    ("/usr/sbin/bpftool", "/usr/sbin/bpftool"),
    ("/usr/bin/setpriv", "/usr/bin/setpriv"),
];

/// Shared libraries `bin` needs (from ldd), resolved.
pub fn libraries(bin: &Path, out: &mut BTreeSet<PathBuf>) -> anyhow::Result<()> {
    let text = String::from_utf8_lossy(&Command::new("ldd").arg(bin).output()?.stdout).into_owned();
    for line in text.lines() {
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next().filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            out.insert(PathBuf::from(p));
        }
    }
    Ok(())
}

/// Copies `src` to `stage/dst`, following symlinks; strips debug info from
/// ELF files to keep the initramfs small.
fn put(stage: &Path, src: &Path, dst: &Path, strip: bool) -> anyhow::Result<()> {
    let target = stage.join(dst.strip_prefix("/").unwrap_or(dst));
    fs::create_dir_all(target.parent().unwrap())?;
    if strip {
        let ok = Command::new("objcopy")
            .arg("--strip-debug")
            .arg(src)
            .arg(&target)
            .status()?
            .success();
        if ok {
            return Ok(());
        }
    }
    fs::copy(fs::canonicalize(src)?, &target).with_context(|| format!("copy {}", src.display()))?;
    Ok(())
}

/// One test run inside the VM.
pub struct Pass {
    pub name: String,
    pub env: Vec<(String, String)>,
    pub binary: PathBuf,
    pub args: Vec<String>,
    /// More programs the pass runs (the benchmark's reference tool),
    /// copied at the same path with their libraries.
    pub programs: Vec<PathBuf>,
}

/// `startup_backends`: start the default hook set with these `--backend`
/// values before the tests and print how it attached (hooks per backend,
/// start-up time); each costs 20–40 s of emulated time. CI runs `auto`,
/// `cargo xtask vm --startup` adds `kprobe`.
pub fn initramfs(
    k: &Kernel,
    nettrace: &Path,
    passes: &[Pass],
    startup_backends: &[&str],
    out: &Path,
) -> anyhow::Result<()> {
    let stage = out.with_extension("d");
    let _ = fs::remove_dir_all(&stage);
    fs::create_dir_all(&stage)?;
    for d in [
        "bin", "sbin", "proc", "sys", "dev", "run", "tmp", "etc", "lib64", "root", "modules",
    ] {
        fs::create_dir_all(stage.join(d))?;
    }
    for tool in ["cpio", "gzip", "objcopy", "ldd"] {
        require(tool)?;
    }
    put(&stage, &require("busybox")?, Path::new("/bin/busybox"), false)?;
    let mut libs = BTreeSet::new();
    for (src, dst) in TOOLS {
        put(&stage, Path::new(src), Path::new(dst), false)?;
        libraries(Path::new(src), &mut libs)?;
    }
    // iptables loads its match/target extensions at run time.
    let xt = Path::new("/usr/lib/x86_64-linux-gnu/xtables");
    for e in fs::read_dir(xt)? {
        let p = e?.path();
        put(&stage, &p, &p, false)?;
        libraries(&p, &mut libs)?;
    }
    for (name, _) in [("iptables", ()), ("iptables-nft", ()), ("ip6tables", ())] {
        std::os::unix::fs::symlink("xtables-nft-multi", stage.join("usr/sbin").join(name))?;
    }
    std::os::unix::fs::symlink("xtables-legacy-multi", stage.join("usr/sbin/iptables-legacy"))?;
    // Passes share the one test binary: copy (and strip) it once.
    let bins: BTreeSet<&Path> = std::iter::once(nettrace)
        .chain(passes.iter().map(|p| p.binary.as_path()))
        .chain(
            passes
                .iter()
                .flat_map(|p| p.programs.iter().map(PathBuf::as_path)),
        )
        .collect();
    for bin in bins {
        put(&stage, bin, bin, true)?;
        libraries(bin, &mut libs)?;
    }
    for lib in &libs {
        put(&stage, lib, lib, false)?;
    }
    // The kernel's build configuration where tools look for it (the C
    // nettrace of `bench --vm --reference` reads it to check for BTF).
    let config = k
        .vmlinuz
        .parent()
        .map(|d| d.join(format!("config-{}", k.release)));
    if let Some(config) = config.filter(|c| c.exists()) {
        put(
            &stage,
            &config,
            &Path::new("/boot").join(format!("config-{}", k.release)),
            false,
        )?;
    }
    for f in ["/etc/protocols", "/etc/services", "/etc/ethertypes"] {
        if Path::new(f).exists() {
            put(&stage, Path::new(f), Path::new(f), false)?;
        }
    }
    fs::write(
        stage.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    fs::write(stage.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;

    let mut load = String::new();
    for (i, (module, bytes)) in kernel::module_order(k, MODULES)?.iter().enumerate() {
        let name = format!("{i:03}-{module}.ko");
        fs::write(stage.join("modules").join(&name), bytes)?;
        load += &format!("insmod /modules/{name} || echo 'insmod {name} failed'\n");
    }
    // Each pass under a time limit: a test that hangs fails its pass (rc
    // 124 from `timeout`, 137 after the KILL), its name the last `test …`
    // line without a result, and the passes after it still run; tracers it
    // left are killed so they do not count as the next pass's programs.
    let mut tests = String::new();
    for p in passes {
        let env: String = p.env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        tests += &format!(
            "echo '== VM pass: {name}'\n             (cd /tmp && timeout -k 20 {limit} env {env} RUST_BACKTRACE=0 {bin} {args}) 2>&1\n             rc=$?\n             [ $rc -ne 0 ] && killall -9 nettrace 2>/dev/null\n             echo \"NETTRACE-VM-RESULT {name} rc=$rc\"\n",
            name = p.name,
            limit = PASS_LIMIT.as_secs(),
            bin = p.binary.display(),
            args = p.args.join(" "),
        );
    }
    // Start-up of the default hook set, for the record (not a test).
    let mut startup = String::new();
    for backend in startup_backends {
        startup += &format!(
            "echo '== VM start-up, default hook set, --backend {backend} (software emulation: pessimistic)'\n\
             rm -f /tmp/su.out; ({nt} --debug --backend {backend} -p icmp -d 10.255.255.1 > /tmp/su.out 2> /tmp/su.err &)\n\
             i=0; while [ $i -lt 300 ] && ! grep -q 'begin trace' /tmp/su.out 2>/dev/null; do sleep 1; i=$((i+1)); done\n\
             killall -INT nettrace; sleep 3\n\
             grep -E 'kernel capabilities|^  [a-zA-Z]|attached|ready|plan:|nettrace: [a-z]|because fentry failed' /tmp/su.err | cut -c1-700\n",
            nt = nettrace.display()
        );
    }
    let init = format!(
        "#!/bin/busybox sh\n\
         /bin/busybox --install -s /bin\n\
         export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n\
         # /tmp stays part of the initramfs (already writable): the host's\n\
         # workspace, and so the test binary, may live under /tmp.\n\
         mount -t proc proc /proc\nmount -t sysfs sys /sys\nmount -t devtmpfs dev /dev\n\
         mount -t tmpfs tmpfs /run\nmkdir -p /run/netns\n\
         mount -t tracefs tracefs /sys/kernel/tracing\nmount -t debugfs debugfs /sys/kernel/debug\n\
         mount -t bpf bpf /sys/fs/bpf\n\
         {load}ip link set lo up\n\
         echo NETTRACE-VM-READY $(uname -r)\n\
         {startup}{tests}echo NETTRACE-VM-DONE\npoweroff -f\n"
    );
    let init_path = stage.join("init");
    fs::write(&init_path, init)?;
    std::os::unix::fs::PermissionsExt::set_mode(&mut fs::metadata(&init_path)?.permissions(), 0o755);
    fs::set_permissions(&init_path, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;

    let script = format!(
        "cd {} && find . | cpio -o -H newc --quiet | gzip -1 > {}",
        stage.display(),
        out.display()
    );
    status({
        let mut c = Command::new("sh");
        c.args(["-c", &script]);
        c
    })?;
    fs::remove_dir_all(&stage)?;
    Ok(())
}

/// Boots the VM, echoes its console, and fails unless every pass reported
/// rc=0 before `limit`.
pub fn boot(k: &Kernel, initrd: &Path, passes: &[Pass], limit: Duration) -> anyhow::Result<()> {
    let mut child = Command::new(require("qemu-system-x86_64")?)
        .args([
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            "2048",
            "-smp",
            "2",
            "-nographic",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(&k.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet loglevel=3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null())
        .spawn()
        .context("start qemu-system-x86_64")?;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut results: HashMap<String, i32> = HashMap::new();
    // The console's last lines, and those of each failed pass.
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let mut pass_tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let mut failed_tails: Vec<(String, Vec<String>)> = Vec::new();
    let keep = |q: &mut VecDeque<String>, line: &str| {
        if q.len() == TAIL_LINES {
            q.pop_front();
        }
        q.push_back(line.to_string());
    };
    let mut done = false;
    while !done {
        let left = limit.checked_sub(start.elapsed()).unwrap_or_default();
        match rx.recv_timeout(left) {
            Ok(line) => {
                println!("vm| {line}");
                keep(&mut tail, &line);
                if line.trim().starts_with("== VM pass: ") {
                    pass_tail.clear();
                }
                keep(&mut pass_tail, &line);
                if let Some(rest) = line.trim().strip_prefix("NETTRACE-VM-RESULT ")
                    && let Some((name, rc)) = rest.rsplit_once(" rc=")
                {
                    let rc = rc.trim().parse().unwrap_or(-1);
                    if rc != 0 {
                        failed_tails.push((name.to_string(), pass_tail.iter().cloned().collect()));
                    }
                    results.insert(name.to_string(), rc);
                }
                // `bench --vm`'s results, kept beside the host's.
                // A start-up-only run keeps the full run's file.
                if let Some(json) = line.trim().strip_prefix("BENCH-JSON ") {
                    let dir = crate::workspace_root().join("target/bench");
                    std::fs::create_dir_all(&dir)?;
                    let narrow = json.contains(r#""startup_only":true"#);
                    let file = dir.join(if narrow {
                        "bench-vm-startup.json"
                    } else {
                        "bench-vm.json"
                    });
                    std::fs::write(&file, json)?;
                    println!("vm: bench results written to {}", file.display());
                }
                done = line.contains("NETTRACE-VM-DONE");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                bail!(
                    "VM did not finish within {limit:?}; its console's last lines:\n{}",
                    indent(tail.iter())
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.wait();
    println!("vm: finished in {:.0} s", start.elapsed().as_secs_f64());
    let mut failed = Vec::new();
    for p in passes {
        match results.get(&p.name) {
            Some(0) => println!("vm: PASS {}", p.name),
            Some(rc) => failed.push(format!("{} (rc={rc})", p.name)),
            None => failed.push(format!("{} (no result)", p.name)),
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    let mut why = format!("VM tier failed: {}", failed.join(", "));
    for (name, lines) in &failed_tails {
        why += &format!("\npass {name}, its last lines:\n{}", indent(lines.iter()));
    }
    if results.len() < passes.len() {
        why += &format!("\nthe console's last lines:\n{}", indent(tail.iter()));
    }
    bail!(why)
}

/// Lines for an error message, each indented.
fn indent<'a>(lines: impl Iterator<Item = &'a String>) -> String {
    lines.map(|l| format!("  | {l}")).collect::<Vec<_>>().join("\n")
}
