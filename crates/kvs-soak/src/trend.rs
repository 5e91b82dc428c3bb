//! Whether memory grows over a run: the least-squares slope of the samples, as a share of
//! their mean per 10 minutes.

use std::time::Duration;

/// The slope of `samples` (time since start, value), in percent of the mean per 10 minutes;
/// `None` with fewer than 3 samples or no spread in time.
pub(crate) fn percent_per_10_minutes(samples: &[(Duration, f64)]) -> Option<f64> {
    if samples.len() < 3 {
        return None;
    }
    let n = samples.len() as f64;
    let mean_t = samples.iter().map(|(t, _)| t.as_secs_f64()).sum::<f64>() / n;
    let mean_v = samples.iter().map(|(_, v)| v).sum::<f64>() / n;
    let (mut cov, mut var) = (0.0, 0.0);
    for (t, v) in samples {
        let dt = t.as_secs_f64() - mean_t;
        cov += dt * (v - mean_v);
        var += dt * dt;
    }
    if var == 0.0 || mean_v == 0.0 {
        return None;
    }
    let per_second = cov / var;
    Some(per_second * 600.0 / mean_v * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(f: impl Fn(f64) -> f64) -> Vec<(Duration, f64)> {
        (0..60)
            .map(|i| {
                let t = f64::from(i) * 10.0;
                (Duration::from_secs_f64(t), f(t))
            })
            .collect()
    }

    #[test]
    fn flat_memory_has_no_slope_and_a_leak_shows() {
        let flat = percent_per_10_minutes(&series(|t| 100e6 + (t * 7.0).sin() * 1e5)).unwrap();
        assert!(flat.abs() < 0.1, "{flat}");
        // 1 MB a minute on a mean of about 104.9 MB: 10 MB per 10 minutes, 9.53 %.
        let leak = percent_per_10_minutes(&series(|t| 100e6 + t / 60.0 * 1e6)).unwrap();
        assert!((leak - 9.53).abs() < 0.05, "{leak}");
        assert_eq!(percent_per_10_minutes(&series(|_| 1.0)[..2]), None);
    }
}
