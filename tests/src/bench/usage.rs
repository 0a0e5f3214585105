//! What each process used during one phase: CPU time (the difference of `/proc` counters
//! before and after) and the highest resident memory (sampled every 100 ms, since the
//! kernel's own high-water mark covers the process's whole life, not one phase).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::deployment::Watched;
use crate::procfs::{self, Pid};

/// How often resident memory is sampled.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// One process's use during a phase.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessUsage {
    /// Its name (`load generator` for the benchmark's own process).
    pub name: String,
    /// User + system CPU time, ms.
    pub cpu_ms: f64,
    /// The highest resident memory seen, MiB.
    pub peak_rss_mib: f64,
}

/// The processes of a phase, the load generator (this process) last.
fn pids(watched: &[Watched]) -> Vec<(String, Pid)> {
    watched
        .iter()
        .map(|process| (process.name.clone(), Pid::Of(process.pid)))
        .chain([("load generator".to_owned(), Pid::Current)])
        .collect()
}

/// Resident memory now of each watched process, MiB (0 for one that is gone).
pub(super) fn resident(watched: &[Watched]) -> Vec<(String, f64)> {
    pids(watched)
        .into_iter()
        .map(|(name, pid)| {
            let rss = procfs::memory(pid).map_or(0, |memory| memory.rss_kib);
            (name, mib(rss))
        })
        .collect()
}

/// Runs `work` and returns its output with what each watched process (and this one)
/// used meanwhile.
pub(super) async fn during<T>(
    watched: &[Watched],
    work: impl Future<Output = T>,
) -> (T, Vec<ProcessUsage>) {
    let pids = pids(watched);
    let cpu = |pids: &[(String, Pid)]| -> Vec<Duration> {
        pids.iter()
            .map(|(_, pid)| procfs::cpu_time(*pid).unwrap_or_default())
            .collect()
    };
    let peaks = Arc::new(Mutex::new(vec![0_u64; pids.len()]));
    let stop = CancellationToken::new();
    let sampler = tokio::spawn(sample(pids.clone(), peaks.clone(), stop.clone()));
    let before = cpu(&pids);
    let output = work.await;
    let after = cpu(&pids);
    stop.cancel();
    let _ = sampler.await;
    let peaks = peaks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let usage = pids
        .into_iter()
        .enumerate()
        .map(|(index, (name, _))| ProcessUsage {
            name,
            cpu_ms: after[index].saturating_sub(before[index]).as_secs_f64() * 1000.0,
            peak_rss_mib: mib(peaks[index]),
        })
        .collect();
    (output, usage)
}

/// Keeps the highest `VmRSS` of each process in `peaks` until `stop`.
async fn sample(pids: Vec<(String, Pid)>, peaks: Arc<Mutex<Vec<u64>>>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {
                let mut peaks = peaks
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for (index, (_, pid)) in pids.iter().enumerate() {
                    if let Some(memory) = procfs::memory(*pid) {
                        peaks[index] = peaks[index].max(memory.rss_kib);
                    }
                }
            }
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
