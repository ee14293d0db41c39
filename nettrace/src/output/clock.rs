//! Event timestamps: `bpf_ktime_get_ns()` is CLOCK_MONOTONIC, printed as
//! seconds since boot like the C nettrace, or as local date-time (`--date`).

use std::mem::MaybeUninit;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns, when `--date` is on.
    wall_offset_ns: Option<i128>,
}

fn now_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: clock_gettime fills the timespec; both clocks always exist.
    unsafe { libc::clock_gettime(clock, ts.as_mut_ptr()) };
    let ts = unsafe { ts.assume_init() };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC now, ns: added to an event's
/// time, its wall-clock time (`--date`, and `-w`'s timestamps).
pub fn realtime_offset_ns() -> i128 {
    now_ns(libc::CLOCK_REALTIME) - now_ns(libc::CLOCK_MONOTONIC)
}

impl Clock {
    pub fn new(date: bool) -> Self {
        let wall_offset_ns = date.then(realtime_offset_ns);
        Self { wall_offset_ns }
    }

    /// `142.097193` or `2026-11-22 10:11:12.123456`.
    pub fn format(&self, mono_ns: u64) -> String {
        match self.wall_offset_ns {
            None => format!(
                "{}.{:06}",
                mono_ns / 1_000_000_000,
                (mono_ns % 1_000_000_000) / 1000
            ),
            Some(off) => {
                let wall = mono_ns as i128 + off;
                let secs = (wall / 1_000_000_000) as libc::time_t;
                let micros = (wall % 1_000_000_000) / 1000;
                let mut tm = MaybeUninit::<libc::tm>::uninit();
                // SAFETY: localtime_r writes the whole struct on success.
                if unsafe { libc::localtime_r(&secs, tm.as_mut_ptr()) }.is_null() {
                    return format!("{secs}.{micros:06}");
                }
                let tm = unsafe { tm.assume_init() };
                format!(
                    "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{micros:06}",
                    tm.tm_year + 1900,
                    tm.tm_mon + 1,
                    tm.tm_mday,
                    tm.tm_hour,
                    tm.tm_min,
                    tm.tm_sec
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_since_boot() {
        let c = Clock::new(false);
        assert_eq!(c.format(142_097_193_456), "142.097193");
        assert_eq!(c.format(5_000), "0.000005");
    }

    #[test]
    fn date_is_close_to_now() {
        let c = Clock::new(true);
        let s = c.format(now_ns(libc::CLOCK_MONOTONIC) as u64);
        // YYYY-MM-DD HH:MM:SS.uuuuuu
        assert_eq!(s.len(), 26, "{s}");
        assert_eq!(&s[4..5], "-");
        assert_eq!(&s[19..20], ".");
        let year: i32 = s[..4].parse().unwrap();
        assert!(year >= 2024, "{s}");
    }
}
