//! The kernels the VM tier boots: Debian's cloud kernels, fetched with apt
//! through a private configuration kept in the project's cache.
//!
//! Each Debian release gets its own sources list, package lists and archive
//! folder under `~/.cache/nettrace/apt/<suite>/`, passed to apt with `-o`
//! options, so the machine's own apt sources are never edited and a release
//! the machine does not run (bullseye's 5.10, trixie's 6.12) is reachable.
//! The mirror is the one the machine's apt already uses. A kernel package
//! is downloaded and unpacked once; later runs reuse the unpacked tree.

use std::{
    collections::{BTreeSet, HashMap},
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::status;

/// Debian's metapackage that names a release's current cloud kernel.
const KERNEL_META: &str = "linux-image-cloud-amd64";

/// The archive key every Debian release is signed with (debian-archive-keyring).
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// An unpacked kernel package.
pub struct Kernel {
    pub vmlinuz: PathBuf,
    pub modules: PathBuf,
    pub release: String,
}

/// The apt options that make apt read and write only `dir` for `suite`.
fn apt_options(dir: &Path, suite: &str) -> anyhow::Result<Vec<String>> {
    let lists = dir.join("lists");
    let parts = dir.join("sources.list.d");
    fs::create_dir_all(lists.join("partial"))?;
    fs::create_dir_all(dir.join("cache/archives/partial"))?;
    fs::create_dir_all(&parts)?;
    let sources = dir.join("sources.list");
    fs::write(
        &sources,
        format!("deb [signed-by={KEYRING}] {} {suite} main\n", mirror()?),
    )?;
    Ok(vec![
        format!("-oDir::Etc::sourcelist={}", sources.display()),
        format!("-oDir::Etc::sourceparts={}", parts.display()),
        format!("-oDir::State::Lists={}", lists.display()),
        format!("-oDir::Cache={}", dir.join("cache").display()),
        // The cache is root's: apt's download user could not write there.
        "-oAPT::Sandbox::User=root".into(),
        // Only the package lists: no translations or AppStream data.
        "-oAcquire::Languages=none".into(),
        "-oAcquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".into(),
        "-oAcquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".into(),
        "-oAcquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".into(),
    ])
}

/// The Debian mirror the machine's apt is configured with (its main archive,
/// not the security one).
fn mirror() -> anyhow::Result<String> {
    let out = Command::new("apt-get")
        .args(["indextargets", "--format", "$(REPO_URI) $(RELEASE)"])
        .output()
        .context("apt-get indextargets")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(uri, release)| !release.contains('-') && uri.trim_end_matches('/').ends_with("/debian"))
        .map(|(uri, _)| uri.to_string())
        .context("no Debian archive among the machine's apt sources (apt-get indextargets); run apt-get update once")
}

/// Downloads and unpacks `suite`'s cloud kernel once; later runs reuse it.
pub fn fetch(cache: &Path, suite: &str) -> anyhow::Result<Kernel> {
    let dir = cache.join(format!("vm-kernel-{suite}"));
    let root = dir.join("root");
    if !root.join("boot").is_dir() {
        let options = apt_options(&cache.join("apt").join(suite), suite)?;
        eprintln!("xtask: reading {suite}'s package list (private apt configuration)");
        status({
            let mut c = Command::new("apt-get");
            c.arg("update").arg("-q").args(&options);
            c
        })?;
        let deps = Command::new("apt-cache")
            .args(&options)
            .args(["depends", KERNEL_META])
            .output()?;
        let pkg = String::from_utf8_lossy(&deps.stdout)
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Depends: ")
                    .filter(|p| p.starts_with("linux-image-"))
            })
            .with_context(|| format!("{suite}: apt-cache depends {KERNEL_META} names no kernel package"))?
            .to_string();
        eprintln!("xtask: downloading {pkg} ({suite}) for the VM tier");
        fs::create_dir_all(&dir)?;
        status({
            let mut c = Command::new("apt-get");
            c.current_dir(&dir).args(&options).args(["download", "-q", &pkg]);
            c
        })?;
        let deb = fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .context("downloaded .deb not found")?;
        let tmp = dir.join("root.tmp");
        let _ = fs::remove_dir_all(&tmp);
        status({
            let mut c = Command::new("dpkg");
            c.arg("-x").arg(&deb).arg(&tmp);
            c
        })?;
        fs::rename(&tmp, &root)?;
        let _ = fs::remove_file(&deb);
    }
    let vmlinuz = fs::read_dir(root.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .context("no vmlinuz in the kernel package")?;
    let release = vmlinuz
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("vmlinuz-")
        .to_string();
    // Debian moved /lib to /usr/lib (merged /usr) in trixie's packages.
    let modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| root.join(d).join(&release))
        .find(|p| p.is_dir())
        .with_context(|| format!("no modules folder for {release}"))?;
    Ok(Kernel {
        vmlinuz,
        modules,
        release,
    })
}

/// A module's name and file: `veth.ko`, `veth.ko.xz` and `veth.ko.zst` are
/// all `veth` (dashes read as underscores, as the kernel does).
fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    Some(stem.replace('-', "_"))
}

/// A module file's bytes, decompressed (busybox's insmod takes plain ELF).
pub fn module_bytes(path: &Path) -> anyhow::Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        "xz"
    } else if name.ends_with(".zst") {
        "zstd"
    } else if name.ends_with(".gz") {
        "gzip"
    } else {
        return fs::read(path).with_context(|| format!("read {name}"));
    };
    let out = Command::new(crate::setup::require(tool)?)
        .arg("-dc")
        .arg(path)
        .output()
        .with_context(|| format!("{tool} -dc {name}"))?;
    if !out.status.success() {
        bail!("{tool} -dc {name} failed");
    }
    Ok(out.stdout)
}

/// `depends=` from a module's `.modinfo` strings.
fn depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &ko[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Module files for `wanted` in load order (dependencies first), each with
/// its decompressed bytes. Names the kernel does not ship as modules are
/// built in (or absent): nothing to load.
pub fn module_order(k: &Kernel, wanted: &[&str]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut by_name: HashMap<String, PathBuf> = HashMap::new();
    let mut stack = vec![k.modules.join("kernel")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(name) = module_name(&p) {
                by_name.insert(name, p);
            }
        }
    }
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    fn visit(
        name: &str,
        by_name: &HashMap<String, PathBuf>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<(String, Vec<u8>)>,
    ) -> anyhow::Result<()> {
        let name = name.replace('-', "_");
        if !seen.insert(name.clone()) {
            return Ok(());
        }
        let Some(path) = by_name.get(&name) else {
            return Ok(());
        };
        let bytes = module_bytes(path)?;
        for d in depends(&bytes) {
            visit(&d, by_name, seen, order)?;
        }
        order.push((name, bytes));
        Ok(())
    }
    for m in wanted {
        visit(m, &by_name, &mut seen, &mut order)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_ignore_compression_and_dashes() {
        for f in ["veth.ko", "veth.ko.xz", "veth.ko.zst"] {
            assert_eq!(module_name(Path::new(f)).as_deref(), Some("veth"));
        }
        assert_eq!(
            module_name(Path::new("/x/nf-tables.ko")).as_deref(),
            Some("nf_tables")
        );
        assert_eq!(module_name(Path::new("modules.dep")), None);
    }

    #[test]
    fn depends_reads_modinfo() {
        let ko = b"\x7fELF..\0license=GPL\0depends=nf_tables,x_tables\0name=nft_compat\0";
        assert_eq!(depends(ko), ["nf_tables", "x_tables"]);
        assert!(depends(b"\0name=veth\0").is_empty());
    }
}
