//! `/_ping`, `/version`, `/info` (with its `Swarm` section), and the registry
//! lookup swarmkeep cannot do.

use swarmkeep_api::control::control_server::Control;
use swarmkeep_api::control::{GetClusterRequest, InfoRequest, ListNodesRequest};

use super::{Api, call, swarm::cluster_json};
use crate::error::ApiResult;
use crate::exchange::Reply;
use crate::{API_VERSION, MIN_API_VERSION};

const ENGINE_VERSION: &str = concat!("swarmkeep-", env!("CARGO_PKG_VERSION"));

pub fn ping() -> Reply {
    Reply::Raw(200, "text/plain; charset=utf-8", b"OK".to_vec())
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub fn version() -> Reply {
    let details = serde_json::json!({
        "ApiVersion": API_VERSION,
        "Arch": arch(),
        "Experimental": "false",
        "KernelVersion": kernel_version(),
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
    });
    Reply::Json(
        200,
        serde_json::json!({
            "Platform": {"Name": "swarmkeep"},
            "Components": [{"Name": "Engine", "Version": ENGINE_VERSION, "Details": details}],
            "Version": ENGINE_VERSION,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "Os": "linux",
            "Arch": arch(),
            "KernelVersion": kernel_version(),
        }),
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// `docker system info`'s "Operating System" line: PRETTY_NAME of os-release.
fn operating_system() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "linux".into())
}

impl<C: Control> Api<C> {
    pub async fn info(&self) -> ApiResult<Reply> {
        let info = call!(self, info, InfoRequest {})?;
        let mut swarm = serde_json::json!({
            "NodeID": info.node_id,
            "NodeAddr": info.node_addr,
            "LocalNodeState": info.local_node_state,
            "ControlAvailable": info.control_available,
            "Error": "",
            "RemoteManagers": null,
        });
        let mut name = hostname();
        if info.control_available {
            let cluster = call!(self, get_cluster, GetClusterRequest {})?;
            let nodes = call!(self, list_nodes, ListNodesRequest { filters: None })?.nodes;
            if let Some(me) = nodes.iter().find(|n| n.id == info.node_id)
                && let Some(d) = &me.description
            {
                name = d.hostname.clone();
            }
            let managers: Vec<serde_json::Value> = nodes
                .iter()
                .filter_map(|n| n.manager_status.as_ref().map(|m| (n, m)))
                .map(|(n, m)| serde_json::json!({"NodeID": n.id, "Addr": m.addr}))
                .collect();
            swarm["RemoteManagers"] = managers.into();
            swarm["Nodes"] = info.nodes.into();
            swarm["Managers"] = info.managers.into();
            let mut c = cluster_json(&cluster);
            if let Some(m) = c.as_object_mut() {
                m.remove("JoinTokens");
            }
            swarm["Cluster"] = c;
        }
        let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Ok(Reply::Json(
            200,
            serde_json::json!({
                "ID": info.node_id,
                "Containers": 0,
                "ContainersRunning": 0,
                "ContainersPaused": 0,
                "ContainersStopped": 0,
                "Images": 0,
                "Driver": "",
                "DriverStatus": [],
                "Plugins": {"Volume": [], "Network": [], "Authorization": null, "Log": []},
                "MemoryLimit": false,
                "SwapLimit": false,
                "KernelVersion": kernel_version(),
                "OperatingSystem": operating_system(),
                "OSType": "linux",
                "Architecture": std::env::consts::ARCH,
                "NCPU": ncpu,
                "MemTotal": mem_total(),
                "Name": name,
                "Labels": [],
                "ExperimentalBuild": false,
                "ServerVersion": ENGINE_VERSION,
                "Runtimes": {},
                "DefaultRuntime": "",
                "Swarm": swarm,
                "LiveRestoreEnabled": false,
                "Isolation": "",
                "SecurityOptions": [],
                "Warnings": null,
            }),
        ))
    }
}
