//! Everything the CLI prints while media flows goes through a writer thread of its own, so that
//! a terminal, a pipe or a log shipper that reads slowly (or not at all) can never hold up the
//! ingestion: lines wait in a bounded queue; when it is full, event lines are dropped and
//! counted (a "N events dropped" line says so once the writer catches up) and status updates
//! are skipped (the next one supersedes them). The final summary is always written: it is the
//! one write that waits, after the media has stopped.
//!
//! Hand-written because what it needs is twenty lines over `std::sync::mpsc::sync_channel`:
//! `tracing-appender`'s non-blocking writer (used for the logs, see `aws::init_logging`) is
//! made for log records and knows nothing of the progress bar or of a summary that must not
//! be dropped.

use std::io::Write;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;

use indicatif::ProgressBar;

/// How many lines may wait for the writer.
pub(crate) const QUEUE: usize = 1024;

/// Where a line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

enum Line {
    /// An event or a message: above the status line on a terminal.
    Text(Stream, String),
    /// The live status line (terminals only).
    Status(String),
}

/// The writer thread and its queue; see the module docs.
pub(crate) struct Output {
    queue: Option<SyncSender<Line>>,
    writer: Option<JoinHandle<()>>,
    /// Event lines dropped since the last report went out.
    unreported: u64,
    /// Event lines dropped in all.
    dropped: u64,
    /// How to format the drop report for this output.
    json: bool,
    /// Whether there is a status line to update (a terminal).
    has_bar: bool,
}

impl Output {
    /// Write to the process's stdout and stderr (and `bar`, when there is a terminal).
    pub(crate) fn start(json: bool, bar: Option<ProgressBar>) -> Self {
        Self::with_writers(
            json,
            bar,
            Box::new(std::io::stdout()),
            Box::new(std::io::stderr()),
            QUEUE,
        )
    }

    /// Write to these writers, with room for `capacity` waiting lines.
    pub(crate) fn with_writers(
        json: bool,
        bar: Option<ProgressBar>,
        mut stdout: Box<dyn Write + Send>,
        mut stderr: Box<dyn Write + Send>,
        capacity: usize,
    ) -> Self {
        let has_bar = bar.is_some();
        let (queue, lines) = mpsc::sync_channel::<Line>(capacity);
        let writer = std::thread::Builder::new()
            .name("kvs-ingest-output".into())
            .spawn(move || {
                for line in lines {
                    // A closed stream (the reader went away) loses the line, nothing else.
                    match line {
                        Line::Text(stream, text) => match (&bar, stream) {
                            (Some(bar), Stream::Stderr) => bar.println(text),
                            (_, Stream::Stdout) => {
                                let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
                            }
                            (None, Stream::Stderr) => {
                                let _ = writeln!(stderr, "{text}").and_then(|()| stderr.flush());
                            }
                        },
                        Line::Status(text) => {
                            if let Some(bar) = &bar {
                                bar.set_message(text);
                            }
                        }
                    }
                }
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
            })
            .ok();
        Self {
            queue: writer.is_some().then_some(queue),
            writer,
            unreported: 0,
            dropped: 0,
            json,
            has_bar,
        }
    }

    /// An event's line, or counted as dropped when the queue is full. Never waits.
    pub(crate) fn event(&mut self, stream: Stream, text: String) {
        if self.unreported > 0 {
            let report = self.drop_report(self.unreported);
            if !self.try_send(Line::Text(stream, report)) {
                self.count_dropped();
                return;
            }
            self.unreported = 0;
        }
        if !self.try_send(Line::Text(stream, text)) {
            self.count_dropped();
        }
    }

    /// The status line; skipped when the queue is full. Never waits.
    pub(crate) fn status(&mut self, text: String) {
        // Without a terminal there is no status line: it must not take an event's room.
        if self.has_bar {
            self.try_send(Line::Status(text));
        }
    }

    /// Event lines dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Write the last lines (the summary), waiting for the writer, and stop it.
    pub(crate) fn finish(mut self, last: Vec<(Stream, String)>) {
        if let Some(queue) = self.queue.take() {
            for (stream, text) in last {
                if queue.send(Line::Text(stream, text)).is_err() {
                    break;
                }
            }
        }
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }

    fn try_send(&self, line: Line) -> bool {
        match &self.queue {
            Some(queue) => match queue.try_send(line) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => false,
                // The writer is gone (it cannot write anything): nothing to count.
                Err(TrySendError::Disconnected(_)) => true,
            },
            None => true,
        }
    }

    fn count_dropped(&mut self) {
        self.unreported += 1;
        self.dropped += 1;
    }

    fn drop_report(&self, count: u64) -> String {
        if self.json {
            serde_json::json!({ "event": "events-dropped", "count": count }).to_string()
        } else {
            format!("{count} events dropped: the output was not read fast enough")
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        // Without `finish` (an early return): let the writer end with what it has.
        self.queue.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Duration;

    /// A writer that blocks until released, as a pipe nobody reads.
    #[derive(Clone, Default)]
    struct Stalled {
        released: Arc<(Mutex<bool>, Condvar)>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Stalled {
        fn release(&self) {
            let (lock, cvar) = &*self.released;
            *lock.lock().unwrap() = true;
            cvar.notify_all();
        }

        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.written.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (lock, cvar) = &*self.released;
            let _released = cvar
                .wait_while(lock.lock().unwrap(), |released| !*released)
                .unwrap();
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_reader_never_blocks_events_and_the_summary_says_what_was_dropped() {
        let stdout = Stalled::default();
        let mut output = Output::with_writers(
            true,
            None,
            Box::new(stdout.clone()),
            Box::new(std::io::sink()),
            8,
        );
        // 1000 events while nothing is read: each call returns at once (were one to wait,
        // this thread would never get to release the writer, and the bounded wait fails).
        let (done_tx, done_rx) = mpsc::channel();
        let pusher = std::thread::spawn(move || {
            for n in 0..1000 {
                output.event(Stream::Stdout, format!("event {n}"));
                output.status(format!("status {n}"));
            }
            done_tx.send(()).unwrap();
            output
        });
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("events never wait for the writer");
        let mut output = pusher.join().unwrap();
        // At most the queue, plus the line the writer holds, got through.
        assert!(output.dropped() >= 1000 - 8 - 1, "{}", output.dropped());
        stdout.release();
        // Once there is room, the drop is reported before the next event.
        let mut later = None;
        for attempt in 0..10_000 {
            output.event(Stream::Stdout, format!("later {attempt}"));
            if output.unreported == 0 {
                later = Some(attempt);
                break;
            }
            std::thread::yield_now();
        }
        let later = later.expect("the writer catches up");
        let dropped = output.dropped();
        output.finish(vec![(Stream::Stdout, format!("summary dropped={dropped}"))]);
        let lines = stdout.lines();
        let report = lines
            .iter()
            .rposition(|l| l.contains("events-dropped"))
            .expect("a drop report");
        assert_eq!(lines[report + 1], format!("later {later}"));
        assert_eq!(lines.last().unwrap(), &format!("summary dropped={dropped}"));
        let reported: u64 = lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["count"].as_u64())
            .sum();
        let written_events = lines.iter().filter(|l| l.starts_with("event ")).count() as u64;
        assert_eq!(
            written_events + reported,
            1000 + later,
            "every event is written or counted"
        );
    }
}
