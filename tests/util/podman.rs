//! Real containers for the attribution tests: podman with its runc runtime
//! and lowered limits (on these hosts crun fails on the cgroup set-up, and
//! root may not raise rlimits to podman's defaults), from an image built
//! here out of busybox-static (there is no registry to pull from).

use std::{path::Path, process::Command};

use super::sh;

/// podman with the options every call needs here.
fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc"]);
    c
}

fn run(mut c: Command) -> Result<String, String> {
    let out = c.output().map_err(|e| format!("spawn podman: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A one-layer image holding busybox-static and its applets, removed on drop.
pub struct Image {
    pub name: String,
}

impl Image {
    pub fn busybox() -> Self {
        let name = format!("localhost/nettrace-test-busybox:{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("nettrace-image-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.is_file(),
            "/bin/busybox missing (Debian package busybox-static)"
        );
        std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
        for applet in ["sh", "nc", "sleep", "ip", "cat"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let tar = dir.join("root.tar");
        sh(&[
            "tar",
            "-C",
            root.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ]);
        let mut import = podman();
        import.args(["import", tar.to_str().unwrap(), &name]);
        let imported = run(import);
        let _ = std::fs::remove_dir_all(&dir);
        imported.unwrap_or_else(|e| panic!("podman import: {e}"));
        Image { name }
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let mut rmi = podman();
        rmi.args(["rmi", "-f", &self.name]);
        let _ = run(rmi);
    }
}

/// A running container (`sleep`ing until removed), removed on drop.
pub struct Container {
    pub name: String,
    pub id: String,
    /// Its address on podman's default network.
    pub ip: String,
    /// Its network namespace's inode.
    pub netns: u64,
}

impl Container {
    /// Starts container `name` (made unique per test process).
    pub fn start(image: &Image, name: &str) -> Self {
        let name = format!("{name}-{}", std::process::id());
        let mut c = podman();
        c.args([
            "run",
            "-d",
            "--name",
            &name,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
            &image.name,
            "/bin/sleep",
            "600",
        ]);
        let id = run(c).unwrap_or_else(|e| panic!("podman run {name}: {e}"));
        let mut this = Container {
            name,
            id,
            ip: String::new(),
            netns: 0,
        };
        let inspect = this.inspect("{{.State.Pid}} {{.NetworkSettings.IPAddress}}");
        let (pid, ip) = inspect.split_once(' ').expect("pid and address");
        this.ip = ip.to_string();
        this.netns = std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(format!("/proc/{pid}/ns/net")).expect("container netns"),
        );
        this
    }

    fn inspect(&self, format: &str) -> String {
        let mut c = podman();
        c.args(["inspect", "-f", format, &self.name]);
        run(c).unwrap_or_else(|e| panic!("podman inspect {}: {e}", self.name))
    }

    /// Runs `sh -c script` in the container; its exit status is ignored
    /// (connections to closed ports fail on purpose).
    pub fn exec(&self, script: &str) {
        let mut c = podman();
        c.args(["exec", &self.name, "sh", "-c", script]);
        let _ = c.output();
    }

    /// A TCP SYN to `addr:port`, where nothing listens: the receiving
    /// namespace drops it (NO_SOCKET).
    pub fn connect(&self, addr: &str, port: u16) {
        self.exec(&format!("nc -w 1 {addr} {port} </dev/null"));
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let mut rm = podman();
        rm.args(["rm", "-f", "-t", "0", &self.name]);
        let _ = run(rm);
    }
}
