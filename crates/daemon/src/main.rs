//! `swarmkeepd`: the node daemon. It serves the control API on a unix socket
//! (or loopback TCP) and runs the manager role once the node is in a swarm.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use swarmkeep_agent::{Agent, AgentConfig, Backend};
use swarmkeep_api::containers::containers_server::ContainersServer;
use swarmkeep_api::control::control_server::ControlServer;
use swarmkeep_manager::controlapi::ControlService;
use swarmkeep_manager::{ManagerConfig, SwarmNode};
use swarmkeep_store::StoreSettings;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};

mod listen;
use listen::{ApiTls, Listener, bind, check_api_addr};

pub const DEFAULT_HOST: &str = "unix:///run/swarmkeep/swarmkeep.sock";

/// Every allocation is zeroed when it is freed: a secret that passed through
/// a buffer this code does not own (gRPC and HTTP receive buffers, a
/// library's copies) does not stay behind in freed memory.
#[global_allocator]
static ALLOCATOR: zeroizing_alloc::ZeroAlloc<std::alloc::System> = zeroizing_alloc::ZeroAlloc(std::alloc::System);

/// A daemon that holds keys and secrets leaves no core dump and cannot be
/// read by another process of its user: not dumpable, and no core size. (The
/// task shim is exec'd, which makes tasks dumpable again as usual.)
fn no_core_dumps() -> anyhow::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_CORE).context("reading RLIMIT_CORE")?;
    setrlimit(Resource::RLIMIT_CORE, 0, hard).context("setting RLIMIT_CORE")?;
    nix::sys::prctl::set_dumpable(false).context("PR_SET_DUMPABLE")?;
    Ok(())
}

#[derive(Parser, Debug)]
#[command(name = "swarmkeepd", version, about = "swarmkeep node daemon: manager and agent")]
struct Args {
    /// Where the node keeps its state.
    #[arg(long, default_value = "/var/lib/swarmkeep")]
    data_dir: PathBuf,
    /// Control API address: unix:///PATH, or tcp://IP:PORT — with
    /// --tlsverify on any address, without it on loopback only (any local
    /// process can use it, so the daemon warns).
    #[arg(short = 'H', long, env = "SWARMKEEP_HOST", default_value = DEFAULT_HOST)]
    host: String,
    /// The group that may use the unix sockets (mode 0660); by default the
    /// daemon's own group.
    #[arg(short = 'G', long)]
    group: Option<String>,
    /// Also serve the Docker Engine API (1.41 subset) here, so the docker CLI
    /// drives swarmkeep through DOCKER_HOST: unix:///PATH or tcp://IP:PORT
    /// (as --host).
    #[arg(long, env = "SWARMKEEP_DOCKER_API")]
    docker_api: Option<String>,
    /// Serve both APIs' TCP listeners with TLS, only to clients whose
    /// certificate chains to --tlscacert (dockerd's --tlsverify).
    #[arg(long, requires_all = ["tlscacert", "tlscert", "tlskey"])]
    tlsverify: bool,
    /// CA that clients' certificates must chain to.
    #[arg(long, requires = "tlsverify")]
    tlscacert: Option<PathBuf>,
    /// The APIs' TLS certificate (PEM).
    #[arg(long, requires = "tlsverify")]
    tlscert: Option<PathBuf>,
    /// The APIs' TLS key (PEM).
    #[arg(long, requires = "tlsverify")]
    tlskey: Option<PathBuf>,
    /// The hostname this node reports (default: the system's).
    #[arg(long)]
    hostname: Option<String>,
    /// Raft log entries between snapshots for a swarm this node initializes
    /// (Swarm's default is 10000; `swarm update --snapshot-interval` changes it).
    #[arg(long, default_value_t = swarmkeep_store::DEFAULT_SNAPSHOT_INTERVAL)]
    snapshot_interval: u64,
    /// Where task secret mounts are served from: a tmpfs per task, or a FUSE
    /// filesystem per task served from memory (every read logged).
    #[arg(long, value_enum, default_value = "tmpfs")]
    secrets_backend: SecretsBackend,
    /// Where the agent makes each task's mount and root.
    #[arg(long, default_value = "/run/swarmkeep")]
    exec_root: PathBuf,
    /// Run no agent on this node (a manager that runs no tasks; tasks placed on
    /// it stay assigned).
    #[arg(long)]
    no_agent: bool,
    /// A registry to pull from over plain HTTP (HOST:PORT; repeatable), as
    /// dockerd's flag. Loopback registries always are.
    #[arg(long = "insecure-registry")]
    insecure_registry: Vec<String>,
    /// A Docker Hub mirror tried before Docker Hub (an http:// or https://
    /// URL; repeatable), as dockerd's flag.
    #[arg(long = "registry-mirror")]
    registry_mirror: Vec<String>,
    /// Remove an image pulled for tasks once no task on this node has used it
    /// for this long (e.g. 10m, 30s); images pulled or loaded by hand stay.
    #[arg(long = "image-gc-idle", default_value = "10m", value_parser = parse_idle)]
    image_gc_idle: std::time::Duration,
    /// Task sandboxes kept ready once this node runs tasks (the shim spawned
    /// in its cgroup and network namespace, on the task bridge, waiting for
    /// a task): a task's start then skips their ~15 ms. 0 makes each when
    /// its task starts. Each costs an idle process (~1.5 MiB) and an address
    /// on the node's bridge.
    #[arg(long = "warm-sandboxes", default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=16))]
    warm_sandboxes: u8,
    /// Run tasks in a user namespace, their users being subordinate IDs of
    /// this user (and group) from /etc/subuid and /etc/subgid, as dockerd's
    /// flag: `default` (the `dockremap` user, made if missing), USER,
    /// USER:GROUP, UID or UID:GID.
    #[arg(long = "userns-remap")]
    userns_remap: Option<String>,
    /// Log level filter (error, warn, info, debug, trace, or a tracing filter).
    #[arg(long, env = "SWARMKEEP_LOG", default_value = DEFAULT_LOG)]
    log_level: String,
}

/// The default log filter: openraft's warnings, but not the one it logs for
/// every heartbeat (every 30 ms) and replication retry to a manager that is
/// down — `swarmkeep node ls` shows that manager Unreachable.
const DEFAULT_LOG: &str = "info,openraft=warn,openraft::core::heartbeat=error,openraft::replication=error,\
                           openraft::engine::handler::replication_handler=error";

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum SecretsBackend {
    Tmpfs,
    Fuse,
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handlers the daemon still stops on kill -9.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
    }
}

fn main() -> anyhow::Result<()> {
    // The task shim runs before any thread exists: it unshares its mount
    // namespace and execs the task (see swarmkeep_agent::executor::shim).
    let argv: Vec<String> = std::env::args().collect();
    match argv.get(1).map(String::as_str) {
        Some("task-shim") => std::process::exit(swarmkeep_agent::executor::shim::main()),
        // `docker exec`: joins a running task (swarmkeep_agent::executor::exec).
        Some("task-exec") => std::process::exit(swarmkeep_agent::executor::exec::main()),
        _ => {}
    }
    // Whatever fds the daemon was started with are not its to pass on.
    swarmkeep_agent::executor::shim::close_from(3);
    no_core_dumps()?;
    tokio::runtime::Runtime::new()?.block_on(run(Args::parse()))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("invalid --log-level {:?}", args.log_level))?;
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let backend = match args.secrets_backend {
        SecretsBackend::Tmpfs => Backend::Tmpfs,
        SecretsBackend::Fuse => Backend::Fuse,
    };
    if !args.no_agent {
        swarmkeep_agent::check_privileges(backend).map_err(anyhow::Error::msg)?;
    }
    let group = match &args.group {
        Some(name) => Some(
            nix::unistd::Group::from_name(name)
                .with_context(|| format!("looking up group {name}"))?
                .with_context(|| format!("--group {name}: no such group"))?,
        ),
        None => None,
    };
    let tls = match (&args.tlscacert, &args.tlscert, &args.tlskey) {
        (Some(ca), Some(cert), Some(key)) if args.tlsverify => Some(ApiTls::load(ca, cert, key)?),
        _ => None,
    };
    check_api_addr("--host", &args.host, tls.is_some())?;
    let listener = bind(&args.host, group.as_ref())?;
    let docker_listener = match &args.docker_api {
        Some(addr) => {
            check_api_addr("--docker-api", addr, tls.is_some())?;
            Some(bind(addr, group.as_ref())?)
        }
        None => None,
    };
    let config = ManagerConfig {
        data_dir: args.data_dir.clone(),
        hostname: args.hostname.clone(),
        // Managers snapshot on the cluster's interval, not openraft's policy.
        store: StoreSettings {
            snapshot_interval: None,
            log_entries_for_slow_followers: None,
            ..StoreSettings::default()
        },
        initial_snapshot_interval: args.snapshot_interval,
    };
    let manager: Arc<SwarmNode> = SwarmNode::start(config).await.map_err(anyhow::Error::msg)?;
    tracing::info!(host = %args.host, data_dir = %args.data_dir.display(), "swarmkeepd listening");
    let agent = if args.no_agent {
        None
    } else {
        let config = AgentConfig {
            exec_root: args.exec_root.clone(),
            backend,
            data_dir: args.data_dir.clone(),
            shim_exe: std::env::current_exe().context("locating the swarmkeepd binary")?,
            insecure_registries: args.insecure_registry.clone(),
            registry_mirrors: args.registry_mirror.clone(),
            image_gc_idle: args.image_gc_idle,
            warm_sandboxes: args.warm_sandboxes.into(),
            userns_remap: args
                .userns_remap
                .as_deref()
                .map(swarmkeep_agent::executor::userns::Remap::from_flag)
                .transpose()
                .map_err(anyhow::Error::msg)?,
        };
        Some(Agent::start(manager.clone(), config).map_err(anyhow::Error::msg)?)
    };

    // One shutdown signal for every listener.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let control = Arc::new(ControlService::new(manager.clone()));
    let containers = agent.as_ref().map(Agent::containers);
    let mut socket_paths = Vec::new();
    let docker_api = docker_listener.map(|l| {
        let listener = match l {
            Listener::Unix(l, path) => {
                socket_paths.push(path);
                swarmkeep_dockerapi::Listener::Unix(l)
            }
            Listener::Tcp(l) => match &tls {
                Some(tls) => swarmkeep_dockerapi::Listener::Tls(l, tls.docker()),
                None => swarmkeep_dockerapi::Listener::Tcp(l),
            },
        };
        tracing::info!(
            addr = args.docker_api.as_deref().unwrap_or(""),
            "serving the Docker Engine API"
        );
        tokio::spawn(swarmkeep_dockerapi::serve(
            listener,
            control.clone(),
            containers.clone(),
            stopped(stop_rx.clone()),
        ))
    });
    let mut server = tonic::transport::Server::builder();
    if let (Some(tls), Listener::Tcp(_)) = (&tls, &listener) {
        server = server.tls_config(tls.control()).context("the control API's TLS")?;
    }
    let server = server
        .add_service(ControlServer::from_arc(control))
        .add_optional_service(containers.map(|c| ContainersServer::new(swarmkeep_api::containers::Grpc(c))));
    match listener {
        Listener::Unix(l, path) => {
            socket_paths.push(path);
            server
                .serve_with_incoming_shutdown(UnixListenerStream::new(l), stopped(stop_rx.clone()))
                .await?;
        }
        Listener::Tcp(l) => {
            server
                .serve_with_incoming_shutdown(TcpListenerStream::new(l), stopped(stop_rx.clone()))
                .await?;
        }
    };
    if let Some(task) = docker_api {
        let _ = task.await;
    }
    if let Some(agent) = agent {
        agent.shutdown().await;
    }
    manager.shutdown().await;
    for path in socket_paths {
        listen::remove_own_socket(&path);
    }
    tracing::info!("swarmkeepd stopped");
    Ok(())
}

/// `10m`, `30s`, `1h`, `0s`.
fn parse_idle(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {s:?} (e.g. 30s, 10m, 1h)");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(bad()),
    };
    Ok(std::time::Duration::from_secs(secs))
}
