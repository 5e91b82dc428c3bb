//! `kvs-ingest join` and `join-as-viewer`: the bare storage API calls, for parity with
//! `aws kinesis-video-webrtc-storage join-storage-session[-as-viewer]`.

use clap::{Args, ValueEnum};

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
    init_logging(args.aws.debug, !args.aws.debug);
    let (sdk_config, _) = args.aws.sdk_config().await?;
    let result = match &args.webrtc_endpoint_url {
        Some(url) => {
            let config = aws_sdk_kinesisvideowebrtcstorage::config::Builder::from(&sdk_config)
                .endpoint_url(url)
                .build();
            let client = aws_sdk_kinesisvideowebrtcstorage::Client::from_conf(config);
            let outcome = match &viewer {
                Some(id) => client
                    .join_storage_session_as_viewer()
                    .channel_arn(&args.channel_arn)
                    .client_id(id)
                    .send()
                    .await
                    .map(drop)
                    .map_err(aws_sdk_kinesisvideowebrtcstorage::Error::from),
                None => client
                    .join_storage_session()
                    .channel_arn(&args.channel_arn)
                    .send()
                    .await
                    .map(drop)
                    .map_err(aws_sdk_kinesisvideowebrtcstorage::Error::from),
            };
            outcome.map_err(|e| {
                let exit = match &e {
                    aws_sdk_kinesisvideowebrtcstorage::Error::AccessDeniedException(_) => {
                        Exit::AccessDenied
                    }
                    aws_sdk_kinesisvideowebrtcstorage::Error::ResourceNotFoundException(_) => {
                        Exit::ChannelNotUsable
                    }
                    aws_sdk_kinesisvideowebrtcstorage::Error::InvalidArgumentException(_) => {
                        Exit::BadInput
                    }
                    _ => Exit::Failure,
                };
                Failed::new(exit, chain(&e))
            })
        }
        None => {
            let discovery = kvs_webrtc_discovery::Client::new(&sdk_config);
            let outcome = match &viewer {
                Some(id) => discovery
                    .join_storage_session_as_viewer()
                    .channel(&args.channel_arn)
                    .client_id(id)
                    .send()
                    .await
                    .map(drop),
                None => discovery
                    .join_storage_session()
                    .channel(&args.channel_arn)
                    .send()
                    .await
                    .map(drop),
            };
            outcome.map_err(|e| {
                use kvs_webrtc_discovery::ErrorKind as D;
                let exit = match e.kind() {
                    D::InvalidInput | D::Config => Exit::BadInput,
                    D::AccessDenied => Exit::AccessDenied,
                    D::ChannelNotFound
                    | D::ChannelNotUsable
                    | D::StorageDisabled
                    | D::NoStreamMapped => Exit::ChannelNotUsable,
                    _ => Exit::Failure,
                };
                Failed::new(exit, chain(&e))
            })
        }
    };
    result?;
    // The service answers 200 with an empty body; the AWS CLI prints nothing for it.
    match args.output {
        Output::Json => println!("{{}}"),
        Output::Text => {}
    }
    Ok(())
}
