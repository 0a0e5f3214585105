//! CPU time and memory of a process, read from Linux's `/proc`.
//!
//! The load generator reports what it costs itself (`/proc/self`) and the benchmark what
//! each service costs (`/proc/<pid>`). Reading `/proc` needs no extra dependency and no
//! `unsafe` (the workspace forbids it), and it sees every thread of the process, which a
//! per-thread clock would not.

use std::time::Duration;

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`). The kernel fixes it at 100
/// for user space on every architecture Linux supports in practice; `sysconf` would say
/// the same but needs `unsafe`.
const TICKS_PER_SECOND: u64 = 100;

/// A process, `self` or a pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pid {
    /// The calling process.
    Current,
    /// Another process.
    Of(u32),
}

impl Pid {
    fn path(self, file: &str) -> String {
        match self {
            Self::Current => format!("/proc/self/{file}"),
            Self::Of(pid) => format!("/proc/{pid}/{file}"),
        }
    }
}

/// User plus system CPU time the process has used so far, all threads together; `None`
/// if the process is gone or this is not Linux. Resolution: 10 ms.
pub fn cpu_time(pid: Pid) -> Option<Duration> {
    let stat = std::fs::read_to_string(pid.path("stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: count fields
    // from the last `)`. utime and stime are fields 14 and 15, so 12th and 13th after it.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (user + system) * 1000 / TICKS_PER_SECOND,
    ))
}

/// User plus system CPU time of every process named `name` (`/proc/<pid>/comm`) and of
/// their children that have exited, all together: a server that runs as many processes,
/// like PostgreSQL with one per connection, whose main process collects what each
/// connection's process used when it ends. So the sum only grows as connections come
/// and go.
pub fn cpu_time_of_all(name: &str) -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read_to_string(Pid::Of(pid).path("comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .filter_map(|pid| own_and_children_cpu_time(Pid::Of(pid)))
        .sum()
}

/// Like [`cpu_time`], plus the CPU time of the process's exited children (`cutime`
/// and `cstime`, fields 16 and 17).
fn own_and_children_cpu_time(pid: Pid) -> Option<Duration> {
    let stat = std::fs::read_to_string(pid.path("stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let ticks = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|field| field.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// Resident memory of a process, in KiB, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the highest resident size so far (the kernel's high-water mark).
    pub peak_kib: u64,
}

/// The process's resident memory now and at its peak; `None` if it is gone.
pub fn memory(pid: Pid) -> Option<Memory> {
    let status = std::fs::read_to_string(pid.path("status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The current process has used some CPU and has some memory.
    #[test]
    fn reads_the_current_process() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {}
        assert!(cpu_time(Pid::Current).is_some_and(|cpu| cpu > Duration::ZERO));
        let memory = memory(Pid::Current).expect("this process has a /proc entry");
        assert!(memory.rss_kib > 0 && memory.peak_kib >= memory.rss_kib);
    }

    /// The processes named like this one include this one: at least its CPU time.
    #[test]
    fn sums_the_processes_of_a_name() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {}
        let name = std::fs::read_to_string("/proc/self/comm").expect("this process's name");
        let own = cpu_time(Pid::Current).expect("this process's CPU time");
        assert!(cpu_time_of_all(name.trim_end()) >= own);
        assert_eq!(cpu_time_of_all("no process is called this"), Duration::ZERO);
    }
}
