//! A real Prometheus server (Debian's `prometheus`) for tests: started on
//! a free loopback port with a configuration the test gives, queried
//! through its HTTP API, killed and its folder removed on drop.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{free_port, http_get};

/// Percent-encoding of a PromQL query for a URL's query string.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server on a free loopback port with its own storage
/// folder and configuration; killed and its folder removed on drop, also
/// when the test panics.
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Prometheus {
    /// Scraping `target` (job `nettrace`) every second.
    pub fn scraping(target: &str) -> Self {
        Self::start(&format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: nettrace\n    static_configs:\n      - targets: ['{target}']\n"
        ))
    }

    /// The folder for this server's configuration and files it names.
    pub fn dir() -> PathBuf {
        std::env::temp_dir().join(format!("nettrace-prometheus-{}", std::process::id()))
    }

    /// With `config` as its prometheus.yml; files it names go in
    /// [`Self::dir`] before this.
    pub fn start(config_text: &str) -> Self {
        let dir = Self::dir();
        let _ = std::fs::remove_dir_all(dir.join("data"));
        std::fs::create_dir_all(dir.join("data")).expect("prometheus folder");
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, config_text).expect("write prometheus.yml");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.join("prometheus.log")).map_or_else(|_| Stdio::null(), Stdio::from),
            )
            .spawn()
            .expect("spawn prometheus");
        let mut p = Prometheus { child, dir, port };
        p.wait_ready();
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(self.port, "/-/ready").map(|r| r.0) != Some(200) {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("prometheus exited ({st}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `GET path` of the HTTP API (`/api/v1/targets`), its `data`.
    pub fn api(&self, path: &str) -> serde_json::Value {
        let (status, body) =
            http_get(self.port, path).unwrap_or_else(|| panic!("no answer from prometheus:\n{}", self.log()));
        assert_eq!(status, 200, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(v["status"], "success", "{body}");
        v["data"].clone()
    }

    /// An instant query: each series' labels (as `k=v,…`) and its value.
    pub fn query(&self, promql: &str) -> BTreeMap<String, f64> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(promql)));
        data["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{promql}: {data}"))
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                    .collect::<Vec<_>>()
                    .join(",");
                let value = s["value"][1].as_str().unwrap().parse().unwrap();
                (labels, value)
            })
            .collect()
    }

    /// Queries until `done` holds for the result (Prometheus scrapes every
    /// second); panics with the last result if it never does.
    pub fn query_until(
        &self,
        promql: &str,
        done: impl Fn(&BTreeMap<String, f64>) -> bool,
    ) -> BTreeMap<String, f64> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.query(promql);
            if done(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "{promql}: still {r:?} after 30 s\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
