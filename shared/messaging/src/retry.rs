use std::time::Duration;

/// How often and how far apart a failing message is retried.
///
/// Each delay gets its own delay queue (a queue has one TTL; per-message TTLs in one queue
/// would block behind the head message). The attempt after the last delay is the final
/// one: `delays.len() + 1` attempts in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    delays: Vec<Duration>,
}

impl RetryPolicy {
    /// Exponential backoff: `first`, doubled each time, `retries` delays in all.
    pub fn exponential(first: Duration, retries: u32) -> Self {
        let delays = (0..retries).map(|step| first * 2u32.pow(step)).collect();
        Self { delays }
    }

    /// The delay before attempt `attempt + 1`, after attempt `attempt` (1-based) failed;
    /// `None` when `attempt` was the last.
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
        self.delays.get(index).copied()
    }

    /// Every delay, in order; the topology declares one delay queue per entry.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// Attempts in all, the first one included.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len()).map_or(u32::MAX, |retries| retries.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_doubles_each_delay() {
        let policy = RetryPolicy::exponential(Duration::from_secs(1), 4);
        assert_eq!(policy.delays(), [1, 2, 4, 8].map(Duration::from_secs));
        assert_eq!(policy.max_attempts(), 5);
    }

    #[test]
    fn the_last_attempt_has_no_delay_after_it() {
        let policy = RetryPolicy::exponential(Duration::from_millis(100), 2);
        assert_eq!(policy.delay_after(1), Some(Duration::from_millis(100)));
        assert_eq!(policy.delay_after(2), Some(Duration::from_millis(200)));
        assert_eq!(policy.delay_after(3), None);
        assert_eq!(policy.delay_after(0), None);
    }
}
