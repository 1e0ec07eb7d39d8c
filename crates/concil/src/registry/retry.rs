//! How hard the client tries: the retry budget, the timeouts, the slowest body it waits for,
//! and the backoff between attempts.

use std::time::Duration;

use crate::config::{Config, Timeouts, DEFAULT_RETRIES};

/// Network settings, from the configuration's `retries` and `timeouts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSettings {
    /// How many times one request (or one blob body that breaks off) is tried again before
    /// the pull gives up. A blob body counts only the breaks that brought little new data (see
    /// [`PROGRESS_THAT_RESETS`]), so a link that breaks every few megabytes still completes.
    pub retries: u32,
    /// Connect and idle timeouts, and the slowest body waited for.
    pub timeouts: Timeouts,
}

impl NetworkSettings {
    /// The settings `config` gives.
    pub fn of(config: &Config) -> NetworkSettings {
        NetworkSettings {
            retries: config.retries,
            timeouts: config.timeouts,
        }
    }
}

/// The configuration's defaults.
impl Default for NetworkSettings {
    fn default() -> Self {
        NetworkSettings {
            retries: DEFAULT_RETRIES,
            timeouts: Timeouts::default(),
        }
    }
}

/// A blob attempt that delivered at least this many new bytes before breaking does not use
/// up the retry budget: the budget is for a link that is down, not for one that breaks now
/// and then while the bytes keep coming.
pub const PROGRESS_THAT_RESETS: u64 = 1024 * 1024;

/// The wait before the first retry; doubled for each later one, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Exponential backoff with jitter (so that many nodes that lost the same registry at the
/// same moment do not come back at the same moment). Owns its random source: no global state.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    random: fastrand::Rng,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff {
            next: FIRST_BACKOFF,
            random: fastrand::Rng::new(),
        }
    }

    /// The wait before the next attempt: the current step, ±50 %, at least `at_least`; then
    /// the step doubles.
    pub(crate) fn next_wait(&mut self, at_least: Duration) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        let jittered = step.mul_f64(0.5 + self.random.f64());
        jittered.max(at_least)
    }

    /// Back to the first step (after an attempt that made progress).
    pub(crate) fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let mut backoff = Backoff::new();
        let waits: Vec<Duration> = (0..8).map(|_| backoff.next_wait(Duration::ZERO)).collect();
        assert!(
            waits[0] >= FIRST_BACKOFF / 2 && waits[0] <= FIRST_BACKOFF * 3 / 2,
            "{waits:?}"
        );
        assert!(waits[2] >= FIRST_BACKOFF * 2, "{waits:?}");
        assert!(waits.iter().all(|w| *w <= MAX_BACKOFF * 3 / 2), "{waits:?}");
        backoff.reset();
        assert!(backoff.next_wait(Duration::from_secs(3)) >= Duration::from_secs(3));
    }
}
