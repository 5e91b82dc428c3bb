//! The async side: one static tokio runtime that runs every element's ingestion session, and
//! the abortable waits through which GStreamer's threads wait for it.
//!
//! GStreamer calls an element from its streaming threads and from whatever thread changes the
//! state, which may be a worker of an application's own tokio runtime (`set_state` from async
//! code). Tokio's `block_on` refuses to run there, so waits here use [`block_on`], a minimal
//! executor that parks the calling thread; the futures it waits for are tokio channels (which
//! need no runtime) and timers made inside [`Runtime::enter`].

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Wake};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::watch;

/// The runtime every `kvswebrtcstoragesink` of the process shares: one worker thread
/// (`kvs-gst-runtime`), as the library's sessions are light (its benches run 200 sessions on
/// one), plus tokio's blocking pool for the rare calls into GStreamer that may block.
static RUNTIME: LazyLock<Result<Runtime, String>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("kvs-gst-runtime")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
});

/// The shared runtime, or why it could not be started (no threads left, say).
pub(crate) fn runtime() -> Result<&'static Runtime, gst::ErrorMessage> {
    RUNTIME.as_ref().map_err(|e| {
        gst::error_msg!(
            gst::LibraryError::Init,
            ("the element's async runtime cannot start: {e}")
        )
    })
}

/// Wakes the thread that waits in [`block_on`].
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Run `future` to completion on this thread, parking it while the future waits.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        // A wake-up that came before the park makes it return at once; a spurious one polls
        // again.
        std::thread::park();
    }
}

/// Why an abortable wait returned without its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aborted {
    /// `unlock` (flushing, or the element leaving PAUSED).
    Flushing,
    /// The bound given to [`wait_abortable`] passed.
    TimedOut,
}

/// Wait for `future` on this thread until it completes, `flushing` turns true (the base sink's
/// `unlock`), or `limit` passes. A flush that came before the call returns at once, so no
/// `unlock` is lost between a check and the wait.
pub(crate) fn wait_abortable<F: Future>(
    runtime: &Runtime,
    flushing: &watch::Receiver<bool>,
    limit: Option<Duration>,
    future: F,
) -> Result<F::Output, Aborted> {
    // Timers belong to the runtime they are made in.
    let _context = runtime.enter();
    let mut flushing = flushing.clone();
    block_on(async move {
        let deadline = async {
            match limit {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = flushing.wait_for(|f| *f) => Err(Aborted::Flushing),
            output = future => Ok(output),
            () = deadline => Err(Aborted::TimedOut),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_runs_a_future_woken_from_another_thread() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sender = std::thread::spawn(move || tx.send(7).expect("the receiver waits"));
        assert_eq!(block_on(rx), Ok(7));
        sender.join().expect("the sender thread");
    }

    #[test]
    fn a_wait_ends_with_its_future_a_flush_or_its_limit() {
        let runtime = runtime().expect("the runtime starts");
        let (flush, flushing) = watch::channel(false);
        assert_eq!(wait_abortable(runtime, &flushing, None, async { 3 }), Ok(3));
        assert_eq!(
            wait_abortable(
                runtime,
                &flushing,
                Some(Duration::from_millis(10)),
                std::future::pending::<()>()
            ),
            Err(Aborted::TimedOut)
        );
        // A flush before the wait is not lost; one during it ends it.
        flush.send_replace(true);
        assert_eq!(
            wait_abortable(runtime, &flushing, None, std::future::pending::<()>()),
            Err(Aborted::Flushing)
        );
        flush.send_replace(false);
        let flusher = std::thread::spawn(move || {
            // Flushes once the wait has begun (the receiver sees the change either way).
            flush.send_replace(true);
            flush
        });
        assert_eq!(
            wait_abortable(runtime, &flushing, None, std::future::pending::<()>()),
            Err(Aborted::Flushing)
        );
        flusher.join().expect("the flusher thread");
    }

    #[tokio::test]
    async fn waits_work_on_a_thread_of_another_tokio_runtime() {
        // Where tokio's own block_on panics: an application's async code changing the state.
        let runtime = runtime().expect("the runtime starts");
        let (_flush, flushing) = watch::channel(false);
        let task = runtime.spawn(async { 5 });
        assert_eq!(
            wait_abortable(runtime, &flushing, None, task).map(Result::ok),
            Ok(Some(5))
        );
    }
}
