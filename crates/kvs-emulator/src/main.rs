//! `kvs-emulator serve`: run the emulator until Ctrl-C, printing one JSON line with the endpoint,
//! region, CA path and test credentials on stdout. `kvs-emulator cert issue`: a device identity
//! for the IoT credentials endpoint, from the CA in a data directory.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kvs_emulator::{AccessKey, Emulator, FragmentQuotas, Throttling, TlsMode, TpsLimit, TurnMode};

#[derive(Parser)]
#[command(
    name = "kvs-emulator",
    version,
    about = "A local stand-in for AWS Kinesis Video Streams WebRTC ingestion"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve until Ctrl-C.
    Serve(Box<ServeArgs>),
    /// Device certificates for the IoT credentials endpoint.
    #[command(subcommand)]
    Cert(CertCommand),
}

#[derive(Subcommand)]
enum CertCommand {
    /// Issue a device certificate and key for a thing, signed by the CA in --data-dir (created
    /// there if absent, as `serve` would), and attached to the thing: the thing name is the
    /// certificate's subject common name, so a running `serve` needs no notice of it.
    Issue(IssueArgs),
}

#[derive(clap::Args)]
struct IssueArgs {
    /// The thing the certificate is attached to (conventionally the channel name).
    #[arg(long)]
    thing: String,
    /// The data directory of `serve` (its CA: ca.pem, ca.key).
    #[arg(long, default_value = "kvs-emulator-data")]
    data_dir: PathBuf,
    /// Where to write <thing>.cert.pem and <thing>.private.key.
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Region to claim.
    #[arg(long, default_value = "us-west-2")]
    region: String,
    /// Control-plane port (0: any free port; the channel endpoints take free ports). 443: every
    /// endpoint on port 443, each on its own loopback address (control plane 127.0.0.1, the
    /// channels' HTTPS, WSS and WEBRTC endpoints 127.0.0.2, .3, .4), as AWS serves them; the
    /// AWS KVS WebRTC C SDK needs it. Ports below 1024 need root or CAP_NET_BIND_SERVICE.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The address to listen on; with --port 443, the first of four consecutive loopback
    /// addresses (e.g. 127.0.43.1 for 127.0.43.1-4, beside another emulator on 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Directory for the generated CA, the channels and streams (registry.json: a restart here
    /// keeps them; delete it to start with none), each stream's fragments and, by default,
    /// the recordings.
    #[arg(long, default_value = "kvs-emulator-data")]
    data_dir: PathBuf,
    /// Use this CA certificate (PEM) instead of generating one; needs --ca-key.
    #[arg(long, requires = "ca_key")]
    ca_cert: Option<PathBuf>,
    /// The private key (PEM, PKCS#8) of --ca-cert.
    #[arg(long, requires = "ca_cert")]
    ca_key: Option<PathBuf>,
    /// Serve plain http:// and ws:// instead of TLS. Only for clients that cannot trust a CA.
    #[arg(long, conflicts_with_all = ["ca_cert", "ca_key"])]
    plain_http: bool,
    /// Where recordings go (default: <data-dir>/recordings).
    #[arg(long)]
    recordings_dir: Option<PathBuf>,
    /// Accept this access key id (with --secret-access-key); default: a random key printed at start.
    #[arg(
        long,
        requires = "secret_access_key",
        env = "KVS_EMULATOR_ACCESS_KEY_ID"
    )]
    access_key_id: Option<String>,
    /// The secret of --access-key-id.
    #[arg(
        long,
        requires = "access_key_id",
        env = "KVS_EMULATOR_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    secret_access_key: Option<String>,
    /// UDP port of the embedded TURN server (0: any free port).
    #[arg(long, default_value_t = 0, conflicts_with_all = ["no_turn", "turn_uri"])]
    turn_port: u16,
    /// Run no TURN server; GetIceServerConfig returns a placeholder entry.
    #[arg(long, conflicts_with = "turn_uri")]
    no_turn: bool,
    /// Return this external TURN server instead of the embedded one (repeatable, at most 4);
    /// it must check TURN REST credentials made with --turn-secret (coturn: use-auth-secret).
    #[arg(long, requires = "turn_secret")]
    turn_uri: Vec<String>,
    /// The shared secret of the external TURN server.
    #[arg(
        long,
        requires = "turn_uri",
        env = "KVS_EMULATOR_TURN_SECRET",
        hide_env_values = true
    )]
    turn_secret: Option<String>,
    /// Change one API's rate limit: Operation=ACCOUNT/CHANNEL requests per second, `-` for none
    /// (e.g. `--tps JoinStorageSession=-/1`). Repeatable; applied over the AWS defaults.
    #[arg(long, value_parser = Throttling::parse_rule)]
    tps: Vec<(String, TpsLimit)>,
    /// The archived-media fragment quotas of each stream: METADATA/MEDIA points per second,
    /// `-` for none (default: the service's 10000/500). ListFragments, GetClip, GetImages,
    /// GetMediaForFragmentList and the playback paths take points from them.
    #[arg(long, value_parser = FragmentQuotas::parse)]
    fragment_quotas: Option<FragmentQuotas>,
    /// Throttle nothing (by default the published AWS quotas apply).
    #[arg(long, conflicts_with_all = ["tps", "fragment_quotas"])]
    no_throttling: bool,
    /// Add a role alias to the IoT credentials endpoint, with its credentials' duration in
    /// seconds (default 3600): NAME or NAME=SECONDS. Repeatable. The alias KvsCameraIoTRoleAlias
    /// (3600 s) is always there; name it to change its duration. Emulator only: durations
    /// below AWS's 900 s are accepted, for tests that watch credentials expire.
    #[arg(long, value_parser = parse_role_alias)]
    role_alias: Vec<(String, std::time::Duration)>,
    /// Port of the IoT credentials endpoint (0: any free port), on --bind.
    #[arg(long, default_value_t = 0)]
    iot_port: u16,
    /// How many channels of the account may have media storage enabled at once (the
    /// service's quota, 100 by default); raise it to run more devices against one emulator.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    storage_channels: u32,
    /// MiB of media one stream's store keeps at most (default 1024); past it the oldest
    /// fragments are removed, as retention would. Lower it for long runs on a small disk.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    stream_store_mib: u64,
    /// Serve the player page's hls.js and dash.js from this `node_modules` directory (`npm ci`
    /// in crates/kvs-emulator/player makes one) instead of fetching them from the npm registry
    /// on first use.
    #[arg(long)]
    player_scripts: Option<PathBuf>,
}

/// With `live-heap`: the system allocator, counted, so that `/_emulator/v1/process` tells a
/// leak from memory the C allocator keeps (the soak reads it).
#[cfg(feature = "live-heap")]
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

#[tokio::main]
async fn main() -> ExitCode {
    #[cfg(feature = "live-heap")]
    if let Err(e) = kvs_emulator::inspect::set_live_heap_probe(|| ALLOCATOR.allocated()) {
        eprintln!("kvs-emulator: the live heap is not reported: {e}");
    }
    // Logs are written by a thread of their own through a bounded, lossy queue: a stderr that
    // is read slowly or not at all (a supervisor's pipe) loses log lines, and never holds up a
    // storage session, an API call or the shutdown.
    let (log_writer, mut logs) =
        kvs_emulator::stderr_log::StderrLog::start("kvs-emulator-logs", 4096);
    let log_drops = logs.error_counter();
    tracing_subscriber::fmt()
        .with_writer(log_writer)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "kvs_emulator=info".into()),
        )
        .init();
    let args = match Cli::parse().command {
        Command::Serve(args) => *args,
        Command::Cert(CertCommand::Issue(args)) => return issue(&args),
    };
    let tls = match (&args.ca_cert, &args.ca_key, args.plain_http) {
        (_, _, true) => TlsMode::Plain,
        (Some(cert), Some(key), false) => TlsMode::ProvidedCa {
            cert_pem: cert.clone(),
            key_pem: key.clone(),
        },
        _ => TlsMode::GeneratedCa {
            dir: args.data_dir.clone(),
        },
    };
    let mut builder = Emulator::builder()
        .region(args.region)
        .tls(tls)
        .bind(args.bind);
    builder = if args.port == 443 {
        builder.every_endpoint_on_port(443)
    } else {
        builder.control_plane_port(args.port)
    };
    builder = builder
        .streams_dir(args.data_dir.join("streams"))
        .registry_file(args.data_dir.join("registry.json"));
    builder = builder.log_lines_dropped(log_drops.clone()).recordings_dir(
        args.recordings_dir
            .unwrap_or_else(|| args.data_dir.join("recordings")),
    );
    let turn = match (args.no_turn, args.turn_secret) {
        (true, _) => TurnMode::Placeholder,
        (false, Some(shared_secret)) => TurnMode::External {
            uris: args.turn_uri,
            shared_secret,
        },
        (false, None) => TurnMode::Embedded {
            port: args.turn_port,
        },
    };
    builder = builder.turn(turn);
    let mut throttling = if args.no_throttling {
        Throttling::disabled()
    } else {
        Throttling::aws_defaults()
    };
    for (operation, limit) in &args.tps {
        throttling.set(operation, *limit);
    }
    if let Some(quotas) = args.fragment_quotas {
        throttling.set_fragment_quotas(quotas);
    }
    builder = builder.throttling(throttling).limits(|l| {
        l.storage_enabled_channels = args.storage_channels as usize;
        l.max_stream_store_bytes = args.stream_store_mib << 20;
    });
    for (name, duration) in args.role_alias {
        builder = builder.role_alias(name, duration);
    }
    builder = builder.iot_credentials_port(args.iot_port);
    if let Some(dir) = args.player_scripts {
        builder = builder.player_scripts(kvs_emulator::PlayerScripts::Directory(dir));
    }
    if let (Some(id), Some(secret)) = (args.access_key_id, args.secret_access_key) {
        builder = builder.access_key(AccessKey::new(id, secret));
    }
    let emulator = match builder.start().await {
        Ok(e) => e,
        Err(e) => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("kvs-emulator: {text}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", emulator.startup_info());
    tracing::info!(
        "watch a stream in any browser: {}",
        emulator.player_page_url("STREAM_NAME")
    );
    let signal = stop_signal().await;
    // Through the lossy log writer like every other line: a stderr that nobody reads must not
    // keep the recordings from being finalized.
    tracing::info!("{signal}: shutting down; finalizing recordings");
    emulator.shutdown().await;
    let dropped = log_drops.dropped_lines();
    if dropped > 0 {
        tracing::warn!("{dropped} log lines were dropped: stderr was not read fast enough");
    }
    logs.finish(std::time::Duration::from_secs(1));
    ExitCode::SUCCESS
}

/// `NAME` or `NAME=SECONDS` (at least 1).
fn parse_role_alias(text: &str) -> Result<(String, std::time::Duration), String> {
    let (name, seconds) = match text.split_once('=') {
        Some((name, seconds)) => {
            let seconds: u64 =
                seconds.parse().ok().filter(|s| *s >= 1).ok_or_else(|| {
                    format!("{seconds:?} is not a duration in seconds (at least 1)")
                })?;
            (name, seconds)
        }
        None => (text, kvs_emulator::DEFAULT_CREDENTIAL_DURATION.as_secs()),
    };
    if name.is_empty()
        || name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_=,@-".contains(&b))
    {
        return Err(format!(
            "{name:?} is not a role alias name (1-128 of a-z A-Z 0-9 _ = , @ -)"
        ));
    }
    Ok((name.to_owned(), std::time::Duration::from_secs(seconds)))
}

/// `kvs-emulator cert issue`: prints the two paths written, as JSON.
fn issue(args: &IssueArgs) -> ExitCode {
    match kvs_emulator::issue_device_certificate_files(&args.data_dir, &args.thing, &args.out) {
        Ok((cert, key)) => {
            println!(
                "{}",
                serde_json::json!({
                    "thing": args.thing,
                    "certificate": cert.display().to_string(),
                    "privateKey": key.display().to_string(),
                })
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("kvs-emulator: {text}");
            ExitCode::FAILURE
        }
    }
}

/// Wait for Ctrl-C (SIGINT) or SIGTERM (how Docker and systemd stop a service); both finalize
/// the recordings. Returns which one came.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "Ctrl-C",
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                eprintln!("kvs-emulator: cannot wait for SIGTERM ({e}); Ctrl-C still works");
                let _ = tokio::signal::ctrl_c().await;
                "Ctrl-C"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

#[cfg(test)]
mod tests {
    use super::parse_role_alias;
    use std::time::Duration;

    #[test]
    fn role_aliases_take_an_optional_duration_in_seconds() {
        assert_eq!(
            parse_role_alias("Cams"),
            Ok(("Cams".to_owned(), Duration::from_secs(3600)))
        );
        assert_eq!(
            parse_role_alias("Short=5"),
            Ok(("Short".to_owned(), Duration::from_secs(5)))
        );
        for bad in ["", "=5", "a b", "Short=0", "Short=-1", "Short=x", "a/b=5"] {
            assert!(parse_role_alias(bad).is_err(), "{bad:?}");
        }
    }
}
