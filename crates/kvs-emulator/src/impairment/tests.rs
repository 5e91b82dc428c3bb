//! The model in simulated time: every test drives a [`Link`] with its own clock.

use super::*;

fn datagram(n: u32, len: usize) -> Datagram {
    let mut bytes = vec![0u8; len.max(4)];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    Datagram {
        peer: "127.0.0.1:9".parse().unwrap(),
        bytes,
    }
}

fn number(d: &Datagram) -> u32 {
    u32::from_be_bytes([d.bytes[0], d.bytes[1], d.bytes[2], d.bytes[3]])
}

/// Sends `count` datagrams of `len` bytes, one every `every`, from `t0`, and runs the clock in
/// 1 ms steps until everything is out: (arrival time since `t0`, number) of each delivery.
fn run(
    link: &mut Link,
    t0: Instant,
    count: u32,
    len: usize,
    every: Duration,
) -> Vec<(Duration, u32)> {
    let mut out = Vec::new();
    let mut sent = 0;
    let mut now = t0;
    for _ in 0..1_000_000 {
        while sent < count && t0 + every * sent <= now {
            link.push(now, datagram(sent, len));
            sent += 1;
        }
        while let Some(d) = link.poll(now) {
            out.push((now - t0, number(&d)));
        }
        if sent == count && link.next_due().is_none() {
            return out;
        }
        now += Duration::from_millis(1);
    }
    panic!("the link never emptied");
}

#[test]
fn no_impairment_delivers_everything_at_once_in_order() {
    let t0 = Instant::now();
    let mut link = Link::new(Impairment::default(), 1);
    let out = run(&mut link, t0, 100, 1200, Duration::from_millis(2));
    assert_eq!(out.len(), 100);
    for (i, (at, n)) in out.iter().enumerate() {
        assert_eq!(*n, i as u32);
        assert_eq!(*at, Duration::from_millis(2) * i as u32);
    }
}

#[test]
fn loss_is_near_its_share_and_the_same_for_the_same_seed() {
    let t0 = Instant::now();
    let lossy = Impairment {
        loss: 0.05,
        ..Impairment::default()
    };
    let mut a = Link::new(lossy, 7);
    let out_a = run(&mut a, t0, 20_000, 100, Duration::from_micros(100));
    let lost = 20_000 - out_a.len();
    assert!((800..1200).contains(&lost), "lost {lost} of 20000 at 5 %");
    assert_eq!(a.counters().lost, lost as u64);
    let mut b = Link::new(lossy, 7);
    assert_eq!(
        run(&mut b, t0, 20_000, 100, Duration::from_micros(100)),
        out_a
    );
    let mut c = Link::new(lossy, 8);
    assert_ne!(
        run(&mut c, t0, 20_000, 100, Duration::from_micros(100)),
        out_a
    );
}

#[test]
fn delay_and_jitter_stay_within_their_bounds_and_reorder() {
    let t0 = Instant::now();
    let mut link = Link::new(
        Impairment {
            delay_ms: 30,
            jitter_ms: 20,
            ..Impairment::default()
        },
        3,
    );
    let out = run(&mut link, t0, 1000, 1000, Duration::from_millis(1));
    assert_eq!(out.len(), 1000);
    let mut late_min = Duration::MAX;
    let mut late_max = Duration::ZERO;
    for (at, n) in &out {
        let late = *at - Duration::from_millis(u64::from(*n));
        late_min = late_min.min(late);
        late_max = late_max.max(late);
    }
    assert!(late_min >= Duration::from_millis(10), "{late_min:?}");
    assert!(late_max <= Duration::from_millis(51), "{late_max:?}");
    assert!(
        late_max - late_min > Duration::from_millis(30),
        "jitter spread"
    );
    assert!(out.windows(2).any(|w| w[1].1 < w[0].1), "jitter reorders");
}

#[test]
fn reorder_and_duplicate_do_what_they_say() {
    let t0 = Instant::now();
    let mut link = Link::new(
        Impairment {
            reorder: 0.1,
            duplicate: 0.1,
            ..Impairment::default()
        },
        5,
    );
    let out = run(&mut link, t0, 2000, 100, Duration::from_millis(1));
    let c = link.counters();
    assert_eq!(out.len() as u64, 2000 + c.duplicated);
    assert!((120..280).contains(&c.duplicated), "{c:?}");
    assert!(c.reordered > 150, "{c:?}");
    assert!(out.windows(2).filter(|w| w[1].1 < w[0].1).count() > 100);
}

#[test]
fn a_bandwidth_cap_paces_and_its_queue_stays_bounded() {
    let t0 = Instant::now();
    // 1000-byte datagrams every ms (8 Mbit/s) into 2 Mbit/s with a 100 ms queue.
    let mut link = Link::new(
        Impairment {
            bandwidth_kbps: Some(2000),
            queue_ms: 100,
            ..Impairment::default()
        },
        1,
    );
    let mut now = t0;
    let mut delivered = 0u64;
    let mut most_in_flight = 0;
    for i in 0..4000 {
        link.push(now, datagram(i, 1000));
        most_in_flight = most_in_flight.max(link.in_flight());
        while link.poll(now).is_some() {
            delivered += 1;
        }
        now += Duration::from_millis(1);
    }
    // 4 s at 2 Mbit/s is 1000 datagrams of 8000 bits; the queue holds 100 ms of them.
    assert!((990..=1010).contains(&delivered), "{delivered}");
    assert!(
        most_in_flight <= 27,
        "{most_in_flight} in flight behind a 100 ms queue"
    );
    assert!(link.counters().queue_dropped > 2900);
}

#[test]
fn clearing_keeps_what_is_in_flight_and_passes_the_rest_at_once() {
    let t0 = Instant::now();
    let mut link = Link::new(
        Impairment {
            delay_ms: 100,
            ..Impairment::default()
        },
        1,
    );
    link.push(t0, datagram(0, 10));
    link.set(Impairment::default());
    link.push(t0, datagram(1, 10));
    assert_eq!(link.poll(t0).map(|d| number(&d)), Some(1));
    assert!(link.poll(t0 + Duration::from_millis(99)).is_none());
    assert_eq!(
        link.poll(t0 + Duration::from_millis(100))
            .map(|d| number(&d)),
        Some(0)
    );
}

#[test]
fn out_of_range_values_are_refused() {
    let bad = |i: Impairment| i.validate().unwrap_err().to_string();
    assert!(bad(Impairment {
        loss: 1.5,
        ..Impairment::default()
    })
    .contains("loss"));
    assert!(bad(Impairment {
        duplicate: -0.1,
        ..Impairment::default()
    })
    .contains("duplicate"));
    assert!(bad(Impairment {
        bandwidth_kbps: Some(0),
        ..Impairment::default()
    })
    .contains("bandwidth"));
    assert!(bad(Impairment {
        delay_ms: 60_001,
        ..Impairment::default()
    })
    .contains("delayMs"));
    assert!(Impairment::default().validate().is_ok());
}
