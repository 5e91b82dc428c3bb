//! What the caller holds while media flows.

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::error::{Error, ErrorKind};
use crate::event::{IngestEvent, Stats};

/// A running ingestion. Dropping it stops the session as [`stop`](IngestSession::stop) does,
/// without waiting.
#[derive(Debug)]
pub struct IngestSession {
    pub(crate) events: mpsc::Receiver<IngestEvent>,
    pub(crate) stats: watch::Receiver<Stats>,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) task: Option<JoinHandle<Result<Stats, Error>>>,
    pub(crate) channel_arn: String,
}

impl IngestSession {
    /// The next event; `None` once the session has ended and every event was read.
    ///
    /// Nobody has to read: the session never waits for the application. Events wait in a
    /// bounded queue ([`ConfigBuilder::event_queue`](crate::ConfigBuilder::event_queue),
    /// default 256); those that find it full are dropped and counted, and the count arrives
    /// as [`IngestEvent::EventsLost`] once there is room (so `Stopped` may be among the lost:
    /// [`wait`](Self::wait) and [`stop`](Self::stop) always return the outcome).
    /// [`stats`](Self::stats) stays exact whatever is read.
    pub async fn next_event(&mut self) -> Option<IngestEvent> {
        self.events.recv().await
    }

    /// The statistics, as last published: at once when the state changes, otherwise at most
    /// every 250 ms while they change. `stop()` and `wait()` return the final ones.
    pub fn stats(&self) -> Stats {
        self.stats.borrow().clone()
    }

    /// A receiver that sees every statistics publication (for a status line): at most four
    /// a second, and each change of state.
    pub fn watch_stats(&self) -> watch::Receiver<Stats> {
        self.stats.clone()
    }

    /// The channel's ARN.
    pub fn channel_arn(&self) -> &str {
        &self.channel_arn
    }

    /// A handle that can stop the session from another task.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.clone())
    }

    /// Stop: close the WebRTC session and the signaling socket, and return the final
    /// statistics.
    ///
    /// # Errors
    /// The error that had already ended the session, if one did.
    pub async fn stop(mut self) -> Result<Stats, Error> {
        let _ = self.stop.send(true);
        self.finish().await
    }

    /// Wait until the session ends by itself: the sources ended (files without looping), it
    /// gave up, or a [`Stopper`] stopped it. When the sources end, the session stays up for
    /// three round trips after the last frame (100 ms to 1 s) so that the storage peer can ask
    /// again for packets lost among the last ones, then closes (a DTLS close_notify); `stop`
    /// closes at once.
    ///
    /// # Errors
    /// Why it ended, when that was a failure ([`ErrorKind::GaveUp`], [`ErrorKind::AccessDenied`],
    /// [`ErrorKind::InvalidInput`] for a source that broke mid-stream, ...).
    pub async fn wait(mut self) -> Result<Stats, Error> {
        self.finish().await
    }

    async fn finish(&mut self) -> Result<Stats, Error> {
        self.events.close();
        let task = self.task.take();
        match task {
            Some(task) => task
                .await
                .map_err(|e| Error::new(ErrorKind::Io, format!("the session task failed: {e}")))?,
            None => Ok(self.stats()),
        }
    }
}

impl Drop for IngestSession {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Stops an [`IngestSession`] from anywhere (a Ctrl-C handler, a timer). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Stopper(watch::Sender<bool>);

impl Stopper {
    /// Ask the session to stop; [`IngestSession::wait`] then returns.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}
