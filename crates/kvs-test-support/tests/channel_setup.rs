//! The one-time channel setup a device's owner does, through the control plane, for many
//! channels at once (as `cargo xtask soak --sessions 20` does): the emulator throttles the
//! calls past the service's per-second limits, and the setup rides it out.

use kvs_test_support::TestEmulator;

#[tokio::test]
async fn twenty_storage_channels_set_up_at_once_ride_out_the_service_s_throttling() {
    let emulator = TestEmulator::start().await;
    let names: Vec<String> = (0..20).map(|i| format!("many-{i}")).collect();
    let setups = names.iter().map(|name| emulator.storage_channel(name));
    let made = futures_util::future::join_all(setups).await;

    let client = emulator.control_plane();
    for (channel_arn, stream_arn) in &made {
        let described = client
            .describe_media_storage_configuration()
            .channel_arn(channel_arn)
            .send()
            .await
            .expect("DescribeMediaStorageConfiguration");
        let configuration = described
            .media_storage_configuration
            .expect("a storage configuration");
        assert_eq!(
            configuration.stream_arn.as_deref(),
            Some(stream_arn.as_str())
        );
        assert_eq!(configuration.status.as_str(), "ENABLED", "{channel_arn}");
    }
    let mut channels: Vec<_> = made.iter().map(|(channel, _)| channel).collect();
    channels.dedup();
    assert_eq!(channels.len(), 20);
}
