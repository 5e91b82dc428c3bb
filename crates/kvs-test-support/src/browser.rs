//! Headless Chromium as a channel's storage peer: an independent WebRTC implementation that
//! receives what a device sends. It shows the emulator's own page,
//! `/_emulator/v1/storage-peer.html?channel=NAME`, so that the page is of the emulator's origin
//! (the storage-peer WebSocket refuses other origins and `Origin: null`, which a `file://`
//! page sends).
//!
//! Chromium trusts the emulator's CA through an NSS database made for the test (certificate
//! verification stays on), and runs with a home and a profile of its own in a temporary
//! directory.

use std::process::{Child, Command, Stdio};

use kvs_emulator::EmulatorHandle;

/// A headless Chromium playing one channel's storage peer; killed when dropped.
#[derive(Debug)]
pub struct StoragePeerBrowser {
    child: Child,
    _home: tempfile::TempDir,
}

impl StoragePeerBrowser {
    /// Start Chromium on `emulator`'s storage-peer page for `channel` (a name or ARN). It
    /// registers as the channel's storage peer a moment later
    /// ([`EmulatorHandle::external_storage_peers`] lists it then).
    ///
    /// # Panics
    /// When `certutil` or `chromium` cannot run (`cargo xtask test` installs both), or the
    /// emulator has no TLS.
    pub fn start(emulator: &EmulatorHandle, channel: &str) -> Self {
        let page = format!(
            "{}{}/storage-peer.html?channel={}",
            emulator.endpoint_url(),
            kvs_emulator::inspect::PREFIX,
            crate::raw::urlencode(channel)
        );
        let (child, home) = launch(emulator, &page, &["--remote-debugging-port=0"]);
        Self { child, _home: home }
    }
}

/// A home whose NSS database trusts `emulator`'s CA, the way a user would trust it.
fn home_trusting(emulator: &EmulatorHandle) -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("a home for the browser");
    let nssdb = home.path().join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).expect("the NSS database directory");
    let db = format!("sql:{}", nssdb.display());
    let certutil = |args: &[&str]| {
        let status = Command::new("certutil")
            .args(args)
            .status()
            .expect("certutil runs (cargo xtask test installs libnss3-tools)");
        assert!(status.success(), "certutil {args:?}");
    };
    certutil(&["-N", "-d", &db, "--empty-password"]);
    let ca = emulator.ca_cert_path().expect("TLS is on");
    certutil(&[
        "-A",
        "-d",
        &db,
        "-t",
        "C,,",
        "-n",
        "kvs-emulator",
        "-i",
        ca.to_str().expect("a UTF-8 path"),
    ]);
    home
}

/// Headless Chromium on `page`, with a home and a profile of its own trusting `emulator`'s CA.
pub(crate) fn launch(
    emulator: &EmulatorHandle,
    page: &str,
    extra: &[&str],
) -> (Child, tempfile::TempDir) {
    let home = home_trusting(emulator);
    let child = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--allow-loopback-in-peer-connection",
            "--disable-features=WebRtcHideLocalIpsWithMdns",
        ])
        .args(extra)
        .arg(format!(
            "--user-data-dir={}",
            home.path().join("profile").display()
        ))
        .arg(page)
        .env("HOME", home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium runs (cargo xtask test installs it)");
    (child, home)
}

impl Drop for StoragePeerBrowser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
