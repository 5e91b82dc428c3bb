//! coturn on 127.0.0.1: UDP and TCP on one port, TLS on another, TURN REST credentials
//! (`use-auth-secret` + `static-auth-secret`), loopback peers allowed (the storage peer is on
//! 127.0.0.1 too). Its log is kept for the tests to read.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pki::TestCa;

/// How long coturn may take to open its listeners.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running coturn; killed on drop.
#[derive(Debug)]
pub struct Coturn {
    child: Child,
    dir: tempfile::TempDir,
    /// UDP and TCP listener port.
    pub port: u16,
    /// TLS listener port.
    pub tls_port: u16,
    /// The shared secret the TURN REST credentials are made with.
    pub secret: String,
    /// The CA that signed coturn's TLS certificate.
    pub ca: TestCa,
}

impl Coturn {
    /// Start coturn and wait (bounded) until its TCP and TLS listeners accept.
    ///
    /// # Panics
    /// When `turnserver` is not installed (`cargo xtask test` installs the `coturn` package)
    /// or does not start in time; the panic message says which and shows coturn's log.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = TestCa::new("coturn");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, &ca.server_cert_pem).expect("cert written");
        std::fs::write(&key, &ca.server_key_pem).expect("key written");
        let port = free_port();
        let tls_port = free_port();
        let secret = format!("secret-{}", std::process::id());
        let log = dir.path().join("turn.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new("turnserver")
            .args([
                "-n",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                &format!("--tls-listening-port={tls_port}"),
                "--use-auth-secret",
                &format!("--static-auth-secret={secret}"),
                "--realm=kvs-test",
                "--allow-loopback-peers",
                "--no-cli",
                "--no-dtls",
                "--no-multicast-peers",
                &format!("--cert={}", cert.display()),
                &format!("--pkey={}", key.display()),
                &format!("--db={}", dir.path().join("turndb").display()),
                &format!("--pidfile={}", dir.path().join("turn.pid").display()),
                "--log-file=stdout",
                "--simple-log",
                "--verbose",
            ])
            .stdout(Stdio::from(log_file.try_clone().expect("log handle")))
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run turnserver ({e}): install coturn (`cargo xtask test` does)")
            });
        let mut coturn = Self {
            child,
            dir,
            port,
            tls_port,
            secret,
            ca,
        };
        coturn.wait_until_listening();
        coturn
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("turnserver exited ({status}):\n{}", self.log());
            }
            let up = |port| {
                TcpStream::connect_timeout(
                    &SocketAddr::from(([127, 0, 0, 1], port)),
                    Duration::from_millis(200),
                )
                .is_ok()
            };
            if up(self.port) && up(self.tls_port) && self.log().contains("Total General servers") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "turnserver did not listen within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `turn:127.0.0.1:PORT?transport=udp`.
    pub fn udp_uri(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }

    /// `turn:127.0.0.1:PORT?transport=tcp`.
    pub fn tcp_uri(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=tcp", self.port)
    }

    /// `turns:127.0.0.1:TLS_PORT?transport=tcp`.
    pub fn tls_uri(&self) -> String {
        format!("turns:127.0.0.1:{}?transport=tcp", self.tls_port)
    }

    /// What coturn logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The turnserver process id (for its CPU time in /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where its log is.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("turn.log")
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 now (the OS picks; a race with another
/// process is possible but the start check catches it).
fn free_port() -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("a TCP port");
        let port = tcp.local_addr().expect("address").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}
