//! `swarmkeep`: the command line, shaped like `docker swarm|node|secret|config`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use swarmkeep_cli::client::{CliError, ClientTls, DEFAULT_HOST, channel_with, control_client};
use swarmkeep_cli::commands::{self, Output};

/// Every allocation is zeroed when freed: a secret read from stdin, a join
/// token or an unlock key leaves no copy in freed memory (the gRPC and
/// string buffers that carried them included).
#[global_allocator]
static ALLOCATOR: zeroizing_alloc::ZeroAlloc<std::alloc::System> = zeroizing_alloc::ZeroAlloc(std::alloc::System);

#[derive(Parser)]
#[command(
    name = "swarmkeep",
    version,
    about = "Manage a swarmkeep cluster: swarm, nodes, secrets, configs and services"
)]
struct Cli {
    /// Daemon socket to connect to (unix:///PATH or tcp://IP:PORT).
    #[arg(short = 'H', long, env = "SWARMKEEP_HOST", default_value = DEFAULT_HOST)]
    host: String,
    /// Use TLS and verify the daemon (SWARMKEEP_TLS_VERIFY, as DOCKER_TLS_VERIFY)
    #[arg(long, global = true)]
    tlsverify: bool,
    /// Trust certs signed only by this CA (default: SWARMKEEP_CERT_PATH/ca.pem)
    #[arg(long, global = true)]
    tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file (default: SWARMKEEP_CERT_PATH/cert.pem)
    #[arg(long, global = true)]
    tlscert: Option<PathBuf>,
    /// Path to TLS key file (default: SWARMKEEP_CERT_PATH/key.pem)
    #[arg(long, global = true)]
    tlskey: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// TLS when `--tlsverify` is given or SWARMKEEP_TLS_VERIFY is set to
    /// anything but empty; the files from the flags or SWARMKEEP_CERT_PATH
    /// (default `~/.swarmkeep`), as the docker CLI does.
    fn tls(&self) -> Result<Option<ClientTls>, CliError> {
        let env_verify = std::env::var_os("SWARMKEEP_TLS_VERIFY").is_some_and(|v| !v.is_empty());
        // A TLS file named on the command line means TLS, never plaintext.
        let files_given = self.tlscacert.is_some() || self.tlscert.is_some() || self.tlskey.is_some();
        if !self.tlsverify && !env_verify && !files_given {
            return Ok(None);
        }
        let dir = match std::env::var_os("SWARMKEEP_CERT_PATH").filter(|v| !v.is_empty()) {
            Some(dir) => Some(PathBuf::from(dir)),
            None => std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".swarmkeep")),
        };
        let pick = |flag: &Option<PathBuf>, file: &str| match (flag, &dir) {
            (Some(path), _) => Ok(path.clone()),
            (None, Some(dir)) => Ok(dir.join(file)),
            (None, None) => Err(CliError(format!(
                "no TLS {file}: set SWARMKEEP_CERT_PATH or pass --tlscacert, --tlscert and --tlskey"
            ))),
        };
        ClientTls::load(
            &pick(&self.tlscacert, "ca.pem")?,
            &pick(&self.tlscert, "cert.pem")?,
            &pick(&self.tlskey, "key.pem")?,
        )
        .map(Some)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Manage Swarm
    #[command(subcommand)]
    Swarm(SwarmCmd),
    /// Manage Swarm nodes
    #[command(subcommand)]
    Node(NodeCmd),
    /// Manage Swarm secrets
    #[command(subcommand)]
    Secret(ObjectCmd),
    /// Manage Swarm configs
    #[command(subcommand)]
    Config(ObjectCmd),
    /// Manage Swarm services
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage the images of the node the CLI talks to
    #[command(subcommand)]
    Image(ImageCmd),
    /// List the task containers of the node the CLI talks to
    Ps {
        /// Show all containers (default shows just running)
        #[arg(short, long)]
        all: bool,
        /// Only display container IDs
        #[arg(short, long)]
        quiet: bool,
        /// Don't truncate output
        #[arg(long)]
        no_trunc: bool,
        /// Filter output based on conditions provided
        #[arg(short, long)]
        filter: Vec<String>,
        /// Pretty-print containers using a Go template
        #[arg(long)]
        format: Option<String>,
    },
    /// Fetch the logs of a task container on the node the CLI talks to
    Logs {
        /// Follow log output
        #[arg(short, long)]
        follow: bool,
        /// Show timestamps
        #[arg(short, long)]
        timestamps: bool,
        /// Number of lines to show from the end of the logs ("all" by default)
        #[arg(short = 'n', long)]
        tail: Option<String>,
        container: String,
    },
    /// Run a command in a running task container on the node the CLI talks to
    Exec {
        /// Detached mode: run command in the background
        #[arg(short, long)]
        detach: bool,
        /// Keep STDIN open even if not attached
        #[arg(short, long)]
        interactive: bool,
        /// Allocate a pseudo-TTY
        #[arg(short, long)]
        tty: bool,
        /// Username or UID (format: <name|uid>[:<group|gid>])
        #[arg(short, long)]
        user: Option<String>,
        /// Working directory inside the container
        #[arg(short, long)]
        workdir: Option<String>,
        /// Set environment variables
        #[arg(short, long)]
        env: Vec<String>,
        container: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ImageCmd {
    /// List images
    #[command(alias = "list")]
    Ls {
        /// Only show image IDs
        #[arg(short, long)]
        quiet: bool,
        /// Pretty-print images using a Go template
        #[arg(long)]
        format: Option<String>,
    },
    /// Pull an image from a registry (kept until removed)
    Pull { image: String },
    /// Load an image from a tar archive (`docker save`) or standard input
    Load {
        /// Read from tar archive file, instead of standard input
        #[arg(short, long)]
        input: Option<PathBuf>,
    },
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
    },
}

#[derive(Subcommand)]
enum NetworkCmd {
    /// Create a network
    Create {
        /// Driver to manage the Network
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR format that represents a network segment
        #[arg(long)]
        subnet: Vec<String>,
        /// Gateway for the master subnet
        #[arg(long)]
        gateway: Vec<String>,
        /// Allocate container ip from a sub-range
        #[arg(long)]
        ip_range: Vec<String>,
        /// Enable manual container attachment
        #[arg(long)]
        attachable: bool,
        /// Restrict external access to the network
        #[arg(long)]
        internal: bool,
        /// Create swarm routing-mesh network
        #[arg(long)]
        ingress: bool,
        /// Set driver specific options
        #[arg(short, long)]
        opt: Vec<String>,
        /// Set metadata on a network
        #[arg(long)]
        label: Vec<String>,
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Only display network IDs
        #[arg(short, long)]
        quiet: bool,
        /// Do not truncate the output
        #[arg(long)]
        no_trunc: bool,
        /// Provide filter values (e.g. 'driver=host')
        #[arg(short, long)]
        filter: Vec<String>,
        /// Pretty-print networks using a Go template
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on one or more networks
    Inspect {
        /// Format the output using the given Go template
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
}

#[derive(Args)]
struct CreateArgs {
    /// Service name
    #[arg(long)]
    name: Option<String>,
    /// Service mode (replicated or global)
    #[arg(long)]
    mode: Option<String>,
    /// Number of tasks
    #[arg(long)]
    replicas: Option<u64>,
    /// Number of job tasks to run concurrently (default equal to --replicas)
    #[arg(long)]
    max_concurrent: Option<u64>,
    /// Specify secrets to expose to the service
    #[arg(long)]
    secret: Vec<String>,
    /// Network attachments (`host`: the node's own network)
    #[arg(long)]
    network: Vec<String>,
    /// Publish a port as a node port
    #[arg(short, long)]
    publish: Vec<String>,
    /// Endpoint mode (vip or dnsrr)
    #[arg(long)]
    endpoint_mode: Option<String>,
    /// Specify configurations to expose to the service
    #[arg(long)]
    config: Vec<String>,
    /// Set environment variables
    #[arg(short, long)]
    env: Vec<String>,
    /// Attach a filesystem mount to the service (type=bind,source=/host/path,target=/path[,readonly])
    #[arg(long)]
    mount: Vec<String>,
    /// Service labels
    #[arg(short, long)]
    label: Vec<String>,
    /// Username or UID (format: <uid>[:<gid>])
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the task
    #[arg(short, long)]
    workdir: Option<String>,
    /// Restart when condition is met ("none", "on-failure", "any")
    #[arg(long)]
    restart_condition: Option<String>,
    /// Delay between restart attempts (ns|us|ms|s|m|h)
    #[arg(long)]
    restart_delay: Option<String>,
    /// Maximum number of restarts before giving up
    #[arg(long)]
    restart_max_attempts: Option<u64>,
    /// Window used to evaluate the restart policy (ns|us|ms|s|m|h)
    #[arg(long)]
    restart_window: Option<String>,
    /// Time to wait before force killing a task (ns|us|ms|s|m|h)
    #[arg(long)]
    stop_grace_period: Option<String>,
    /// Container hostname
    #[arg(long)]
    hostname: Option<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    read_only: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Limit CPUs
    #[arg(long)]
    limit_cpu: Option<String>,
    /// Limit Memory
    #[arg(long)]
    limit_memory: Option<String>,
    /// Limit maximum number of processes (default 0 = unlimited)
    #[arg(long)]
    limit_pids: Option<i64>,
    #[command(flatten)]
    container: commands::container_flags::ContainerFlags,
    #[command(flatten)]
    rollout: commands::rollout::RolloutFlags,
    /// Placement constraints
    #[arg(long)]
    constraint: Vec<String>,
    /// Add a placement preference
    #[arg(long)]
    placement_pref: Vec<String>,
    /// Maximum number of tasks per node (default 0 = unlimited)
    #[arg(long, visible_alias = "max-replicas")]
    replicas_max_per_node: Option<u64>,
    /// Reserve CPUs
    #[arg(long)]
    reserve_cpu: Option<String>,
    /// Reserve Memory
    #[arg(long)]
    reserve_memory: Option<String>,
    /// Exit immediately instead of waiting for the service to converge
    #[arg(short, long)]
    detach: bool,
    /// Do not query the registry to resolve image digest and supported platforms
    #[arg(long)]
    no_resolve_image: bool,
    /// Send registry authentication details to swarm agents
    #[arg(long)]
    with_registry_auth: bool,
    image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

#[derive(Subcommand)]
enum ServiceCmd {
    /// Create a new service
    Create(Box<CreateArgs>),
    /// List services
    #[command(visible_alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        #[arg(long)]
        format: Option<String>,
    },
    /// List the tasks of one or more services
    Ps {
        #[arg(short, long)]
        quiet: bool,
        #[arg(long)]
        no_trunc: bool,
        #[arg(short, long)]
        filter: Vec<String>,
        #[arg(long)]
        format: Option<String>,
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Display detailed information on one or more services
    Inspect {
        #[command(flatten)]
        opts: InspectArgs,
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Scale one or multiple replicated services (SERVICE=REPLICAS)
    Scale {
        #[arg(short, long)]
        detach: bool,
        #[arg(required = true)]
        pairs: Vec<String>,
    },
    /// Update a service
    Update(Box<commands::service_update::UpdateArgs>),
    /// Revert changes to a service's configuration
    Rollback {
        /// Exit immediately instead of waiting for the service to converge
        #[arg(short, long)]
        detach: bool,
        /// Suppress progress output
        #[arg(short, long)]
        quiet: bool,
        service: String,
    },
    /// Remove one or more services
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Fetch the logs of a service or task
    Logs {
        /// Follow log output
        #[arg(short, long)]
        follow: bool,
        /// Number of lines to show from the end of the logs ("all" by default)
        #[arg(short = 'n', long)]
        tail: Option<String>,
        /// Show timestamps
        #[arg(short, long)]
        timestamps: bool,
        /// Do not neatly format logs
        #[arg(long)]
        raw: bool,
        service: String,
    },
}

#[derive(Subcommand)]
enum SwarmCmd {
    /// Initialize a swarm
    Init {
        /// Advertised address (format: <ip>[:port])
        #[arg(long)]
        advertise_addr: Option<String>,
        /// Listen address (format: <ip>[:port])
        #[arg(long)]
        listen_addr: Option<String>,
        /// Dispatcher heartbeat period (ns|us|ms|s|m|h)
        #[arg(long)]
        dispatcher_heartbeat: Option<String>,
        /// Enable manager autolocking (requiring an unlock key to start a stopped manager)
        #[arg(long)]
        autolock: bool,
        /// Validity period for node certificates (ns|us|ms|s|m|h)
        #[arg(long)]
        cert_expiry: Option<String>,
        /// default address pool in CIDR format
        #[arg(long)]
        default_addr_pool: Vec<String>,
        /// default address pool subnet mask length
        #[arg(long)]
        default_addr_pool_mask_length: Option<u32>,
        /// Port number to use for data path traffic (1024 - 49151). If no value is set or is set to 0, the default port (4789) is used.
        #[arg(long)]
        data_path_port: Option<u32>,
        /// Address or interface to use for data path traffic (format: <ip|interface>)
        #[arg(long)]
        data_path_addr: Option<String>,
    },
    /// Update the swarm
    Update {
        /// Change manager autolocking setting (true|false)
        #[arg(long)]
        autolock: Option<bool>,
        /// Validity period for node certificates (ns|us|ms|s|m|h)
        #[arg(long)]
        cert_expiry: Option<String>,
        /// Dispatcher heartbeat period (ns|us|ms|s|m|h)
        #[arg(long)]
        dispatcher_heartbeat: Option<String>,
        /// Number of log entries between Raft snapshots
        #[arg(long)]
        snapshot_interval: Option<u64>,
        /// Number of additional Raft snapshots to retain
        #[arg(long)]
        max_snapshots: Option<u64>,
        /// Task history retention limit
        #[arg(long)]
        task_history_limit: Option<i64>,
    },
    /// Display detailed information on the swarm
    Inspect {
        /// Format output using a custom template
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Manage the unlock key
    UnlockKey {
        /// Only display token
        #[arg(short, long)]
        quiet: bool,
        /// Rotate unlock key
        #[arg(long)]
        rotate: bool,
    },
    /// Display the root CA; rotate the node certificates
    Ca {
        /// Rotate the swarm's node certificates: every node takes a new key and certificate from the same root
        /// within a heartbeat period (the command returns once the rotation is ordered; it does not wait)
        #[arg(long)]
        rotate: bool,
    },
    /// Unlock swarm (the key is read from standard input)
    Unlock,
    /// Join a swarm as a node and/or manager
    Join {
        /// Token for entry into the swarm
        #[arg(long)]
        token: String,
        /// Advertised address (format: <ip>[:port])
        #[arg(long)]
        advertise_addr: Option<String>,
        /// Listen address (format: <ip>[:port])
        #[arg(long)]
        listen_addr: Option<String>,
        /// Address or interface to use for data path traffic (format: <ip|interface>)
        #[arg(long)]
        data_path_addr: Option<String>,
        /// HOST:PORT of a manager
        remote: String,
    },
    /// Leave the swarm
    Leave {
        /// Force this node to leave the swarm, ignoring warnings
        #[arg(short, long)]
        force: bool,
    },
    /// Manage join tokens
    JoinToken {
        /// Only display token
        #[arg(short, long)]
        quiet: bool,
        /// Rotate join token
        #[arg(long)]
        rotate: bool,
        /// worker or manager
        role: String,
    },
}

#[derive(Args)]
struct ListArgs {
    /// Only display IDs
    #[arg(short, long)]
    quiet: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args)]
struct InspectArgs {
    /// Print the information in a human friendly format
    #[arg(long)]
    pretty: bool,
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
}

#[derive(Subcommand)]
enum NodeCmd {
    /// List nodes in the swarm
    #[command(visible_alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more nodes
    Inspect {
        #[command(flatten)]
        opts: InspectArgs,
        /// self, a node name or ID
        nodes: Vec<String>,
    },
    /// Promote one or more nodes to manager in the swarm
    Promote {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Demote one or more nodes from manager in the swarm
    Demote {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Update a node
    Update {
        /// Availability of the node ("active"|"pause"|"drain")
        #[arg(long)]
        availability: Option<String>,
        /// Role of the node ("worker"|"manager")
        #[arg(long)]
        role: Option<String>,
        /// Add or update a node label (key=value)
        #[arg(long = "label-add")]
        label_add: Vec<String>,
        /// Remove a node label if exists
        #[arg(long = "label-rm")]
        label_rm: Vec<String>,
        node: String,
    },
    /// Remove one or more nodes from the swarm
    #[command(visible_alias = "remove")]
    Rm {
        /// Force remove a node from the swarm
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        nodes: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ObjectCmd {
    /// Create from a file or STDIN as content
    Create {
        /// Labels (key=value)
        #[arg(short, long = "label")]
        label: Vec<String>,
        #[arg(allow_hyphen_values = true)]
        name: String,
        /// A file, or - for STDIN
        #[arg(allow_hyphen_values = true)]
        file: Option<String>,
    },
    /// List
    #[command(visible_alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more objects
    Inspect {
        #[command(flatten)]
        opts: InspectArgs,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove one or more
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

async fn run(cli: Cli) -> Output {
    let tls = match cli.tls() {
        Ok(tls) => tls,
        Err(e) => return e.into(),
    };
    let channel = match channel_with(&cli.host, tls.as_ref()).await {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    let mut client = control_client(channel.clone());
    let c = &mut client;
    match cli.command {
        Command::Image(cmd) => {
            let mut images = commands::image::Images::new(channel).max_decoding_message_size(64 * 1024 * 1024);
            let images = &mut images;
            match cmd {
                ImageCmd::Ls { quiet, format } => commands::image::ls(images, quiet, format.as_deref()).await,
                ImageCmd::Pull { image } => commands::image::pull(images, &image).await,
                ImageCmd::Load { input } => commands::image::load(images, input.as_deref()).await,
                ImageCmd::Rm { images: names } => commands::image::rm(images, &names).await,
            }
        }
        Command::Network(cmd) => match cmd {
            NetworkCmd::Create {
                driver,
                subnet,
                gateway,
                ip_range,
                attachable,
                internal,
                ingress,
                opt,
                label,
                name,
            } => {
                let flags = commands::network::CreateFlags {
                    driver,
                    subnets: subnet,
                    gateways: gateway,
                    ranges: ip_range,
                    attachable,
                    internal,
                    ingress,
                    options: opt,
                    labels: label,
                };
                commands::network::create(c, &name, flags).await
            }
            NetworkCmd::Ls {
                quiet,
                no_trunc,
                filter,
                format,
            } => commands::network::ls(c, quiet, no_trunc, &filter, format.as_deref()).await,
            NetworkCmd::Inspect { format, networks } => {
                commands::network::inspect(c, &networks, format.as_deref()).await
            }
            NetworkCmd::Rm { networks } => commands::network::rm(c, &networks).await,
        },
        Command::Ps {
            all,
            quiet,
            no_trunc,
            filter,
            format,
        } => {
            let mut containers = commands::container::Containers::new(channel);
            commands::container::ps(&mut containers, all, quiet, no_trunc, &filter, format.as_deref()).await
        }
        Command::Logs {
            follow,
            timestamps,
            tail,
            container,
        } => {
            let mut containers = commands::container::Containers::new(channel);
            commands::container::logs(&mut containers, &container, follow, timestamps, tail.as_deref()).await
        }
        Command::Exec {
            detach,
            interactive,
            tty,
            user,
            workdir,
            env,
            container,
            cmd,
        } => {
            let mut containers = commands::container::Containers::new(channel);
            let args = commands::container::ExecArgs {
                container: &container,
                cmd: &cmd,
                interactive,
                tty,
                user: user.as_deref(),
                workdir: workdir.as_deref(),
                env: &env,
                detach,
            };
            commands::container::exec(&mut containers, args).await
        }
        Command::Swarm(SwarmCmd::Init {
            advertise_addr,
            listen_addr,
            dispatcher_heartbeat,
            autolock,
            cert_expiry,
            default_addr_pool,
            default_addr_pool_mask_length,
            data_path_port,
            data_path_addr,
        }) => {
            let hb = dispatcher_heartbeat.as_deref();
            let settings = commands::swarm::InitSettings {
                heartbeat: hb,
                cert_expiry: cert_expiry.as_deref(),
                autolock,
                default_addr_pool: &default_addr_pool,
                default_addr_pool_mask_length,
                data_path_port,
                data_path_addr: data_path_addr.as_deref(),
            };
            commands::swarm::init(c, advertise_addr.as_deref(), listen_addr.as_deref(), settings).await
        }
        Command::Swarm(SwarmCmd::Update {
            autolock,
            cert_expiry,
            dispatcher_heartbeat,
            snapshot_interval,
            max_snapshots,
            task_history_limit,
        }) => {
            let flags = commands::swarm::UpdateFlags {
                autolock,
                cert_expiry: cert_expiry.as_deref(),
                dispatcher_heartbeat: dispatcher_heartbeat.as_deref(),
                snapshot_interval,
                max_snapshots,
                task_history_limit,
            };
            commands::swarm::update(c, flags).await
        }
        Command::Swarm(SwarmCmd::Inspect { format }) => commands::swarm::inspect(c, format.as_deref()).await,
        Command::Swarm(SwarmCmd::UnlockKey { quiet, rotate }) => commands::swarm::unlock_key(c, quiet, rotate).await,
        Command::Swarm(SwarmCmd::Ca { rotate }) => commands::swarm::ca(c, rotate).await,
        Command::Swarm(SwarmCmd::Unlock) => commands::swarm::unlock(c).await,
        Command::Swarm(SwarmCmd::Join {
            token,
            advertise_addr,
            listen_addr,
            data_path_addr,
            remote,
        }) => {
            commands::swarm::join(
                c,
                &token,
                &remote,
                advertise_addr.as_deref(),
                listen_addr.as_deref(),
                data_path_addr.as_deref(),
            )
            .await
        }
        Command::Swarm(SwarmCmd::Leave { force }) => commands::swarm::leave(c, force).await,
        Command::Swarm(SwarmCmd::JoinToken { quiet, rotate, role }) => {
            commands::swarm::join_token(c, &role, quiet, rotate).await
        }
        Command::Node(NodeCmd::Promote { nodes }) => commands::node::set_role(c, &nodes, "manager").await,
        Command::Node(NodeCmd::Demote { nodes }) => commands::node::set_role(c, &nodes, "worker").await,
        Command::Node(NodeCmd::Update {
            availability,
            role,
            label_add,
            label_rm,
            node,
        }) => {
            commands::node::update_cmd(
                c,
                &node,
                availability.as_deref(),
                role.as_deref(),
                &label_add,
                &label_rm,
            )
            .await
        }
        Command::Node(NodeCmd::Rm { force, nodes }) => commands::node::rm(c, &nodes, force).await,
        Command::Node(NodeCmd::Ls(a)) => commands::node::ls(c, a.quiet, &a.filter, a.format.as_deref()).await,
        Command::Node(NodeCmd::Inspect { opts, nodes }) => {
            commands::node::inspect(c, &nodes, opts.pretty, opts.format.as_deref()).await
        }
        Command::Secret(cmd) => match cmd {
            ObjectCmd::Create { label, name, file } => {
                commands::secret::create(c, &name, file.as_deref(), &label).await
            }
            ObjectCmd::Ls(a) => commands::secret::ls(c, a.quiet, &a.filter, a.format.as_deref()).await,
            ObjectCmd::Inspect { opts, names } => {
                commands::secret::inspect(c, &names, opts.pretty, opts.format.as_deref()).await
            }
            ObjectCmd::Rm { names } => commands::secret::rm(c, &names).await,
        },
        Command::Service(cmd) => match cmd {
            ServiceCmd::Create(a) => {
                let CreateArgs {
                    name,
                    mode,
                    replicas,
                    max_concurrent,
                    secret,
                    network,
                    config,
                    env,
                    mount,
                    label,
                    user,
                    workdir,
                    restart_condition,
                    restart_delay,
                    restart_max_attempts,
                    restart_window,
                    stop_grace_period,
                    hostname,
                    read_only,
                    tty,
                    limit_cpu,
                    limit_memory,
                    limit_pids,
                    container,
                    rollout,
                    constraint,
                    placement_pref,
                    replicas_max_per_node,
                    reserve_cpu,
                    reserve_memory,
                    detach,
                    no_resolve_image,
                    with_registry_auth,
                    publish,
                    endpoint_mode,
                    image,
                    args,
                } = *a;
                let flags = commands::service::CreateFlags {
                    name: name.as_deref(),
                    mode: mode.as_deref(),
                    replicas,
                    secrets: &secret,
                    networks: &network,
                    configs: &config,
                    env: &env,
                    mounts: &mount,
                    labels: &label,
                    user: user.as_deref(),
                    workdir: workdir.as_deref(),
                    restart_condition: restart_condition.as_deref(),
                    restart_delay: restart_delay.as_deref(),
                    restart_max_attempts,
                    restart_window: restart_window.as_deref(),
                    stop_grace_period: stop_grace_period.as_deref(),
                    hostname: hostname.as_deref(),
                    read_only,
                    tty,
                    limit_cpu: limit_cpu.as_deref(),
                    limit_memory: limit_memory.as_deref(),
                    limit_pids,
                    container: Some(&container),
                    rollout: Some(&rollout),
                    constraints: &constraint,
                    placement_prefs: &placement_pref,
                    max_replicas: replicas_max_per_node,
                    max_concurrent,
                    reserve_cpu: reserve_cpu.as_deref(),
                    reserve_memory: reserve_memory.as_deref(),
                    with_registry_auth,
                    publish: &publish,
                    endpoint_mode: endpoint_mode.as_deref(),
                };
                // As the docker CLI: the image pinned to the digest its tag
                // names now (through a node of the swarm), unless told not to.
                let mut resolver = commands::image::Images::new(channel.clone());
                let resolver = (!no_resolve_image).then_some(&mut resolver);
                let out = commands::service::create(c, resolver, flags, &image, &args).await;
                let id = vec![out.stdout.trim().to_string()];
                commands::progress::after(c, out, &id, detach, false).await
            }
            ServiceCmd::Ls { quiet, format } => commands::service::ls(c, quiet, format.as_deref()).await,
            ServiceCmd::Ps {
                quiet,
                no_trunc,
                filter,
                format,
                services,
            } => commands::service::ps(c, &services, quiet, no_trunc, &filter, format.as_deref()).await,
            ServiceCmd::Inspect { opts, services } => {
                commands::service::inspect(c, &services, opts.pretty, opts.format.as_deref()).await
            }
            ServiceCmd::Scale { detach, pairs } => {
                let out = commands::service::scale(c, &pairs).await;
                let names: Vec<String> = pairs
                    .iter()
                    .filter_map(|p| p.split_once('=').map(|(n, _)| n.to_string()))
                    .collect();
                commands::progress::after(c, out, &names, detach, false).await
            }
            ServiceCmd::Update(a) => {
                let mut resolver = commands::image::Images::new(channel.clone());
                let out = commands::service_update::update(c, Some(&mut resolver), &a).await;
                commands::progress::after(c, out, std::slice::from_ref(&a.service), a.detach, a.quiet).await
            }
            ServiceCmd::Rollback { detach, quiet, service } => {
                let out = commands::service_update::rollback(c, &service).await;
                commands::progress::after(c, out, std::slice::from_ref(&service), detach, quiet).await
            }
            ServiceCmd::Rm { services } => commands::service::rm(c, &services).await,
            ServiceCmd::Logs {
                follow,
                tail,
                timestamps,
                raw,
                service,
            } => commands::service::logs(c, &service, follow, tail.as_deref(), timestamps, raw).await,
        },
        Command::Config(cmd) => match cmd {
            ObjectCmd::Create { label, name, file } => {
                commands::config::create(c, &name, file.as_deref(), &label).await
            }
            ObjectCmd::Ls(a) => commands::config::ls(c, a.quiet, &a.filter, a.format.as_deref()).await,
            ObjectCmd::Inspect { opts, names } => {
                commands::config::inspect(c, &names, opts.pretty, opts.format.as_deref()).await
            }
            ObjectCmd::Rm { names } => commands::config::rm(c, &names).await,
        },
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = run(cli).await;
    let _ = std::io::stderr().write_all(out.warnings.as_bytes());
    let _ = std::io::stdout().write_all(out.stdout.as_bytes());
    let _ = std::io::stdout().flush();
    match (out.error, out.code) {
        (Some(e), _) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
        (None, Some(code)) => ExitCode::from(code),
        (None, None) => ExitCode::SUCCESS,
    }
}
