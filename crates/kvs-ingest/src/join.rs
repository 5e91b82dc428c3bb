//! `kvs-ingest join` and `join-as-viewer`: the bare storage API calls, for parity with
//! `aws kinesis-video-webrtc-storage join-storage-session[-as-viewer]`.

use clap::{Args, ValueEnum};
use kvs_webrtc_discovery::Role;

use crate::aws::{init_logging, AwsArgs};
use crate::{chain, Exit, Failed};

/// `--output json|text`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Json,
    Text,
}

/// JoinStorageSession's arguments.
#[derive(Debug, Args)]
pub(crate) struct JoinArgs {
    /// The channel's ARN.
    #[arg(long)]
    channel_arn: String,
    /// The storage API endpoint (the channel's WEBRTC endpoint); discovered when absent.
    #[arg(long = "webrtc-endpoint-url")]
    webrtc_endpoint_url: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    output: Output,
    #[command(flatten)]
    aws: AwsArgs,
}

/// JoinStorageSessionAsViewer's arguments.
#[derive(Debug, Args)]
pub(crate) struct JoinAsViewerArgs {
    #[command(flatten)]
    join: JoinArgs,
    /// The viewer's client id.
    #[arg(long)]
    client_id: String,
}

pub(crate) async fn join(args: JoinArgs) -> Result<(), Failed> {
    call(args, None).await
}

pub(crate) async fn join_as_viewer(args: JoinAsViewerArgs) -> Result<(), Failed> {
    call(args.join, Some(args.client_id)).await
}

async fn call(args: JoinArgs, viewer: Option<String>) -> Result<(), Failed> {
    let _logs = init_logging(args.aws.debug, !args.aws.debug);
    let config = args
        .aws
        .build(args.aws.ingest_config(&args.channel_arn).await?)?;
    let role = if viewer.is_some() {
        Role::Viewer
    } else {
        Role::Master
    };
    config
        .discovery()
        .join_storage_session()
        .channel(&args.channel_arn)
        .role(role)
        .set_client_id(viewer)
        .set_webrtc_endpoint_url(args.webrtc_endpoint_url)
        .send()
        .await
        .map_err(|e| Failed::new(Exit::of_ingest(e.kind().into()), chain(&e)))?;
    // The service answers 200 with an empty body; the AWS CLI prints nothing for it.
    match args.output {
        Output::Json => println!("{{}}"),
        Output::Text => {}
    }
    Ok(())
}
