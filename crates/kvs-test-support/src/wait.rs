//! Bounded waits: poll a condition until it holds, or fail the test saying what was awaited
//! and what was last seen. Every test that waits for a server's state waits through these.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(20);

/// Poll `probe` until it returns `Ok`, within [`WAIT`]. `Err` carries what was seen, for the
/// failure message.
///
/// # Panics
/// After [`WAIT`]: "timed out after 30s waiting for {what}; last seen: {..}".
pub async fn wait_until<T, D: Debug>(what: &str, probe: impl FnMut() -> Result<T, D>) -> T {
    wait_until_within(WAIT, what, probe).await
}

/// [`wait_until`] with its own bound.
///
/// # Panics
/// After `timeout`, with what was awaited and last seen.
pub async fn wait_until_within<T, D: Debug>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, D>,
) -> T {
    wait_for_within(timeout, what, || std::future::ready(probe())).await
}

/// [`wait_until`] for a probe that has to wait itself (an HTTP request, say).
///
/// # Panics
/// After [`WAIT`], with what was awaited and last seen.
pub async fn wait_for<T, D, F, Fut>(what: &str, probe: F) -> T
where
    D: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, D>>,
{
    wait_for_within(WAIT, what, probe).await
}

/// [`wait_for`] with its own bound.
///
/// # Panics
/// After `timeout`, with what was awaited and last seen.
pub async fn wait_for_within<T, D, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    D: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, D>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let seen = match probe().await {
            Ok(done) => return done,
            Err(seen) => seen,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last seen: {seen:#?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// `Ok(value)` when `done(&value)`, else `Err(value)`: the usual probe of [`wait_until`].
pub fn check<T>(value: T, done: impl FnOnce(&T) -> bool) -> Result<T, T> {
    if done(&value) {
        Ok(value)
    } else {
        Err(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_condition_that_comes_true_ends_the_wait() {
        let mut polls = 0;
        let value = wait_until("the third poll", || {
            polls += 1;
            check(polls, |p| *p == 3)
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "timed out after 1s waiting for never; last seen: 7")]
    async fn a_condition_that_never_holds_fails_with_what_was_seen() {
        wait_until_within(Duration::from_secs(1), "never", || Err::<(), _>(7)).await;
    }
}
