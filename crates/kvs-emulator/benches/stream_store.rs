//! The stream store's capacity, measured on its parts alone: Opus to AAC transcoding, cutting
//! and writing fragments (each synced and indexed), and reading them back as
//! `GetMediaForFragmentList` serves them, and making images of them as `GetImages` does. The CPU of whole storage sessions, store included, is
//! `storage_sessions`.
//!
//! ```sh
//! cargo bench -p kvs-emulator --features bench --bench stream_store
//! KVS_BENCH_MEDIA_SECONDS=300 cargo bench -p kvs-emulator --features bench --bench stream_store
//! ```

fn main() {
    let seconds: u32 = std::env::var("KVS_BENCH_MEDIA_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120)
        / 3
        * 3;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let f = kvs_emulator::bench::measure(dir.path(), seconds.max(3));
    let per_packet = f.transcode.as_secs_f64() * 1e6 / f.opus_packets as f64;
    let mib = f.bytes as f64 / (1024.0 * 1024.0);
    println!(
        "stream_store: {} s of media (H.264 320x240@25 + 440 Hz Opus 48 kHz), {} fragments, {:.2} MiB",
        f.media_seconds, f.fragments, mib
    );
    println!(
        "  Opus -> AAC-LC: {per_packet:.1} us per 20 ms packet = {:.2}% of one core per real-time stream ({:.0}x real time)",
        per_packet / 20_000.0 * 100.0,
        20_000.0 / per_packet
    );
    println!(
        "  write (cut, write, fsync, rename, index): {:.1} fragments/s, {:.1} MiB/s, {:.2} ms per fragment",
        f.fragments as f64 / f.write.as_secs_f64(),
        mib / f.write.as_secs_f64(),
        f.write.as_secs_f64() * 1e3 / f.fragments as f64
    );
    println!(
        "  read (file + fragment tags, as GetMediaForFragmentList): {:.0} fragments/s, {:.0} MiB/s",
        f.fragments as f64 / f.read.as_secs_f64(),
        mib / f.read.as_secs_f64()
    );
    println!(
        "  GetImages (read, decode from the keyframe, JPEG at 80, 320x240; one a second of media): {:.0} images/s, {:.1} ms per image",
        f.images as f64 / f.images_time.as_secs_f64(),
        f.images_time.as_secs_f64() * 1e3 / f.images as f64
    );
}
