//! Where media comes from: files, pipes (live capture) and frames pushed by the application.
//!
//! File and pipe sources are read on a blocking thread each, a bounded number of frames ahead
//! (the reader waits when the queue is full), and paced by their timestamps. Pushed frames are
//! sent as they arrive.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kvs_media::annexb::AnnexBReader;
use kvs_media::ogg::OggOpusReader;
use kvs_media::MediaError;
use tokio::sync::{mpsc, watch};

use crate::error::{Error, ErrorKind};

/// Frames read ahead of their time, per track.
const READ_AHEAD: usize = 32;
/// Raw H.264 carries no timestamps; ffmpeg assumes 25 fps as well.
pub const DEFAULT_FPS: u32 = 25;

/// One H.264 access unit (a picture), Annex-B, with its presentation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// Annex-B bytes with start codes: the picture's NAL units (parameter sets before an IDR
    /// are added if missing).
    pub data: Vec<u8>,
    /// The presentation time, from any origin, increasing.
    pub timestamp: Duration,
}

/// One Opus packet with its presentation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPacket {
    /// The Opus packet.
    pub data: Vec<u8>,
    /// The presentation time, on the same clock as the video's.
    pub timestamp: Duration,
}

/// What a source thread delivers.
#[derive(Debug)]
pub(crate) enum SourceItem<T> {
    Frame(T),
    Failed(String),
}

type BoxRead = Box<dyn Read + Send>;
/// Opens (or reopens, for looping) a reader whose timestamps start at the given offset.
type Opener<R> = Box<dyn FnMut(Duration) -> Result<R, Error> + Send>;

enum VideoInput {
    File(PathBuf),
    Reader(BoxRead, String),
    Push(mpsc::Receiver<SourceItem<VideoFrame>>),
}

/// The video track's source. Build one with [`VideoSource::annex_b_file`],
/// [`VideoSource::annex_b_reader`] or [`VideoSource::push`].
pub struct VideoSource {
    input: VideoInput,
    fps: u32,
    looping: bool,
    keyframes: Option<watch::Sender<u64>>,
}

impl std::fmt::Debug for VideoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let input = match &self.input {
            VideoInput::File(p) => format!("file {}", p.display()),
            VideoInput::Reader(_, name) => format!("reader {name}"),
            VideoInput::Push(_) => "push".into(),
        };
        f.debug_struct("VideoSource")
            .field("input", &input)
            .field("fps", &self.fps)
            .field("looping", &self.looping)
            .finish()
    }
}

impl VideoSource {
    /// An H.264 Annex-B file (`.h264`, as `ffmpeg -f h264` writes it).
    pub fn annex_b_file(path: impl AsRef<Path>) -> Self {
        Self::new(VideoInput::File(path.as_ref().to_owned()))
    }

    /// An H.264 Annex-B stream from a reader: a pipe or stdin for live capture. `name` is how
    /// errors refer to it.
    pub fn annex_b_reader(reader: impl Read + Send + 'static, name: impl Into<String>) -> Self {
        Self::new(VideoInput::Reader(Box::new(reader), name.into()))
    }

    /// Frames the application writes itself, and the writer to write them with. At most
    /// `capacity` frames wait; [`VideoWriter::write`] waits while the queue is full.
    pub fn push(capacity: usize) -> (Self, VideoWriter) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (keyframes_tx, keyframes_rx) = watch::channel(0);
        let mut source = Self::new(VideoInput::Push(rx));
        source.keyframes = Some(keyframes_tx);
        (
            source,
            VideoWriter {
                frames: tx,
                keyframes: keyframes_rx,
            },
        )
    }

    /// The frame rate of a raw H.264 file or stream (default 25).
    pub fn fps(mut self, fps: u32) -> Self {
        self.fps = fps;
        self
    }

    /// Start the file over at its end (files only).
    pub fn looping(mut self, looping: bool) -> Self {
        self.looping = looping;
        self
    }

    fn new(input: VideoInput) -> Self {
        Self {
            input,
            fps: DEFAULT_FPS,
            looping: false,
            keyframes: None,
        }
    }
}

enum AudioInput {
    File(PathBuf),
    Reader(BoxRead, String),
    Push(mpsc::Receiver<SourceItem<AudioPacket>>),
}

/// The audio track's source. Build one with [`AudioSource::ogg_opus_file`],
/// [`AudioSource::ogg_opus_reader`] or [`AudioSource::push`].
pub struct AudioSource {
    input: AudioInput,
    looping: bool,
}

impl std::fmt::Debug for AudioSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let input = match &self.input {
            AudioInput::File(p) => format!("file {}", p.display()),
            AudioInput::Reader(_, name) => format!("reader {name}"),
            AudioInput::Push(_) => "push".into(),
        };
        f.debug_struct("AudioSource")
            .field("input", &input)
            .field("looping", &self.looping)
            .finish()
    }
}

impl AudioSource {
    /// An Ogg Opus file (`.opus`, as `ffmpeg -c:a libopus` writes it).
    pub fn ogg_opus_file(path: impl AsRef<Path>) -> Self {
        Self::new(AudioInput::File(path.as_ref().to_owned()))
    }

    /// An Ogg Opus stream from a reader: a pipe or stdin for live capture.
    pub fn ogg_opus_reader(reader: impl Read + Send + 'static, name: impl Into<String>) -> Self {
        Self::new(AudioInput::Reader(Box::new(reader), name.into()))
    }

    /// Packets the application writes itself, and the writer to write them with.
    pub fn push(capacity: usize) -> (Self, AudioWriter) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self::new(AudioInput::Push(rx)), AudioWriter { packets: tx })
    }

    /// Start the file over at its end (files only).
    pub fn looping(mut self, looping: bool) -> Self {
        self.looping = looping;
        self
    }

    fn new(input: AudioInput) -> Self {
        Self {
            input,
            looping: false,
        }
    }
}

/// Writes video frames into a running ingestion ([`VideoSource::push`]).
#[derive(Debug, Clone)]
pub struct VideoWriter {
    frames: mpsc::Sender<SourceItem<VideoFrame>>,
    keyframes: watch::Receiver<u64>,
}

impl VideoWriter {
    /// Queue a frame; waits while the queue is full. Frames written while no session is
    /// streaming are dropped (and counted), so memory stays bounded whatever the network does.
    ///
    /// # Errors
    /// [`ErrorKind::GaveUp`] once the ingestion has stopped.
    pub async fn write(&self, frame: VideoFrame) -> Result<(), Error> {
        self.frames
            .send(SourceItem::Frame(frame))
            .await
            .map_err(|_| Error::new(ErrorKind::GaveUp, "the ingestion has stopped"))
    }

    /// Counts the storage peer's keyframe requests: when it changes, encode an IDR next
    /// (frames are dropped until one arrives).
    pub fn keyframe_requests(&self) -> watch::Receiver<u64> {
        self.keyframes.clone()
    }
}

/// Writes Opus packets into a running ingestion ([`AudioSource::push`]).
#[derive(Debug, Clone)]
pub struct AudioWriter {
    packets: mpsc::Sender<SourceItem<AudioPacket>>,
}

impl AudioWriter {
    /// Queue a packet; waits while the queue is full.
    ///
    /// # Errors
    /// [`ErrorKind::GaveUp`] once the ingestion has stopped.
    pub async fn write(&self, packet: AudioPacket) -> Result<(), Error> {
        self.packets
            .send(SourceItem::Frame(packet))
            .await
            .map_err(|_| Error::new(ErrorKind::GaveUp, "the ingestion has stopped"))
    }
}

/// The video and audio sources a container opened.
pub(crate) type OpenedTracks = (
    Option<OpenedSource<VideoFrame>>,
    Option<OpenedSource<AudioPacket>>,
);

/// A source ready to deliver frames.
#[derive(Debug)]
pub(crate) struct OpenedSource<T> {
    pub(crate) frames: mpsc::Receiver<SourceItem<T>>,
    /// Paced by timestamps (files and pipes) or sent on arrival (pushed).
    pub(crate) paced: bool,
    /// Keyframe requests go here (pushed video).
    pub(crate) keyframes: Option<watch::Sender<u64>>,
    /// The first frame, read to check the input before anything connects.
    pub(crate) first: Option<T>,
}

trait FrameReader: Send {
    type Frame: Send + 'static;
    fn next_frame(&mut self) -> Result<Option<Self::Frame>, MediaError>;
    /// The time just after the last frame returned, where a loop continues.
    fn end_time(&self) -> Duration;
}

struct H264Reader {
    inner: AnnexBReader<BufReader<BoxRead>>,
    period: Duration,
    offset: Duration,
    last: Duration,
}

impl FrameReader for H264Reader {
    type Frame = VideoFrame;
    fn next_frame(&mut self) -> Result<Option<VideoFrame>, MediaError> {
        Ok(self.inner.next_access_unit()?.map(|au| {
            self.last = self.offset + au.timestamp;
            VideoFrame {
                data: au.data,
                timestamp: self.last,
            }
        }))
    }
    fn end_time(&self) -> Duration {
        self.last + self.period
    }
}

struct OpusReader {
    inner: OggOpusReader<BufReader<BoxRead>>,
    offset: Duration,
    end: Duration,
}

impl FrameReader for OpusReader {
    type Frame = AudioPacket;
    fn next_frame(&mut self) -> Result<Option<AudioPacket>, MediaError> {
        Ok(self.inner.next_packet()?.map(|p| {
            let timestamp = self.offset + p.timestamp;
            self.end = timestamp + kvs_media::opus::samples_to_duration(p.samples);
            AudioPacket {
                data: p.data,
                timestamp,
            }
        }))
    }
    fn end_time(&self) -> Duration {
        self.end
    }
}

fn open_file(path: &Path) -> Result<BoxRead, Error> {
    File::open(path)
        .map(|f| Box::new(f) as BoxRead)
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("cannot open {}: {e}", path.display()),
            )
            .with_source(e)
        })
}

impl VideoSource {
    /// Check the input (read its first frame) and start reading. Blocking: call on a blocking
    /// thread.
    pub(crate) fn open(self) -> Result<OpenedSource<VideoFrame>, Error> {
        let fps = self.fps;
        if fps == 0 || fps > 240 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("a frame rate of {fps} fps is not usable; give 1 to 240"),
            ));
        }
        let (name, open): (String, Opener<H264Reader>) = match self.input {
            VideoInput::Push(rx) => return Ok(pushed(rx, self.keyframes)),
            VideoInput::File(path) => {
                let name = format!("the video file {}", path.display());
                (
                    name,
                    Box::new(move |offset| Ok(h264_reader(open_file(&path)?, fps, offset))),
                )
            }
            VideoInput::Reader(reader, name) => {
                if self.looping {
                    return Err(looping_needs_a_file(&name));
                }
                let mut reader = Some(reader);
                (
                    name.clone(),
                    Box::new(move |offset| match reader.take() {
                        Some(r) => Ok(h264_reader(r, fps, offset)),
                        None => Err(looping_needs_a_file(&name)),
                    }),
                )
            }
        };
        start_reader(name, open, self.looping)
    }
}

impl AudioSource {
    /// Check the input (read its headers and first packet) and start reading. Blocking.
    pub(crate) fn open(self) -> Result<OpenedSource<AudioPacket>, Error> {
        let (name, open): (String, Opener<OpusReader>) = match self.input {
            AudioInput::Push(rx) => return Ok(pushed(rx, None)),
            AudioInput::File(path) => {
                let name = format!("the audio file {}", path.display());
                let what = name.clone();
                (
                    name,
                    Box::new(move |offset| opus_reader(open_file(&path)?, offset, &what)),
                )
            }
            AudioInput::Reader(reader, name) => {
                if self.looping {
                    return Err(looping_needs_a_file(&name));
                }
                let mut reader = Some(reader);
                let what = name.clone();
                (
                    name,
                    Box::new(move |offset| match reader.take() {
                        Some(r) => opus_reader(r, offset, &what),
                        None => Err(looping_needs_a_file(&what)),
                    }),
                )
            }
        };
        start_reader(name, open, self.looping)
    }
}

fn h264_reader(input: BoxRead, fps: u32, offset: Duration) -> H264Reader {
    H264Reader {
        inner: AnnexBReader::new(BufReader::new(input), fps),
        period: Duration::from_secs(1) / fps,
        offset,
        last: offset,
    }
}

fn opus_reader(input: BoxRead, offset: Duration, name: &str) -> Result<OpusReader, Error> {
    let inner = OggOpusReader::new(BufReader::new(input)).map_err(|e| Error::media(name, e))?;
    Ok(OpusReader {
        inner,
        offset,
        end: offset,
    })
}

fn looping_needs_a_file(name: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{name} cannot loop: only files can be read again"),
    )
}

fn pushed<T>(
    frames: mpsc::Receiver<SourceItem<T>>,
    keyframes: Option<watch::Sender<u64>>,
) -> OpenedSource<T> {
    OpenedSource {
        frames,
        paced: false,
        keyframes,
        first: None,
    }
}

/// Read the first frame now (so bad input fails before anything connects), then go on reading
/// on a thread of its own.
fn start_reader<R: FrameReader + 'static>(
    name: String,
    mut open: Opener<R>,
    looping: bool,
) -> Result<OpenedSource<R::Frame>, Error> {
    let mut reader = open(Duration::ZERO)?;
    let first = reader
        .next_frame()
        .map_err(|e| Error::media(&name, e))?
        .ok_or_else(|| Error::new(ErrorKind::InvalidInput, format!("{name} holds no frames")))?;
    let (tx, frames) = mpsc::channel(READ_AHEAD);
    std::thread::Builder::new()
        .name("kvs-ingest-source".into())
        .spawn(move || loop {
            let item = match reader.next_frame() {
                Ok(Some(frame)) => SourceItem::Frame(frame),
                Ok(None) if looping => match open(reader.end_time()) {
                    Ok(again) => {
                        reader = again;
                        continue;
                    }
                    Err(e) => SourceItem::Failed(e.to_string()),
                },
                Ok(None) => return,
                Err(e) => SourceItem::Failed(format!("{name}: {e}")),
            };
            let failed = matches!(item, SourceItem::Failed(_));
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        })
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot start a reader thread: {e}")))?;
    Ok(OpenedSource {
        frames,
        paced: true,
        keyframes: None,
        first: Some(first),
    })
}

enum ContainerInput {
    File(PathBuf),
    Reader(BoxRead, String),
}

/// Both tracks from one Matroska/WebM file or stream, as ffmpeg (`-f matroska`) or GStreamer
/// (`matroskamux`) write it: the first H.264 track and the first Opus track are sent, others
/// are ignored. Give it with [`IngestFluentBuilder::media`](crate::IngestFluentBuilder::media).
pub struct ContainerSource {
    input: ContainerInput,
    looping: bool,
}

impl std::fmt::Debug for ContainerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let input = match &self.input {
            ContainerInput::File(p) => format!("file {}", p.display()),
            ContainerInput::Reader(_, name) => format!("reader {name}"),
        };
        f.debug_struct("ContainerSource")
            .field("input", &input)
            .field("looping", &self.looping)
            .finish()
    }
}

impl ContainerSource {
    /// A Matroska (`.mkv`) or WebM (`.webm`) file.
    pub fn matroska_file(path: impl AsRef<Path>) -> Self {
        Self {
            input: ContainerInput::File(path.as_ref().to_owned()),
            looping: false,
        }
    }

    /// A Matroska/WebM stream from a reader: a pipe or stdin for live capture.
    pub fn matroska_reader(reader: impl Read + Send + 'static, name: impl Into<String>) -> Self {
        Self {
            input: ContainerInput::Reader(Box::new(reader), name.into()),
            looping: false,
        }
    }

    /// Start the file over at its end (files only).
    pub fn looping(mut self, looping: bool) -> Self {
        self.looping = looping;
        self
    }

    /// Check the input (its tracks and first frames) and start reading both tracks. Blocking.
    pub(crate) fn open(self, want_video: bool) -> Result<OpenedTracks, Error> {
        use kvs_media::mkv_reader::{FrameKind, MkvReader};
        let looping = self.looping;
        let (name, mut open): (String, Opener<MkvReader<BufReader<BoxRead>>>) = match self.input {
            ContainerInput::File(path) => {
                let name = format!("the media file {}", path.display());
                let what = name.clone();
                (
                    name,
                    Box::new(move |_| {
                        MkvReader::new(BufReader::new(open_file(&path)?))
                            .map_err(|e| Error::media(&what, e))
                    }),
                )
            }
            ContainerInput::Reader(reader, name) => {
                if looping {
                    return Err(looping_needs_a_file(&name));
                }
                let mut reader = Some(reader);
                let what = name.clone();
                (
                    name,
                    Box::new(move |_| match reader.take() {
                        Some(r) => {
                            MkvReader::new(BufReader::new(r)).map_err(|e| Error::media(&what, e))
                        }
                        None => Err(looping_needs_a_file(&what)),
                    }),
                )
            }
        };
        let mut reader = open(Duration::ZERO)?;
        let tracks = reader.tracks().clone();
        let found = || {
            tracks
                .codecs
                .iter()
                .map(|(_, c)| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if want_video && tracks.video.is_none() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{name} has no H.264 video track (its tracks: {})", found()),
            ));
        }
        if tracks.audio.is_none() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{name} has no Opus audio track (its tracks: {})", found()),
            ));
        }
        let send_video = want_video && tracks.video.is_some();
        let (video_tx, video_rx) = mpsc::channel(READ_AHEAD);
        let (audio_tx, audio_rx) = mpsc::channel(READ_AHEAD);
        // The first video frame is read now: it tells the answer the H.264 profile.
        let mut early_audio = Vec::new();
        let mut first_video = None;
        let mut first_audio = None;
        while (send_video && first_video.is_none()) || first_audio.is_none() {
            let frame = reader
                .next_frame()
                .map_err(|e| Error::media(&name, e))?
                .ok_or_else(|| {
                    Error::new(ErrorKind::InvalidInput, format!("{name} holds no frames"))
                })?;
            match frame.kind {
                FrameKind::Video if send_video && first_video.is_none() => {
                    first_video = Some(VideoFrame {
                        data: frame.data,
                        timestamp: frame.timestamp,
                    })
                }
                FrameKind::Video => {}
                FrameKind::Audio if first_audio.is_none() => {
                    first_audio = Some(AudioPacket {
                        data: frame.data,
                        timestamp: frame.timestamp,
                    })
                }
                FrameKind::Audio if early_audio.len() < READ_AHEAD * 16 => {
                    early_audio.push(AudioPacket {
                        data: frame.data,
                        timestamp: frame.timestamp,
                    })
                }
                FrameKind::Audio => {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "{name}: no video frame among its first {} audio packets",
                            early_audio.len()
                        ),
                    ))
                }
            }
        }
        std::thread::Builder::new()
            .name("kvs-ingest-mkv".into())
            .spawn(move || {
                // A failure goes to a track that is read (a viewer reads no video).
                let (fail_video, fail_audio) = (video_tx.clone(), audio_tx.clone());
                let fail = |reason: String| {
                    if send_video {
                        let _ = fail_video.blocking_send(SourceItem::Failed(reason));
                    } else {
                        let _ = fail_audio.blocking_send(SourceItem::Failed(reason));
                    }
                };
                for packet in early_audio {
                    if audio_tx.blocking_send(SourceItem::Frame(packet)).is_err() {
                        return;
                    }
                }
                let mut offset = Duration::ZERO;
                let mut end = Duration::ZERO;
                loop {
                    let frame = match reader.next_frame() {
                        Ok(Some(frame)) => frame,
                        Ok(None) if looping => match open(end) {
                            Ok(again) => {
                                reader = again;
                                offset = end;
                                continue;
                            }
                            Err(e) => return fail(e.to_string()),
                        },
                        Ok(None) => return,
                        Err(e) => return fail(format!("{name}: {e}")),
                    };
                    let timestamp = offset + frame.timestamp;
                    // 40 ms past the last frame: where a loop continues.
                    end = end.max(timestamp + Duration::from_millis(40));
                    let sent = match frame.kind {
                        FrameKind::Video if send_video => video_tx
                            .blocking_send(SourceItem::Frame(VideoFrame {
                                data: frame.data,
                                timestamp,
                            }))
                            .is_ok(),
                        FrameKind::Video => true,
                        FrameKind::Audio => audio_tx
                            .blocking_send(SourceItem::Frame(AudioPacket {
                                data: frame.data,
                                timestamp,
                            }))
                            .is_ok(),
                    };
                    if !sent {
                        return;
                    }
                }
            })
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot start a reader thread: {e}")))?;
        let video = send_video.then(|| OpenedSource {
            frames: video_rx,
            paced: true,
            keyframes: None,
            first: first_video,
        });
        let audio = Some(OpenedSource {
            frames: audio_rx,
            paced: true,
            keyframes: None,
            first: first_audio,
        });
        Ok((video, audio))
    }
}
