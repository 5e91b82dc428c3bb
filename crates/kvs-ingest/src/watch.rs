//! `kvs-ingest demo --play`: where to watch the demo's stream while it is being ingested, once
//! the emulator stored its first fragment (LIVE playback needs one).

use std::time::{Duration, Instant};

use kvs_emulator::EmulatorHandle;

use crate::output::Stream;

/// How long to wait for the first stored fragment before saying where the page is anyway.
const FIRST_FRAGMENT_BOUND: Duration = Duration::from_secs(60);
/// How often to look for it.
const POLL: Duration = Duration::from_millis(250);

/// The lines that say where to watch `channel`'s stream: the player page and a LIVE HLS URL.
pub(crate) async fn where_to_watch(
    emulator: &EmulatorHandle,
    channel: &str,
    json: bool,
) -> Vec<(Stream, String)> {
    let Some(stream) = emulator.storage_stream_name(channel) else {
        return vec![(
            Stream::Stderr,
            format!("the channel {channel} stores no media: nothing to play"),
        )];
    };
    let page = emulator.player_page_url(&stream);
    let ca = emulator.ca_cert_path();
    let deadline = Instant::now() + FIRST_FRAGMENT_BOUND;
    let hls = loop {
        // Reads the stream's index from disk: off the runtime's scheduling (the CLI's runtime
        // is multi-threaded).
        match tokio::task::block_in_place(|| emulator.live_hls_url(&stream)) {
            Ok(url) => break Ok(url),
            Err(e) if Instant::now() >= deadline => break Err(e),
            Err(_) => tokio::time::sleep(POLL).await, // the poll interval
        }
    };
    if json {
        let line = serde_json::json!({
            "event": "play",
            "stream": stream,
            "playerPage": page,
            "hls": hls.as_ref().ok(),
            "hlsError": hls.as_ref().err(),
            "caCertPath": ca,
        });
        return vec![(Stream::Stdout, line.to_string())];
    }
    let mut lines = vec![
        format!("watch stream {stream} live (Ctrl-C ends the demo):"),
        format!("  in any browser: {page}"),
    ];
    match hls {
        Ok(url) => lines.push(format!(
            "  HLS (ffplay; VLC or Safari once the CA below is trusted): {url}"
        )),
        Err(e) => lines.push(format!("  no HLS URL yet: {e}")),
    }
    if let Some(ca) = ca {
        lines.push(format!(
            "  the emulator's TLS comes from its own CA ({}): a browser warns until you accept it or import the CA as trusted; ffplay plays the URL as it is (it does not verify)",
            ca.display()
        ));
    }
    lines.into_iter().map(|l| (Stream::Stdout, l)).collect()
}
