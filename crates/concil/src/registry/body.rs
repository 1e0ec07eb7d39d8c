//! Every response body concil reads, watched for a peer that sends too slowly: a body that
//! brings less than `min_rate` bytes per second over an `idle` period of waiting counts as
//! stalled, whatever it is (a layer, a manifest, a token, an error message). `ureq`'s idle
//! timeout alone lets one byte every 29 seconds hold a pull for days.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use crate::config::Timeouts;

/// A response, its body watched.
pub(crate) type HttpResponse = ureq::http::Response<WatchedBody>;

/// A response body: reads as `ureq` gives it, and fails with [`io::ErrorKind::TimedOut`] on
/// the read after the one that showed it stalled (that read's bytes still count).
pub(crate) struct WatchedBody {
    reader: ureq::BodyReader<'static>,
    content_length: Option<u64>,
    min_rate: u64,
    idle: Duration,
    /// Time spent waiting in reads in the current window (not the consumer's time between
    /// reads: a busy converter is not a slow network) and the bytes those reads brought.
    waited: Duration,
    bytes: u64,
    stalled: Option<String>,
}

impl WatchedBody {
    pub(crate) fn new(body: ureq::Body, timeouts: &Timeouts) -> WatchedBody {
        WatchedBody {
            content_length: body.content_length(),
            reader: body.into_reader(),
            min_rate: timeouts.min_rate,
            idle: timeouts.idle,
            waited: Duration::ZERO,
            bytes: 0,
            stalled: None,
        }
    }

    /// The `Content-Length` the server announced, if it did.
    pub(super) fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Why the window that just closed was too slow, if it was.
    fn check(&mut self) -> Option<String> {
        if self.min_rate == 0 || self.waited < self.idle {
            return None;
        }
        let rate = self.bytes as f64 / self.waited.as_secs_f64();
        let waited = self.waited;
        self.waited = Duration::ZERO;
        self.bytes = 0;
        (rate < self.min_rate as f64).then(|| {
            format!(
                "stalled: {rate:.0} bytes/s over {:.0} s, below min_rate {}",
                waited.as_secs_f64(),
                self.min_rate
            )
        })
    }
}

impl Read for WatchedBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(reason) = &self.stalled {
            return Err(io::Error::new(io::ErrorKind::TimedOut, reason.clone()));
        }
        let started = Instant::now();
        let read = self.reader.read(buf);
        self.waited += started.elapsed();
        let n = read?;
        self.bytes += n as u64;
        self.stalled = self.check();
        Ok(n)
    }
}
