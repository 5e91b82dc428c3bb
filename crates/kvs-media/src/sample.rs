//! The project's sample clip (3 s, made with ffmpeg; `sample/README.md` has the commands), for
//! demos and tests: the same media as raw H.264, as Ogg Opus, and muxed into Matroska.

/// 3 s of ffmpeg's test pattern: H.264 constrained baseline 3.0, 320×240, 25 fps, Annex-B, a
/// keyframe with SPS and PPS every 25 frames (75 access units).
pub const H264: &[u8] = include_bytes!("../sample/testsrc-320x240-25fps-3s.h264");

/// The frame rate of [`H264`] (raw H.264 carries no timestamps).
pub const H264_FPS: u32 = 25;

/// 3 s of a 440 Hz tone: Ogg Opus, 48 kHz mono, 20 ms packets.
pub const OPUS: &[u8] = include_bytes!("../sample/sine-440hz-48k-mono-3s.opus");

/// [`H264`] and [`OPUS`] in one Matroska file, as `ffmpeg -c copy` muxes them.
pub const MKV: &[u8] = include_bytes!("../sample/testsrc-and-sine-3s.mkv");

/// The clip written as files, for what reads files (the CLI, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFiles {
    /// [`H264`] as `clip.h264`.
    pub video: std::path::PathBuf,
    /// [`OPUS`] as `clip.opus`.
    pub audio: std::path::PathBuf,
}

/// Write [`H264`] and [`OPUS`] into `dir` (created if missing) as `clip.h264` and `clip.opus`.
///
/// # Errors
/// When the directory or a file cannot be written.
pub fn write_files(dir: &std::path::Path) -> std::io::Result<SampleFiles> {
    std::fs::create_dir_all(dir)?;
    let files = SampleFiles {
        video: dir.join("clip.h264"),
        audio: dir.join("clip.opus"),
    };
    std::fs::write(&files.video, H264)?;
    std::fs::write(&files.audio, OPUS)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_hold_the_clip() {
        let dir = std::env::temp_dir().join(format!("kvs-media-sample-{}", std::process::id()));
        let files = write_files(&dir.join("nested")).unwrap();
        assert_eq!(std::fs::read(&files.video).unwrap(), H264);
        assert_eq!(std::fs::read(&files.audio).unwrap(), OPUS);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
