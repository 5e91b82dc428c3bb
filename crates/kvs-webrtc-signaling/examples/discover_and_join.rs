//! The main job until the ingestion helper exists: start an embedded kvs-emulator, set up a
//! channel as its owner would (control plane), then do what a device does with our crates:
//! discover the channel's endpoints, get its ICE servers, open the presigned signaling socket,
//! join the storage session and receive the storage peer's SDP offer.
//!
//! ```sh
//! cargo run -p kvs-webrtc-signaling --example discover_and_join
//! ```
//!
//! Against AWS instead: drop the emulator, load the `SdkConfig` with
//! `aws_config::load_defaults`, and skip `trust_root_certificate_pem`.

use std::time::Duration;

use aws_sdk_kinesisvideo::types::{MediaStorageConfiguration, MediaStorageConfigurationStatus};
use kvs_emulator::Emulator;
use kvs_webrtc_signaling::{ConnectionState, Event, SignalingMessage};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const CHANNEL: &str = "demo-camera";

#[tokio::main]
async fn main() -> Result<()> {
    // The CA and recordings live in a temporary directory removed on exit.
    let emulator = Emulator::builder().temporary().start().await?;
    println!("emulator: {}", emulator.endpoint_url());
    // Region, test credentials, control-plane endpoint_url and an HTTPS client that trusts the
    // emulator's CA (verification stays on).
    let sdk_config = emulator.sdk_config()?;

    // One-time setup by the channel's owner: a channel storing into a stream with retention.
    let control_plane = aws_sdk_kinesisvideo::Client::new(&sdk_config);
    let channel_arn = control_plane
        .create_signaling_channel()
        .channel_name(CHANNEL)
        .send()
        .await?
        .channel_arn
        .ok_or("no channel ARN")?;
    let stream_arn = control_plane
        .create_stream()
        .stream_name("demo-camera-stream")
        .data_retention_in_hours(24)
        .send()
        .await?
        .stream_arn
        .ok_or("no stream ARN")?;
    control_plane
        .update_media_storage_configuration()
        .channel_arn(&channel_arn)
        .media_storage_configuration(
            MediaStorageConfiguration::builder()
                .stream_arn(&stream_arn)
                .status(MediaStorageConfigurationStatus::Enabled)
                .build()?,
        )
        .send()
        .await?;

    // The device: discovery ...
    let discovery = kvs_webrtc_discovery::Client::new(&sdk_config);
    let found = discovery.discover().channel(CHANNEL).send().await?;
    println!("channel {}", found.channel().arn());
    println!("  stores into {:?}", found.channel().storage_stream_arn());
    println!("  WSS    {}", found.endpoints().wss());
    println!("  HTTPS  {}", found.endpoints().https());
    println!("  WEBRTC {:?}", found.endpoints().webrtc());
    let ice = discovery.ice_servers().channel(CHANNEL).send().await?;
    println!(
        "ICE: {} TURN server(s), STUN {}",
        ice.turn_servers().len(),
        ice.stun_url()
    );

    // ... the signaling socket (presigned for every connection attempt) ...
    let signaling = kvs_webrtc_signaling::Client::from_conf(
        kvs_webrtc_signaling::Config::builder(discovery.clone())
            .trust_root_certificate_pem(emulator.ca_cert_pem().ok_or("TLS is on")?)
            .build()?,
    );
    let mut connection = signaling.connect().channel(CHANNEL).send().await?;

    // ... and on every (re)connection, a storage-session join whose offer arrives on it.
    let mut candidates = 0;
    let offer = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = connection.next_event().await {
            match event {
                Event::StateChanged(ConnectionState::Connected { reconnects }) => {
                    println!("signaling connected (reconnects: {reconnects}); joining");
                    discovery
                        .join_storage_session()
                        .channel(CHANNEL)
                        .send()
                        .await?;
                }
                Event::Message(SignalingMessage::IceCandidate { .. }) => candidates += 1,
                Event::Message(SignalingMessage::Offer {
                    sender,
                    description,
                }) => {
                    println!("storage offer received (sender: {sender:?})");
                    return Ok(description.sdp);
                }
                other => println!("event: {other:?}"),
            }
        }
        Err::<String, Box<dyn std::error::Error + Send + Sync>>("the connection ended".into())
    })
    .await??;
    for line in offer
        .lines()
        .filter(|l| l.starts_with("m=") || l.contains("rtpmap"))
    {
        println!("  {line}");
    }
    println!("{candidates} candidate(s) before the offer");
    connection.close().await;
    emulator.shutdown().await;
    Ok(())
}
