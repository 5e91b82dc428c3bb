//! An in-process kvs-emulator and the one-time channel setup a device's owner does.

#![allow(dead_code)]

use aws_sdk_kinesisvideo::types::{MediaStorageConfiguration, MediaStorageConfigurationStatus};
use kvs_emulator::{Emulator, EmulatorHandle};

pub(crate) struct TestEmulator {
    pub handle: EmulatorHandle,
    pub sdk_config: aws_types::SdkConfig,
    pub control_plane: aws_sdk_kinesisvideo::Client,
}

pub(crate) async fn start() -> TestEmulator {
    let handle = Emulator::builder()
        .temporary()
        .start()
        .await
        .expect("emulator starts");
    let sdk_config = handle.sdk_config().expect("sdk config");
    let control_plane = aws_sdk_kinesisvideo::Client::new(&sdk_config);
    TestEmulator {
        handle,
        sdk_config,
        control_plane,
    }
}

impl TestEmulator {
    /// A channel (no storage). Returns its ARN.
    pub(crate) async fn channel(&self, name: &str) -> String {
        self.control_plane
            .create_signaling_channel()
            .channel_name(name)
            .send()
            .await
            .expect("CreateSignalingChannel")
            .channel_arn
            .expect("ARN")
    }

    /// A stream with retention. Returns its ARN.
    pub(crate) async fn stream(&self, name: &str) -> String {
        self.control_plane
            .create_stream()
            .stream_name(name)
            .data_retention_in_hours(24)
            .send()
            .await
            .expect("CreateStream")
            .stream_arn
            .expect("ARN")
    }

    pub(crate) async fn set_storage(
        &self,
        channel_arn: &str,
        stream_arn: Option<&str>,
        enabled: bool,
    ) {
        let status = if enabled {
            MediaStorageConfigurationStatus::Enabled
        } else {
            MediaStorageConfigurationStatus::Disabled
        };
        self.control_plane
            .update_media_storage_configuration()
            .channel_arn(channel_arn)
            .media_storage_configuration(
                MediaStorageConfiguration::builder()
                    .set_stream_arn(stream_arn.map(str::to_owned))
                    .status(status)
                    .build()
                    .expect("configuration"),
            )
            .send()
            .await
            .expect("UpdateMediaStorageConfiguration");
    }

    /// A channel storing into its own stream `<name>-stream`. Returns the channel ARN.
    pub(crate) fn storage_channel(&self, name: &str) -> String {
        self.handle
            .create_storage_channel(name)
            .expect("storage channel")
    }

    /// How many times the emulator saw each AWS operation.
    pub(crate) fn calls(&self, operation: &str) -> u64 {
        self.handle.calls().get(operation).copied().unwrap_or(0)
    }
}
