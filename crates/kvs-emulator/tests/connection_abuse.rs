//! Issue #27 item 3: clients that open connections and never send a request neither shut out
//! the API nor the inspection endpoint of `kvs-emulator serve`. The figures each test prints
//! are the ones the issue asks for. (Item 4, the exit after SIGTERM whatever clients do, is in
//! `serve_binary.rs`.)

mod support;

use std::time::{Duration, Instant};

use support::Service;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The file descriptors a test needs (its clients and, in process, the emulator's side).
fn assert_descriptors(needed: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .expect("the open-files limit");
    assert!(
        soft >= needed,
        "this test opens {needed} descriptors; the limit is {soft}: raise it (ulimit -n {needed})"
    );
}

/// The time until `GET /_emulator/v1/calls` is answered, as a client that retries at once
/// after a failed attempt (a reset connection, a failed handshake) sees it; bounded by a
/// minute, so that a slow answer is measured rather than waited for forever.
async fn time_inspection(service: &Service) -> Duration {
    let calls = format!(
        "{}{}/calls",
        service.endpoint,
        kvs_emulator::inspect::PREFIX
    );
    let asked = Instant::now();
    loop {
        assert!(
            asked.elapsed() < Duration::from_secs(60),
            "GET calls not answered within a minute"
        );
        let (service, calls) = (service.clone(), calls.clone());
        // `http_raw` panics on a failed attempt; the task's panic is that attempt's failure.
        let attempt = tokio::spawn(async move { service.http_raw("GET", &calls, b"").await });
        match tokio::time::timeout(Duration::from_secs(60), attempt).await {
            Ok(Ok((200, _))) => return asked.elapsed(),
            Ok(Ok((status, body))) => panic!("GET calls: {status} {body}"),
            Ok(Err(_failed)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(_) => panic!("GET calls not answered within a minute"),
        }
    }
}

/// The time a signed AWS API call takes (DescribeSignalingChannel of a channel that does not
/// exist: a 404 from the service is an answer).
async fn time_api_call(service: &Service) -> Duration {
    let asked = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(60),
        service
            .control_plane()
            .describe_signaling_channel()
            .channel_name("nobody-here")
            .send(),
    )
    .await
    .expect("the API answered within a minute");
    let err = answer.expect_err("no such channel");
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(404),
        "{err:?}"
    );
    asked.elapsed()
}

/// `kvs-emulator serve` in `dir`, its log in `dir/emulator.log`.
async fn serve(dir: &std::path::Path) -> (tokio::process::Child, Service) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kvs-emulator"));
    command
        .args(["serve", "--data-dir"])
        .arg(dir)
        .stderr(std::fs::File::create(dir.join("emulator.log")).expect("a log file"));
    let (child, info) = kvs_test_support::serve(command).await;
    (child, Service::from_startup_info(&info))
}

/// The last lines of the log of the emulator [`serve`] started in `dir`.
fn log_tail(dir: &std::path::Path) -> String {
    let log = std::fs::read_to_string(dir.join("emulator.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// 1,024 clients connect to the control-plane port of `kvs-emulator serve` (TLS) and say
/// nothing: as many as the listener has connection slots. The inspection API and the AWS API
/// still answer at once (they waited for the TLS handshake timeout and more: 27.8 s in the
/// issue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tls_connections_never_shut_out_the_api() {
    assert_descriptors(1024 + 256);
    let dir = tempfile::tempdir().unwrap();
    let (_child, service) = serve(dir.path()).await;
    let authority = service.endpoint.trim_start_matches("https://").to_owned();
    let mut silent = Vec::with_capacity(1024);
    for _ in 0..1024 {
        silent.push(TcpStream::connect(&authority).await.expect("connect"));
    }
    let inspection = time_inspection(&service).await;
    let api = time_api_call(&service).await;
    eprintln!(
        "1,024 silent TLS connections: GET /_emulator/v1/calls answered in {inspection:?}, \
         DescribeSignalingChannel in {api:?}"
    );
    assert!(inspection < Duration::from_secs(2), "{inspection:?}");
    assert!(api < Duration::from_secs(2), "{api:?}");
    drop(silent);
}

/// 1,100 plain TCP clients of `kvs-emulator serve` that reopen their connection as soon as the
/// emulator closes it, for 20 s, while requests are timed one after another (each took 6.0 s
/// in the issue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_reopened_as_fast_as_they_close_do_not_slow_requests() {
    const FLOOD: usize = 1100;
    assert_descriptors(FLOOD as u64 + 256);
    let dir = tempfile::tempdir().unwrap();
    let (mut child, service) = serve(dir.path()).await;
    let authority = service.endpoint.trim_start_matches("https://").to_owned();
    let stop = tokio_util::sync::CancellationToken::new();
    let reopened = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Connects go out a few at a time, so that the kernel's SYN and accept queues (not the
    // emulator) are not what the flood measures.
    let connecting = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..FLOOD {
        let (authority, stop, reopened, connecting) = (
            authority.clone(),
            stop.clone(),
            reopened.clone(),
            connecting.clone(),
        );
        flood.spawn(async move {
            let mut buf = [0u8; 64];
            while !stop.is_cancelled() {
                let connected = {
                    let _turn = connecting.acquire().await.expect("open");
                    tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(&authority))
                        .await
                };
                let Ok(Ok(mut tcp)) = connected else {
                    continue;
                };
                reopened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Say nothing; wait for the emulator to close the connection.
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = async { while tcp.read(&mut buf).await.is_ok_and(|n| n > 0) {} } => {}
                }
            }
        });
    }
    let window = Instant::now() + Duration::from_secs(20);
    let mut latencies = Vec::new();
    while Instant::now() < window {
        if let Some(exit) = child.try_wait().expect("the emulator's status") {
            panic!(
                "the emulator exited ({exit}); its log:\n{}",
                log_tail(dir.path())
            );
        }
        latencies.push(time_inspection(&service).await);
    }
    stop.cancel();
    while flood.join_next().await.is_some() {}
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let max = *latencies.last().expect("at least one request");
    eprintln!(
        "1,100 TCP connections reopened as they closed ({} connects): {} requests in 20 s, \
         median {median:?}, longest {max:?}",
        reopened.load(std::sync::atomic::Ordering::Relaxed),
        latencies.len()
    );
    // A request whose SYN the flood's full accept queue drops waits for Linux's SYN
    // retransmission (1 s, then 2 s more), and the other abuse test runs beside this one: CI
    // measured 2.05 s once. Before the fix every request took 6.0 s.
    assert!(max < Duration::from_secs(4), "longest {max:?}");
    assert!(median < Duration::from_millis(500), "median {median:?}");
}
