//! Receive buffers as large as a media server's: a device may send a burst (an application
//! that pushes frames faster than real time, a catch-up after a stall), and with the kernel's
//! default buffer (about 200 KB on Linux) a burst of a few hundred packets overruns the socket
//! whenever the emulator is not scheduled at that moment (a loaded machine, a debug build):
//! the audio is lost for good and the video waits for NACKs. The service's storage peer does
//! not drop a burst of that size; neither should its stand-in.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::UdpSocket;

/// The receive buffer asked for a media socket (the kernel's `net.core.rmem_max` caps it).
pub(crate) const MEDIA_RECEIVE_BUFFER: usize = 4 << 20;

/// The receive buffer that bursts need at least; below it the emulator says once how to raise
/// the system's limit.
const ENOUGH_FOR_BURSTS: usize = 1 << 20;

static WARNED: AtomicBool = AtomicBool::new(false);

/// Enlarge `socket`'s receive buffer to [`MEDIA_RECEIVE_BUFFER`], as far as the system allows;
/// the size it has afterwards.
pub(crate) fn enlarge_receive_buffer(socket: &UdpSocket) -> usize {
    let socket = socket2::SockRef::from(socket);
    if let Err(e) = socket.set_recv_buffer_size(MEDIA_RECEIVE_BUFFER) {
        tracing::debug!(error = %e, "cannot enlarge a UDP receive buffer");
    }
    let size = socket.recv_buffer_size().unwrap_or(0);
    if size < ENOUGH_FOR_BURSTS && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            bytes = size,
            "UDP receive buffers are capped at {size} bytes by the system: a burst of media may \
             be dropped by the kernel; raise the cap with `sysctl -w net.core.rmem_max={MEDIA_RECEIVE_BUFFER}`"
        );
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_media_socket_takes_a_burst_of_a_megabyte_or_the_system_cap() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let before = socket2::SockRef::from(&socket).recv_buffer_size().unwrap();
        let after = enlarge_receive_buffer(&socket);
        let cap = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(0);
        // Linux doubles what is asked (bookkeeping), up to twice the cap.
        assert!(
            after >= ENOUGH_FOR_BURSTS.min(2 * cap),
            "receive buffer {before} -> {after} bytes (system cap {cap})"
        );
        assert!(after >= before, "{before} -> {after}");
    }
}
