//! The live heap averaged over a sliding window, the figure a soak compares over time.
//!
//! The heap of a process that streams media is a sawtooth. Every session assembles a fragment
//! (a second of media for the sample clip), then stores it and frees it, and every session does
//! so at about the same moments. A single reading every 10 s lands on a point of that tooth that
//! drifts slowly: the time a reading takes is added to every interval. The drift then reads as a
//! trend.
//!
//! Measured on a 14-minute soak with 10 sessions, under heaptrack: the 10-s readings rose by
//! 240 KB per 10 minutes. heaptrack's totals at the same instants rose exactly the same
//! (correlation 0.99). Over every allocation event of the same span they rose by 94 KB per
//! 10 minutes.
//!
//! [`HeapWindow`] reads the heap every [`READ_EVERY`] and keeps the readings of the last
//! [`WINDOW`]. A window that spans whole seconds averages whole teeth away. [`WindowMean`] is
//! the arithmetic, without a clock or a thread, so that it can be tested alone.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often [`HeapWindow`] reads the heap.
pub const READ_EVERY: Duration = Duration::from_millis(50);

/// How much time [`HeapWindow::mean`] spans: a whole number of seconds, so whole
/// fragment-sized teeth.
pub const WINDOW: Duration = Duration::from_secs(10);

/// The mean of the last `capacity` readings.
#[derive(Debug, Clone)]
pub struct WindowMean {
    readings: VecDeque<usize>,
    sum: u128,
    capacity: usize,
}

impl WindowMean {
    /// A window of the last `capacity` readings (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            readings: VecDeque::with_capacity(capacity),
            sum: 0,
            capacity,
        }
    }

    /// Add a reading. Once the window is full, the oldest reading goes.
    pub fn push(&mut self, reading: usize) {
        if self.readings.len() == self.capacity {
            if let Some(oldest) = self.readings.pop_front() {
                self.sum -= oldest as u128;
            }
        }
        self.readings.push_back(reading);
        self.sum += reading as u128;
    }

    /// The mean of the readings in the window, or `None` before the first one.
    pub fn mean(&self) -> Option<usize> {
        let n = self.readings.len() as u128;
        (n > 0).then(|| ((self.sum + n / 2) / n) as usize)
    }

    /// How many readings the window holds (up to its capacity).
    pub fn len(&self) -> usize {
        self.readings.len()
    }

    /// Whether the window holds no reading yet.
    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
    }
}

/// A probe read on a thread of its own every [`READ_EVERY`], averaged over the last
/// [`WINDOW`].
#[derive(Debug)]
pub struct HeapWindow {
    probe: fn() -> usize,
    window: Mutex<WindowMean>,
}

impl HeapWindow {
    /// Read `probe` (the bytes a counting allocator holds) from now on, for the life of the
    /// process, on a thread named `heap-window`.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn start(probe: fn() -> usize) -> std::io::Result<Arc<Self>> {
        let readings = (WINDOW.as_millis() / READ_EVERY.as_millis()) as usize;
        let this = Arc::new(Self {
            probe,
            window: Mutex::new(WindowMean::new(readings)),
        });
        // The first reading now, so that the mean is there as soon as this returns.
        this.read();
        let reader = Arc::downgrade(&this);
        std::thread::Builder::new()
            .name("heap-window".into())
            .spawn(move || loop {
                std::thread::sleep(READ_EVERY);
                let Some(window) = reader.upgrade() else {
                    break;
                };
                window.read();
            })?;
        Ok(this)
    }

    fn read(&self) {
        let reading = (self.probe)();
        self.lock().push(reading);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WindowMean> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The probe's reading now.
    pub fn latest(&self) -> usize {
        (self.probe)()
    }

    /// The mean of the readings of the last [`WINDOW`] (fewer just after the start), or
    /// `None` before the first reading.
    pub fn mean(&self) -> Option<usize> {
        self.lock().mean()
    }

    /// How much time the mean spans now: [`WINDOW`] once the thread has run that long.
    pub fn spanned(&self) -> Duration {
        READ_EVERY * self.lock().len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fragment-sized tooth: the heap climbs by `step` per reading for `period` readings,
    /// then falls back.
    fn tooth(base: usize, step: usize, period: usize, i: usize) -> usize {
        base + step * (i % period)
    }

    #[test]
    fn a_whole_number_of_teeth_averages_to_the_same_figure_whatever_the_phase() {
        // 20 readings a second, a tooth a second, a 10 s window.
        let (period, capacity) = (20, 200);
        let mut means = Vec::new();
        for phase in 0..period {
            let mut window = WindowMean::new(capacity);
            for i in 0..(capacity + phase) {
                window.push(tooth(1_000_000, 1_000, period, i));
            }
            means.push(window.mean().unwrap());
        }
        // Single readings differ by up to 19 KB with the phase; the means do not differ at all.
        assert!(means.iter().all(|m| *m == means[0]), "{means:?}");
        assert_eq!(means[0], 1_000_000 + 1_000 * (period - 1) / 2);
    }

    #[test]
    fn only_the_last_readings_count() {
        let mut window = WindowMean::new(3);
        assert_eq!(window.mean(), None);
        for reading in [100, 200, 300, 400, 500] {
            window.push(reading);
        }
        assert_eq!(window.len(), 3);
        assert_eq!(window.mean(), Some(400));
    }

    #[test]
    fn a_growing_heap_still_shows_in_the_mean() {
        // The window removes the tooth, not a leak: 10 bytes more per reading, on top of it.
        let mut window = WindowMean::new(200);
        let mut means = Vec::new();
        for i in 0..400 {
            window.push(tooth(1_000_000, 1_000, 20, i) + 10 * i);
            if i == 199 || i == 399 {
                means.push(window.mean().unwrap());
            }
        }
        // 200 readings apart: 2,000 bytes more.
        assert_eq!(means[1] - means[0], 2_000);
    }

    static PROBED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    #[test]
    fn the_thread_reads_the_probe_into_the_window() {
        PROBED.store(4242, std::sync::atomic::Ordering::Relaxed);
        let window = HeapWindow::start(|| PROBED.load(std::sync::atomic::Ordering::Relaxed))
            .expect("a thread");
        assert_eq!(window.latest(), 4242);
        // The first reading is taken before `start` returns.
        assert_eq!(window.mean(), Some(4242));
        // The thread reads again: wait for a second reading, bounded.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while window.spanned() < 2 * READ_EVERY {
            assert!(
                std::time::Instant::now() < deadline,
                "no second reading in 10 s"
            );
            std::thread::yield_now();
        }
        assert_eq!(window.mean(), Some(4242));
    }
}
