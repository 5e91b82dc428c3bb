//! Logs to stderr that never hold anything up: lines go through `tracing-appender`'s lossy
//! non-blocking writer (a thread of its own behind a bounded queue; a full queue drops lines
//! and counts them), and [`StderrLog::finish`] flushes what waits with a bound.
//!
//! Both binaries, `kvs-emulator serve` and the `kvs-ingest` CLI, log this way, so that a stderr
//! read slowly or never (a supervisor's pipe, a stalled log shipper) costs log lines, never a
//! frame, a signaling answer or a finalized recording.
//!
//! Why not just drop `tracing-appender`'s `WorkerGuard` at exit: when its queue is full (stderr
//! not read), the guard's drop waits 100 ms and then `println!`s a complaint to **stdout**,
//! which the CLI uses for its JSON events (a stray line) and which panics when stdout is
//! closed. Here the guard is dropped only once the queue is empty (the worker wrote every
//! line it took), and forgotten after the bound otherwise; the lines still waiting then are
//! counted as dropped.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;

/// How a log line's fate is counted on both sides of the queue.
#[derive(Debug, Default)]
struct Counts {
    /// Lines handed to the queue (not dropped at once).
    queued: AtomicU64,
    /// Lines the writer thread wrote out.
    written: AtomicU64,
}

/// The writer the subscriber writes through: see the module docs.
#[derive(Clone, Debug)]
pub struct StderrWriter {
    inner: NonBlocking,
    counts: Arc<Counts>,
}

impl<'a> MakeWriter<'a> for StderrWriter {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Write for StderrWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let dropped_before = self.inner.error_counter().dropped_lines();
        let written = self.inner.write(buf)?;
        if self.inner.error_counter().dropped_lines() == dropped_before {
            self.counts.queued.fetch_add(1, Ordering::Relaxed);
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// stderr as the writer thread sees it: counts each line it wrote out.
struct CountingStderr {
    counts: Arc<Counts>,
}

impl Write for CountingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write(buf)
    }

    /// The writer thread writes each line with one `write_all`.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let result = std::io::stderr().write_all(buf);
        self.counts.written.fetch_add(1, Ordering::Relaxed);
        result
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The log writer's thread and its counters; [`StderrLog::finish`] at exit.
#[derive(Debug)]
pub struct StderrLog {
    guard: Option<WorkerGuard>,
    dropped: ErrorCounter,
    counts: Arc<Counts>,
}

impl StderrLog {
    /// A writer thread named `thread_name` behind a queue of `queue` lines; give the returned
    /// writer to `tracing_subscriber::fmt().with_writer(..)`.
    pub fn start(thread_name: &str, queue: usize) -> (StderrWriter, Self) {
        let counts = Arc::new(Counts::default());
        let (inner, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(queue)
            .thread_name(thread_name)
            .finish(CountingStderr {
                counts: counts.clone(),
            });
        let dropped = inner.error_counter();
        let log = Self {
            guard: Some(guard),
            dropped,
            counts: counts.clone(),
        };
        (StderrWriter { inner, counts }, log)
    }

    /// Log lines dropped so far because stderr was not read fast enough.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped.dropped_lines() as u64
    }

    /// A counter of the dropped lines that can be handed on (the emulator's inspection API).
    pub fn error_counter(&self) -> ErrorCounter {
        self.dropped.clone()
    }

    /// Wait at most `bound` for every queued line to be written, then stop the writer thread;
    /// lines still waiting after that (nobody reads stderr) are given up. Returns how many lines
    /// were dropped in all. Never writes to stdout, never waits longer than `bound`.
    #[allow(clippy::disallowed_methods)] // a bounded wait in real time
    pub fn finish(&mut self, bound: Duration) -> u64 {
        let deadline = Instant::now() + bound;
        let pending = || {
            self.counts
                .queued
                .load(Ordering::Relaxed)
                .saturating_sub(self.counts.written.load(Ordering::Relaxed))
        };
        while pending() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let left = pending();
        if let Some(guard) = self.guard.take() {
            if left == 0 {
                // The queue is empty: the guard's shutdown message goes through at once.
                drop(guard);
            } else {
                // Its drop would wait and then complain on stdout: the thread just stays
                // blocked on stderr until the process exits.
                std::mem::forget(guard);
            }
        }
        self.dropped_lines() + left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_when_queued_and_when_written() {
        let (mut writer, mut log) = StderrLog::start("stderr-log-test", 16);
        // The subscriber writes each formatted line with one `write_all`.
        for i in 0..5 {
            writer
                .write_all(format!("stderr_log test line {i}\n").as_bytes())
                .unwrap();
        }
        assert_eq!(log.finish(Duration::from_secs(5)), 0);
        assert_eq!(log.counts.queued.load(Ordering::Relaxed), 5);
        assert_eq!(log.counts.written.load(Ordering::Relaxed), 5);
    }
}
