//! The kernel's tick rate (`CONFIG_HZ`): kernel timers (`timer_list`) are
//! in jiffies, and `--sock` shows how long a socket's pending timer has
//! left as time.
//!
//! Userspace never sees HZ directly: the clock-tick rate of `/proc/*/stat`
//! and `sysconf(_SC_CLK_TCK)` is USER_HZ, a fixed 100 whatever the kernel
//! ticks at. So, in order:
//! 1. the build configuration the distribution ships, `/boot/config-$(uname -r)`
//!    (`CONFIG_HZ=250`): exact;
//! 2. a measurement: `/proc/timer_list` prints the monotonic clock
//!    (`now at … nsecs`, the clock of `bpf_ktime_get_ns`) and `jiffies`;
//!    two readings 300 ms apart give ticks per second to about ±1.5 %,
//!    rounded to the nearest value `CONFIG_HZ` can take (`kernel/Kconfig.hz`
//!    and the ARM choices: 100, 200, 250, 300, 500, 1000) when one is
//!    within 5 %;
//! 3. otherwise unknown, and timers are shown in jiffies.
//!
//! `/proc/config.gz` would also say it, but reading it needs a gzip
//! decoder nettrace does not otherwise carry; the measurement covers it.

use std::time::Duration;

/// Where the tick rate came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `/boot/config-<release>`.
    Config,
    /// Measured from `/proc/timer_list`.
    Measured,
}

/// Values `CONFIG_HZ` can be set to on the architectures nettrace runs on.
const CHOICES: [u32; 6] = [100, 200, 250, 300, 500, 1000];

/// How long the measurement watches jiffies advance.
const WINDOW: Duration = Duration::from_millis(300);

/// The tick rate, or `None` when neither the configuration nor a
/// measurement gives it. The measurement sleeps for [`WINDOW`]: call it
/// off the start-up path (a thread) when that matters.
pub fn find() -> Option<(u32, Source)> {
    if let Some(hz) = release()
        .and_then(|r| std::fs::read_to_string(format!("/boot/config-{r}")).ok())
        .and_then(|text| from_config(&text))
    {
        return Some((hz, Source::Config));
    }
    measure().map(|hz| (hz, Source::Measured))
}

fn release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string())
}

/// `CONFIG_HZ=N` of a kernel configuration file.
pub fn from_config(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|l| l.strip_prefix("CONFIG_HZ="))
        .and_then(|v| v.trim().parse().ok())
        .filter(|&hz| hz > 0)
}

fn measure() -> Option<u32> {
    let first = sample(&std::fs::read_to_string("/proc/timer_list").ok()?)?;
    std::thread::sleep(WINDOW);
    let second = sample(&std::fs::read_to_string("/proc/timer_list").ok()?)?;
    snap(first, second)
}

/// (`now at` ns, `jiffies`) of one `/proc/timer_list` reading: the header's
/// clock and the first CPU's jiffies line (jiffies is one global counter,
/// printed once per CPU).
pub fn sample(text: &str) -> Option<(u64, u64)> {
    let now = text
        .lines()
        .find_map(|l| l.strip_prefix("now at "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let jiffies = text
        .lines()
        .find_map(|l| l.strip_prefix("jiffies: "))?
        .trim()
        .parse()
        .ok()?;
    Some((now, jiffies))
}

/// Ticks per second between two samples, rounded to the nearest possible
/// `CONFIG_HZ` when one is within 5 %.
pub fn snap((t0, j0): (u64, u64), (t1, j1): (u64, u64)) -> Option<u32> {
    let ns = t1.checked_sub(t0).filter(|&d| d > 0)?;
    let ticks = j1.checked_sub(j0)?;
    let rate = ticks as f64 * 1e9 / ns as f64;
    CHOICES
        .iter()
        .copied()
        .min_by(|a, b| {
            (f64::from(*a) - rate)
                .abs()
                .total_cmp(&(f64::from(*b) - rate).abs())
        })
        .filter(|&hz| (f64::from(hz) - rate).abs() <= f64::from(hz) * 0.05)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_text() {
        let text = "# CONFIG_HZ_100 is not set\nCONFIG_HZ_250=y\nCONFIG_HZ=250\nCONFIG_SCHED_HRTICK=y\n";
        assert_eq!(from_config(text), Some(250));
        assert_eq!(from_config("CONFIG_HZ_1000=y\n"), None);
    }

    #[test]
    fn timer_list_samples_and_rounding() {
        let text = "Timer List Version: v0.10\nHRTIMER_MAX_CLOCK_BASES: 8\nnow at 19061324141977 nsecs\n\ncpu: 0\n  .idle_jiffies   : 4299657085\njiffies: 4299657594\n\ncpu: 1\njiffies: 4299657595\n";
        assert_eq!(sample(text), Some((19_061_324_141_977, 4_299_657_594)));
        assert_eq!(sample("nothing here"), None);
        let t0 = (1_000_000_000, 5000);
        // 300 ms at 250 Hz is 75 ticks; one tick either way still rounds.
        assert_eq!(snap(t0, (1_300_000_000, 5075)), Some(250));
        assert_eq!(snap(t0, (1_300_000_000, 5076)), Some(250));
        assert_eq!(snap(t0, (1_300_000_000, 5299)), Some(1000));
        assert_eq!(snap(t0, (1_300_000_000, 5030)), Some(100));
        // Nothing near a possible value, or time going backwards.
        assert_eq!(snap(t0, (1_300_000_000, 5120)), None);
        assert_eq!(snap(t0, (900_000_000, 5075)), None);
    }

    /// The running kernel: whichever way it is found, it is a possible
    /// `CONFIG_HZ` (this host has no /boot config: it is measured).
    #[test]
    fn running_kernel() {
        if !std::path::Path::new("/proc/timer_list").exists() {
            eprintln!("skipped: no /proc/timer_list");
            return;
        }
        if let Some((hz, _)) = find() {
            assert!(CHOICES.contains(&hz), "{hz}");
            // Where the kernel carries its configuration, it agrees.
            if let Some(configured) = std::process::Command::new("zcat")
                .arg("/proc/config.gz")
                .output()
                .ok()
                .and_then(|o| from_config(&String::from_utf8_lossy(&o.stdout)))
            {
                assert_eq!(hz, configured);
            }
        } else {
            // /proc/timer_list is root-only.
            assert_ne!(unsafe { libc::geteuid() }, 0, "measurement failed as root");
        }
    }
}
