use std::collections::BTreeMap;

use swarmkeep_store::objects::*;
use swarmkeep_store::{ClusterState, Command};
use time::OffsetDateTime;

use crate::reconcile as reconcile_with_ids;

/// Task IDs from a counter: the orchestrator is a function of its inputs.
fn reconcile(st: &ClusterState, now: OffsetDateTime) -> Vec<Command> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    reconcile_with_ids(st, now, &mut || {
        format!("task{:021}", NEXT.fetch_add(1, Ordering::Relaxed))
    })
}

fn meta(now: OffsetDateTime) -> Meta {
    Meta {
        version: 0,
        created_at: now,
        updated_at: now,
    }
}

fn node(id: &str, state: NodeState, availability: Availability) -> Node {
    Node {
        id: id.into(),
        meta: meta(OffsetDateTime::UNIX_EPOCH),
        labels: BTreeMap::new(),
        role: NodeRole::Worker,
        availability,
        state,
        description: NodeDescription {
            hostname: id.into(),
            os: "linux".into(),
            architecture: "x86_64".into(),
            nano_cpus: 0,
            memory_bytes: 0,
            engine_version: String::new(),
        },
        addr: String::new(),
        raft_id: None,
        manager_addr: None,
    }
}

fn service(replicas: u64) -> Service {
    Service {
        id: "svc".into(),
        meta: meta(OffsetDateTime::UNIX_EPOCH),
        spec: ServiceSpec {
            annotations: Annotations {
                name: "web".into(),
                labels: BTreeMap::new(),
            },
            task: TaskSpec {
                image: "bb".into(),
                args: vec!["sleep".into(), "1000".into()],
                ..Default::default()
            },
            mode: ServiceMode::Replicated { replicas },
            update_config: Default::default(),
            rollback_config: Default::default(),
        },
        previous_spec: None,
        update_status: None,
    }
}

fn cluster() -> ClusterState {
    let mut st = ClusterState::default();
    let mut index = 1;
    for n in [
        node("a", NodeState::Ready, Availability::Active),
        node("b", NodeState::Ready, Availability::Active),
        node("c", NodeState::Down, Availability::Active),
        node("d", NodeState::Ready, Availability::Drain),
    ] {
        st.apply(index, Command::PutNode(n)).unwrap();
        index += 1;
    }
    st.apply(index, Command::CreateService(service(3))).unwrap();
    st
}

/// Writes `service` as an update of its current version at raft `index`.
fn update_service(st: &mut ClusterState, service: Service, index: u64) {
    let expected_version = service.meta.version;
    st.apply(
        index,
        Command::UpdateService {
            service,
            expected_version,
        },
    )
    .unwrap();
}

/// Applies what reconcile asks until it asks nothing (at most 5 rounds).
fn settle(st: &mut ClusterState, now: OffsetDateTime) -> usize {
    for round in 0..5 {
        let commands = reconcile(st, now);
        if commands.is_empty() {
            return round;
        }
        for c in commands {
            st.apply(100 + round as u64, c).unwrap();
        }
    }
    panic!("reconcile did not settle");
}

fn per_node(st: &ClusterState) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for t in st.tasks.values().filter(|t| t.desired_state == TaskState::Running) {
        *m.entry(t.node_id.clone().unwrap_or_default()).or_default() += 1;
    }
    m
}

#[test]
fn replicas_spread_over_ready_active_nodes_and_settle() {
    let mut st = cluster();
    let now = OffsetDateTime::now_utc();
    assert_eq!(settle(&mut st, now), 1, "one round makes and places every task");
    assert_eq!(per_node(&st), BTreeMap::from([("a".into(), 2), ("b".into(), 1)]));
    let slots: Vec<u64> = st.tasks.values().map(|t| t.slot).collect();
    assert_eq!(
        slots.iter().copied().collect::<std::collections::BTreeSet<_>>().len(),
        3
    );
    assert!(st.tasks.values().all(|t| t.status.state == TaskState::Assigned));
}

#[test]
fn scale_down_shuts_down_the_highest_slots() {
    let mut st = cluster();
    let now = OffsetDateTime::now_utc();
    settle(&mut st, now);
    let mut s = st.services["svc"].clone();
    s.spec.mode = ServiceMode::Replicated { replicas: 1 };
    update_service(&mut st, s, 200);
    settle(&mut st, now);
    let running: Vec<u64> = st
        .tasks
        .values()
        .filter(|t| t.desired_state == TaskState::Running)
        .map(|t| t.slot)
        .collect();
    assert_eq!(running, vec![1]);
}

#[test]
fn a_failed_task_is_replaced_after_the_restart_delay() {
    let mut st = cluster();
    let now = OffsetDateTime::now_utc();
    settle(&mut st, now);
    let victim = st.tasks.values().find(|t| t.slot == 1).unwrap().clone();
    let failed = TaskStatus {
        state: TaskState::Failed,
        timestamp: now,
        message: "started".into(),
        err: "task: non-zero exit (1)".into(),
        exit_code: Some(1),
        pid: None,
    };
    st.apply(
        300,
        Command::UpdateTaskStatus {
            id: victim.id.clone(),
            node_id: victim.node_id.clone().unwrap(),
            status: failed,
        },
    )
    .unwrap();
    // Within the 5 s default delay nothing happens.
    assert!(reconcile(&st, now + time::Duration::seconds(1)).is_empty());
    settle(&mut st, now + time::Duration::seconds(6));
    let slot1: Vec<&Task> = st.tasks.values().filter(|t| t.slot == 1).collect();
    assert_eq!(slot1.len(), 2);
    assert_eq!(st.tasks[&victim.id].desired_state, TaskState::Shutdown);
    assert!(
        slot1
            .iter()
            .any(|t| t.id != victim.id && t.desired_state == TaskState::Running)
    );
}

#[test]
fn restart_condition_none_leaves_the_slot_finished() {
    let mut st = cluster();
    let mut s = st.services["svc"].clone();
    s.spec.task.restart.condition = RestartCondition::None;
    let v = s.meta.version;
    st.apply(
        50,
        Command::UpdateService {
            service: s,
            expected_version: v,
        },
    )
    .unwrap();
    let now = OffsetDateTime::now_utc();
    settle(&mut st, now);
    for t in st.tasks.clone().values() {
        let status = TaskStatus {
            state: TaskState::Complete,
            timestamp: now,
            message: "finished".into(),
            err: String::new(),
            exit_code: Some(0),
            pid: None,
        };
        st.apply(
            60,
            Command::UpdateTaskStatus {
                id: t.id.clone(),
                node_id: t.node_id.clone().unwrap(),
                status,
            },
        )
        .unwrap();
    }
    assert!(reconcile(&st, now + time::Duration::seconds(60)).is_empty());
}

#[test]
fn no_eligible_node_leaves_tasks_pending() {
    let mut st = ClusterState::default();
    st.apply(1, Command::PutNode(node("c", NodeState::Down, Availability::Active)))
        .unwrap();
    st.apply(2, Command::CreateService(service(2))).unwrap();
    let now = OffsetDateTime::now_utc();
    settle(&mut st, now);
    assert_eq!(st.tasks.len(), 2);
    assert!(
        st.tasks
            .values()
            .all(|t| t.status.state == TaskState::Pending && t.node_id.is_none())
    );
}

/// Every task wanted reports Running at `at` (as its agent would).
fn run_all(st: &mut ClusterState, at: OffsetDateTime, index: u64) {
    let wanted: Vec<Task> = st
        .tasks
        .values()
        .filter(|t| t.desired_state == TaskState::Running && t.status.state < TaskState::Running)
        .cloned()
        .collect();
    for t in wanted {
        let status = TaskStatus {
            state: TaskState::Running,
            timestamp: at,
            message: "started".into(),
            err: String::new(),
            exit_code: None,
            pid: Some(1),
        };
        st.apply(
            index,
            Command::UpdateTaskStatus {
                id: t.id.clone(),
                node_id: t.node_id.clone().unwrap(),
                status,
            },
        )
        .unwrap();
    }
}

#[test]
fn an_update_completes_once_the_new_tasks_ran_for_the_monitor_period() {
    let mut st = cluster();
    let t0 = OffsetDateTime::now_utc();
    settle(&mut st, t0);
    run_all(&mut st, t0, 150);
    let mut s = st.services["svc"].clone();
    s.spec.task.image = "bb:v2".into();
    s.update_status = Some(UpdateStatus {
        state: UpdateState::Updating,
        started_at: t0,
        completed_at: None,
        message: "update in progress".into(),
    });
    update_service(&mut st, s, 200);
    // Old tasks are being replaced: not complete.
    let commands = reconcile(&st, t0);
    assert!(
        !commands
            .iter()
            .any(|c| matches!(c, Command::CompleteServiceUpdate { .. }))
    );
    settle(&mut st, t0);
    // The old tasks have not reported their shutdown yet, the new ones are not running.
    assert!(reconcile(&st, t0 + time::Duration::seconds(60)).is_empty());
    for t in st
        .tasks
        .clone()
        .values()
        .filter(|t| t.desired_state == TaskState::Shutdown)
    {
        let status = TaskStatus {
            state: TaskState::Shutdown,
            timestamp: t0,
            message: "shutdown".into(),
            err: String::new(),
            exit_code: Some(0),
            pid: None,
        };
        st.apply(
            210,
            Command::UpdateTaskStatus {
                id: t.id.clone(),
                node_id: t.node_id.clone().unwrap(),
                status,
            },
        )
        .unwrap();
    }
    let t1 = t0 + time::Duration::seconds(1);
    run_all(&mut st, t1, 220);
    // Running, but not yet for the 5 s monitor period.
    assert!(reconcile(&st, t1 + time::Duration::seconds(4)).is_empty());
    let done = reconcile(&st, t1 + time::Duration::seconds(5));
    assert!(
        matches!(done.as_slice(), [Command::CompleteServiceUpdate { id, .. }] if id == "svc"),
        "{done:?}"
    );
    // A finding about an earlier update does not complete a later one.
    let Command::CompleteServiceUpdate {
        id,
        started_at,
        completed_at,
    } = done[0].clone()
    else {
        unreachable!()
    };
    let stale = Command::CompleteServiceUpdate {
        id,
        started_at: started_at - time::Duration::seconds(1),
        completed_at,
    };
    st.apply(225, stale).unwrap();
    assert_eq!(
        st.services["svc"].update_status.as_ref().unwrap().state,
        UpdateState::Updating
    );
    for c in done {
        st.apply(230, c).unwrap();
    }
    let status = st.services["svc"].update_status.clone().unwrap();
    assert_eq!(
        (status.state, status.message.as_str()),
        (UpdateState::Completed, "update completed")
    );
    assert!(reconcile(&st, t1 + time::Duration::seconds(60)).is_empty());
}

#[test]
fn an_initialized_swarm_gets_its_predefined_networks_once() {
    let mut st = cluster();
    let now = OffsetDateTime::now_utc();
    settle(&mut st, now);
    assert!(st.networks.is_empty(), "no networks before the swarm is initialized");
    st.cluster = Some(Cluster {
        id: "c".into(),
        meta: meta(now),
        name: "default".into(),
        snapshot_interval: 10_000,
        task_history_retention_limit: 5,
        heartbeat_period_ms: 5000,
        ca_cert_pem: String::new(),
        sealed_ca_key: Vec::new(),
        sealed_worker_token: Vec::new(),
        sealed_manager_token: Vec::new(),
        node_cert_expiry_ms: 1,
        autolock: false,
        sealed_unlock_key: Vec::new(),
    });
    assert_eq!(settle(&mut st, now), 1);
    let host = st.network_by_name("host").expect("the host network");
    assert_eq!(host.spec.driver, "host");
    assert!(host.is_predefined());
    assert_eq!(st.networks.len(), 1);
}
