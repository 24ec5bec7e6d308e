//! CPU lists, as Redis's `server_cpulist`, `bgsave_cpulist` and
//! `aof_rewrite_cpulist` settings (and `taskset -c`) write them:
//! `0,2,4-7,8-15:2` (single CPUs, ranges, and ranges with a stride), and
//! pinning the calling thread to one.
//!
//! A snapshot's encoder and writer pin themselves to their list as they
//! start, so an operator can keep them off the executor's CPU, as Redis's
//! settings keep its forked child off the server's.

use std::fmt;
use std::str::FromStr;

/// The highest CPU number a list may name: the last one glibc's
/// `cpu_set_t` (`CPU_SETSIZE`, 1024) holds.
const MAX_CPU: usize = 1023;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not a CPU list (such as 0,2,4-7 or 0-15:2)")]
pub struct CpuListError(String);

/// A parsed CPU list; shows as it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList {
    text: String,
    cpus: Vec<usize>,
}

impl CpuList {
    /// The CPUs named, in ascending order, each once.
    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    /// Pins the calling thread to the list's CPUs (Linux; elsewhere a
    /// no-op). Fails if none of them is one the thread may run on.
    pub fn pin_current_thread(&self) -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: `set` is a plain bit set, zeroed and then filled
            // within its size: the parser refuses CPUs past MAX_CPU.
            let r = unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                for &cpu in &self.cpus {
                    libc::CPU_SET(cpu, &mut set);
                }
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
            };
            if r != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for CpuList {
    type Err = CpuListError;

    fn from_str(s: &str) -> Result<CpuList, CpuListError> {
        let bad = || CpuListError(s.to_string());
        let number = |t: &str| -> Result<usize, CpuListError> {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse().ok().filter(|&n| n <= MAX_CPU).ok_or_else(bad)
        };
        let mut cpus = Vec::new();
        for item in s.split(',') {
            let (range, stride) = match item.split_once(':') {
                Some((r, st)) => (r, number(st)?),
                None => (item, 1),
            };
            let (first, last) = match range.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if stride == 1 => (number(range)?, number(range)?),
                // A stride needs a range to step through.
                None => return Err(bad()),
            };
            if first > last || stride == 0 {
                return Err(bad());
            }
            cpus.extend((first..=last).step_by(stride));
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuList {
            text: s.to_string(),
            cpus,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus(s: &str) -> Vec<usize> {
        s.parse::<CpuList>().unwrap().cpus().to_vec()
    }

    #[test]
    fn parses_cpus_ranges_and_strides() {
        assert_eq!(cpus("1"), [1]);
        assert_eq!(cpus("0,2,4-7"), [0, 2, 4, 5, 6, 7]);
        assert_eq!(cpus("0-7:2"), [0, 2, 4, 6]);
        assert_eq!(cpus("8-11,1,10-11"), [1, 8, 9, 10, 11]);
        assert_eq!("0-7:2,9".parse::<CpuList>().unwrap().to_string(), "0-7:2,9");
    }

    #[test]
    fn refuses_what_is_not_a_list() {
        for s in [
            "", "abc", "1,", ",1", "3-1", "1-", "-1", "0-7:0", "4:2", "1 2", "+1", "1024",
        ] {
            assert_eq!(s.parse::<CpuList>(), Err(CpuListError(s.into())), "{s:?}");
        }
    }

    /// The CPUs the calling thread may run on.
    #[cfg(target_os = "linux")]
    fn allowed() -> Vec<usize> {
        // SAFETY: a zeroed set, filled by the kernel within its size.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            assert_eq!(libc::sched_getaffinity(0, size, &mut set), 0);
            (0..=MAX_CPU)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect()
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pins_the_calling_thread_only() {
        let first = allowed()[0];
        let before = allowed();
        let pinned = std::thread::spawn(move || {
            let list: CpuList = first.to_string().parse().unwrap();
            list.pin_current_thread().unwrap();
            allowed()
        })
        .join()
        .unwrap();
        assert_eq!(pinned, [first]);
        assert_eq!(allowed(), before, "other threads keep theirs");
        // No CPU the thread may run on.
        let r = std::thread::spawn(|| "1023".parse::<CpuList>().unwrap().pin_current_thread())
            .join()
            .unwrap();
        assert!(r.is_err());
    }
}
