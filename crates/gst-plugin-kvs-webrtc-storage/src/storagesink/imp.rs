//! The bin's implementation: properties, request pads (each a ghost of a [`TrackSink`]'s pad),
//! and the session's start and stop with the state changes.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use kvs_webrtc_ingest::{AudioSource, ErrorChain, Track, VideoSource};

use super::{IceTransportPolicy, Role, CAT};
use crate::caps;
use crate::messages::{self, ElementCounts};
use crate::runtime::runtime;
use crate::session::{lock, Attached, Session, VideoInput, Writer};
use crate::settings::Settings;
use crate::tracksink::TrackSink;

/// Pictures that may wait for the library (its queue; a write waits while it is full).
const VIDEO_QUEUE: usize = 8;
/// Opus packets that may wait for the library.
const AUDIO_QUEUE: usize = 16;

/// A requested pad: the ghost pad users link to, and the sink behind it.
#[derive(Debug)]
struct TrackPad {
    ghost: gst::GhostPad,
    sink: TrackSink,
}

#[derive(Debug, Default)]
struct State {
    video: Option<TrackPad>,
    audio: Option<TrackPad>,
    /// From READY→PAUSED to PAUSED→READY.
    session: Option<Arc<Session>>,
    /// The statistics of the last session, once it is gone.
    last_stats: Option<gst::Structure>,
}

impl State {
    fn slot(&mut self, track: Track) -> &mut Option<TrackPad> {
        match track {
            Track::Video => &mut self.video,
            Track::Audio => &mut self.audio,
        }
    }
}

/// The implementation of [`super::StorageSink`].
#[derive(Debug, Default)]
pub struct StorageSink {
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

#[glib::object_subclass]
impl ObjectSubclass for StorageSink {
    const NAME: &'static str = "GstKvsWebrtcStorageSink";
    type Type = super::StorageSink;
    type ParentType = gst::Bin;
}

impl StorageSink {
    /// READY→PAUSED: check the settings against the requested pads and start the session.
    fn start(&self) -> Result<(), gst::StateChangeError> {
        let settings = lock(&self.settings).clone();
        let runtime = runtime().map_err(|e| {
            self.post_error_message(e);
            gst::StateChangeError
        })?;
        let (video, audio) = {
            let state = lock(&self.state);
            (
                state.video.as_ref().map(|t| t.sink.clone()),
                state.audio.as_ref().map(|t| t.sink.clone()),
            )
        };
        let plan = settings
            .plan(video.is_some(), audio.is_some())
            .map_err(|e| {
                gst::element_imp_error!(self, gst::ResourceError::Settings, ("{}", ErrorChain(&e)));
                gst::StateChangeError
            })?;
        gst::info!(CAT, imp = self, "starting: {settings:?}");

        let mut video_writer = None;
        let video_input = match &video {
            Some(sink) => {
                let (source, writer) = VideoSource::push(VIDEO_QUEUE);
                let input = VideoInput {
                    source,
                    keyframe_requests: writer.keyframe_requests(),
                    pad: sink.static_pad("sink").ok_or(gst::StateChangeError)?,
                };
                video_writer = Some(writer);
                Some(input)
            }
            None => None,
        };
        let (audio_source, audio_writer) = match audio {
            Some(_) => {
                let (source, writer) = AudioSource::push(AUDIO_QUEUE);
                (Some(source), Some(writer))
            }
            None => (None, None),
        };
        let session = Session::start(
            runtime,
            self.obj().upcast_ref(),
            plan,
            video_input,
            audio_source,
        );
        if let (Some(sink), Some(writer)) = (&video, video_writer) {
            sink.attach(Attached {
                session: Arc::clone(&session),
                writer: Writer::Video(writer),
            });
        }
        if let (Some(sink), Some(writer)) = (&audio, audio_writer) {
            sink.attach(Attached {
                session: Arc::clone(&session),
                writer: Writer::Audio(writer),
            });
        }
        lock(&self.state).session = Some(session);
        Ok(())
    }

    /// PAUSED→READY (or a failed start): stop the session, joining or not, and keep its
    /// statistics.
    fn stop(&self) {
        let (session, sinks) = {
            let mut state = lock(&self.state);
            let sinks: Vec<TrackSink> = [&state.video, &state.audio]
                .into_iter()
                .flatten()
                .map(|pad| pad.sink.clone())
                .collect();
            (state.session.take(), sinks)
        };
        for sink in sinks {
            sink.detach();
        }
        if let Some(session) = session {
            session.stop();
            lock(&self.state).last_stats = Some(session.stats());
        }
    }

    /// Post an error with a clear message when a pad is given caps it refuses, before the
    /// pad's caps check turns them down (which upstream reports only as "not-negotiated").
    fn check_caps_events(&self, ghost: &gst::GhostPad, track: Track) {
        let element = self.obj().downgrade();
        ghost.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_pad, info| {
            if let Some(gst::EventView::Caps(event)) = info.event().map(|e| e.view()) {
                if let Err(message) = caps::check(track, event.caps()) {
                    if let Some(element) = element.upgrade() {
                        gst::error!(CAT, obj = element, "{message}");
                        gst::element_error!(element, gst::CoreError::Negotiation, ("{}", message));
                    }
                }
            }
            gst::PadProbeReturn::Ok
        });
    }
}

impl ObjectImpl for StorageSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let string = |name: &'static str, nick: &'static str, blurb: &'static str| {
                glib::ParamSpecString::builder(name)
                    .nick(nick)
                    .blurb(blurb)
                    .mutable_ready()
            };
            vec![
                string(
                    "channel-name",
                    "Channel name",
                    "The signaling channel whose storage session the media goes into: its name \
                     or its ARN",
                )
                .build(),
                string(
                    "channel-arn",
                    "Channel ARN",
                    "The signaling channel's ARN (instead of channel-name)",
                )
                .build(),
                string(
                    "aws-region",
                    "AWS region",
                    "The channel's region (default: AWS_REGION or the AWS profile's)",
                )
                .build(),
                string(
                    "access-key",
                    "Access key ID",
                    "An access key ID, with secret-key (default: the standard credential chain: \
                     environment, profile, instance role)",
                )
                .build(),
                string(
                    "secret-key",
                    "Secret access key",
                    "The secret of access-key (write-only, never logged)",
                )
                .write_only()
                .build(),
                string(
                    "session-token",
                    "Session token",
                    "The session token of temporary credentials (write-only, never logged)",
                )
                .write_only()
                .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("iot-certificate")
                    .nick("IoT certificate")
                    .blurb(
                        "Credentials from a device certificate through the AWS IoT credentials \
                         endpoint instead of a key, as kvssink's: iot-certificate,endpoint=..., \
                         cert-path=...,key-path=...,role-aliases=...[,ca-path=...]\
                         [,iot-thing-name=...] (the thing name defaults to the channel's name)",
                    )
                    .mutable_ready()
                    .build(),
                string(
                    "endpoint-url",
                    "Endpoint URL",
                    "The Kinesis Video control-plane endpoint, e.g. an emulator's (the channel's \
                     own endpoints are still discovered)",
                )
                .build(),
                string(
                    "ca-file",
                    "CA file",
                    "A CA certificate (PEM) trusted besides the system's, for the API calls, the \
                     signaling socket and turns: servers (an emulator's or a proxy's)",
                )
                .build(),
                glib::ParamSpecEnum::builder_with_default(
                    "ice-transport-policy",
                    IceTransportPolicy::All,
                )
                .nick("ICE transport policy")
                .blurb("Which candidates are offered: all, or relay (TURN only)")
                .mutable_ready()
                .build(),
                glib::ParamSpecEnum::builder_with_default("role", Role::Master)
                    .nick("Role")
                    .blurb("Join as the channel's master (video and audio) or as a viewer (audio)")
                    .mutable_ready()
                    .build(),
                string(
                    "client-id",
                    "Client ID",
                    "The viewer's client id (role=viewer)",
                )
                .build(),
                glib::ParamSpecBoolean::builder("sync")
                    .nick("Sync")
                    .blurb("Send each buffer at its time on the pipeline clock (as any sink); unsynchronized, a file goes out as fast as it is read, a burst a network may drop in part")
                    .default_value(true)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "The ingestion's statistics (kvswebrtcstoragesink-stats: state, joins, \
                         rejoins, per-track frames, bytes, drops, keyframe requests, and the \
                         element's buffers and force-key-unit events)",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let string = || value.get::<Option<String>>().ok().flatten();
        let mut settings = lock(&self.settings);
        match pspec.name() {
            "channel-name" => settings.channel_name = string(),
            "channel-arn" => settings.channel_arn = string(),
            "aws-region" => settings.aws_region = string(),
            "access-key" => settings.access_key = string(),
            "secret-key" => settings.secret_key = string(),
            "session-token" => settings.session_token = string(),
            "iot-certificate" => {
                settings.iot_certificate = value.get::<Option<gst::Structure>>().ok().flatten();
            }
            "endpoint-url" => settings.endpoint_url = string(),
            "ca-file" => settings.ca_file = string().map(PathBuf::from),
            "client-id" => settings.client_id = string(),
            "ice-transport-policy" => {
                settings.ice_transport_policy = value.get().unwrap_or_default();
            }
            "role" => settings.role = value.get().unwrap_or_default(),
            "sync" => {
                settings.sync = value.get().unwrap_or(true);
                let sync = settings.sync;
                drop(settings);
                let state = lock(&self.state);
                for pad in [&state.video, &state.audio].into_iter().flatten() {
                    pad.sink.set_property("sync", sync);
                }
                return;
            }
            other => gst::warning!(CAT, imp = self, "no writable property {other}"),
        }
        // Never the value: it may be a secret.
        gst::debug!(CAT, imp = self, "{} set", pspec.name());
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            let state = lock(&self.state);
            return match (&state.session, &state.last_stats) {
                (Some(session), _) => session.stats(),
                (None, Some(last)) => last.clone(),
                (None, None) => messages::stats_structure(None, ElementCounts::default()),
            }
            .to_value();
        }
        let settings = lock(&self.settings);
        match pspec.name() {
            "channel-name" => settings.channel_name.to_value(),
            "channel-arn" => settings.channel_arn.to_value(),
            "aws-region" => settings.aws_region.to_value(),
            "access-key" => settings.access_key.to_value(),
            "iot-certificate" => settings.iot_certificate.to_value(),
            "endpoint-url" => settings.endpoint_url.to_value(),
            "ca-file" => settings
                .ca_file
                .as_ref()
                .map(|p| p.display().to_string())
                .to_value(),
            "client-id" => settings.client_id.to_value(),
            "ice-transport-policy" => settings.ice_transport_policy.to_value(),
            "role" => settings.role.to_value(),
            "sync" => settings.sync.to_value(),
            // The write-only secrets are never read back.
            _ => None::<String>.to_value(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        // A sink for the pipeline's EOS and latency handling, even before its pads exist.
        self.obj().set_element_flags(gst::ElementFlags::SINK);
    }
}

impl GstObjectImpl for StorageSink {}

impl ElementImpl for StorageSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Kinesis Video WebRTC storage sink",
                "Sink/Network",
                "Ingests H.264 video and Opus audio into a Kinesis video stream through a \
                 signaling channel's WebRTC storage session (JoinStorageSession)",
                "kvs-webrtc-rs developers",
            )
        });
        Some(&METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            [(Track::Video, caps::video()), (Track::Audio, caps::audio())]
                .into_iter()
                .map(|(track, caps)| {
                    gst::PadTemplate::new(
                        track.as_str(),
                        gst::PadDirection::Sink,
                        gst::PadPresence::Request,
                        &caps,
                    )
                    .expect("a pad template from fixed caps is valid")
                })
                .collect()
        });
        TEMPLATES.as_ref()
    }

    fn request_new_pad(
        &self,
        templ: &gst::PadTemplate,
        _name: Option<&str>,
        _caps: Option<&gst::Caps>,
    ) -> Option<gst::Pad> {
        let track = match templ.name_template() {
            "video" => Track::Video,
            "audio" => Track::Audio,
            _ => return None,
        };
        if self.obj().current_state() > gst::State::Ready {
            gst::error!(
                CAT,
                imp = self,
                "the {} pad can only be requested before the element starts",
                track.as_str()
            );
            return None;
        }
        if lock(&self.state).slot(track).is_some() {
            gst::error!(
                CAT,
                imp = self,
                "there is one {} pad, already requested",
                track.as_str()
            );
            return None;
        }
        let sink = TrackSink::new(track);
        sink.set_property("sync", lock(&self.settings).sync);
        self.obj().add(&sink).ok()?;
        let ghost = sink
            .static_pad("sink")
            .and_then(|target| {
                gst::GhostPad::builder_from_template_with_target(templ, &target).ok()
            })
            .map(|builder| builder.name(track.as_str()).build());
        let Some(ghost) = ghost else {
            let _ = self.obj().remove(&sink);
            return None;
        };
        self.check_caps_events(&ghost, track);
        if self.obj().add_pad(&ghost).is_err() {
            let _ = self.obj().remove(&sink);
            return None;
        }
        let _ = sink.sync_state_with_parent();
        *lock(&self.state).slot(track) = Some(TrackPad {
            ghost: ghost.clone(),
            sink,
        });
        Some(ghost.upcast())
    }

    fn release_pad(&self, pad: &gst::Pad) {
        let released = {
            let mut state = lock(&self.state);
            [Track::Video, Track::Audio].into_iter().find_map(|track| {
                let slot = state.slot(track);
                let ours = slot
                    .as_ref()
                    .is_some_and(|t| t.ghost.upcast_ref::<gst::Pad>() == pad);
                if ours {
                    slot.take()
                } else {
                    None
                }
            })
        };
        if let Some(TrackPad { ghost, sink }) = released {
            let _ = ghost.set_active(false);
            let _ = self.obj().remove_pad(&ghost);
            let _ = sink.set_state(gst::State::Null);
            let _ = self.obj().remove(&sink);
        }
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            self.start()?;
        }
        let result = self.parent_change_state(transition);
        match transition {
            gst::StateChange::ReadyToPaused if result.is_err() => self.stop(),
            gst::StateChange::PausedToReady => self.stop(),
            _ => {}
        }
        result
    }
}

impl BinImpl for StorageSink {}
