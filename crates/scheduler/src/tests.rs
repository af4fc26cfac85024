use std::collections::{BTreeMap, BTreeSet};

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
        ingress_address: None,
        raft_unreachable: false,
        data_path_addr: String::new(),
    }
}

fn service(replicas: u64) -> Service {
    Service {
        endpoint: Default::default(),
        id: "svc".into(),
        meta: meta(OffsetDateTime::UNIX_EPOCH),
        spec: ServiceSpec {
            endpoint: Default::default(),
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
            omitted: Default::default(),
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
        port_status: Vec::new(),
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
            port_status: Vec::new(),
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

/// The agents' side, at `at`: tasks told to stop stop, tasks wanted start,
/// and a task of the image `bad` fails as it starts.
fn agents(st: &mut ClusterState, at: OffsetDateTime, index: u64) {
    let report = |t: &Task, state: TaskState| Command::UpdateTaskStatus {
        id: t.id.clone(),
        node_id: t.node_id.clone().unwrap_or_default(),
        status: TaskStatus {
            state,
            timestamp: at,
            message: state.as_str().into(),
            err: String::new(),
            exit_code: None,
            pid: None,
            port_status: Vec::new(),
        },
    };
    let mut reports = Vec::new();
    for t in st.tasks.values().filter(|t| t.node_id.is_some()) {
        if t.desired_state > TaskState::Running
            && t.desired_state != TaskState::Complete
            && !t.status.state.is_terminal()
        {
            reports.push(report(t, TaskState::Shutdown));
        } else if matches!(t.desired_state, TaskState::Running | TaskState::Complete)
            && t.status.state < TaskState::Running
        {
            // A job's task runs to completion at once.
            let state = if t.spec.image == "bad" {
                TaskState::Failed
            } else if t.desired_state == TaskState::Complete {
                TaskState::Complete
            } else {
                TaskState::Running
            };
            reports.push(report(t, state));
        }
    }
    for r in reports {
        st.apply(index, r).unwrap();
    }
}

/// Runs the orchestrator and the agents every 100 ms from `from` for `secs`.
fn run_for(st: &mut ClusterState, from: OffsetDateTime, secs: i64) -> OffsetDateTime {
    let mut now = from;
    let mut index = st.services.values().map(|s| s.meta.version).max().unwrap_or(0) + 1000;
    while now < from + time::Duration::seconds(secs) {
        for c in reconcile(st, now) {
            // A write the state machine refuses is retried next pass, as the
            // leader does.
            let _ = st.apply(index, c);
            index += 1;
        }
        agents(st, now, index);
        index += 1;
        now += time::Duration::milliseconds(100);
    }
    now
}

/// A service of `replicas` running `bb` on nodes a and b, all running.
fn running(replicas: u64, update: UpdateConfig) -> (ClusterState, OffsetDateTime) {
    let mut st = ClusterState::default();
    for (i, n) in ["a", "b"].into_iter().enumerate() {
        st.apply(
            i as u64 + 1,
            Command::PutNode(node(n, NodeState::Ready, Availability::Active)),
        )
        .unwrap();
    }
    let mut s = service(replicas);
    s.spec.update_config = update.clone();
    s.spec.rollback_config = update;
    st.apply(3, Command::CreateService(s)).unwrap();
    let t0 = OffsetDateTime::now_utc();
    let now = run_for(&mut st, t0, 2);
    (st, now)
}

/// `service update --image image` as the control API makes it.
fn update_image(st: &mut ClusterState, image: &str, now: OffsetDateTime) {
    let current = st.services["svc"].clone();
    let mut spec = current.spec.clone();
    spec.task.image = image.into();
    let s = crate::update::apply_spec(&current, spec, false, now);
    update_service(st, s, current.meta.version + 1);
}

fn status_of(st: &ClusterState) -> (UpdateState, String) {
    let s = st.services["svc"].update_status.clone().unwrap();
    (s.state, s.message)
}

fn of_image<'a>(st: &'a ClusterState, image: &str) -> Vec<&'a Task> {
    st.tasks.values().filter(|t| t.spec.image == image).collect()
}

#[test]
fn a_rolling_update_replaces_parallelism_tasks_per_wave_after_the_delay() {
    let config = UpdateConfig {
        parallelism: 2,
        delay_ns: 1_000_000_000,
        monitor_ns: 1_000_000_000,
        ..Default::default()
    };
    let (mut st, now) = running(6, config);
    update_image(&mut st, "bb:v2", now);
    let end = run_for(&mut st, now, 3);
    assert_eq!(status_of(&st).0, UpdateState::Updating, "not done after 3 s");
    run_for(&mut st, end, 5);
    let mut waves: BTreeMap<OffsetDateTime, usize> = BTreeMap::new();
    for t in of_image(&st, "bb:v2") {
        *waves.entry(t.meta.created_at).or_default() += 1;
        assert_eq!(t.desired_state, TaskState::Running);
    }
    assert_eq!(waves.values().copied().collect::<Vec<_>>(), [2, 2, 2], "{waves:?}");
    let times: Vec<OffsetDateTime> = waves.into_keys().collect();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= time::Duration::seconds(1), "{gap}");
        assert!(gap < time::Duration::milliseconds(1500), "{gap}");
    }
    // Stop-first: each old task stopped before its replacement was made.
    for t in of_image(&st, "bb") {
        assert_eq!(t.status.state, TaskState::Shutdown);
        let replacement = of_image(&st, "bb:v2").into_iter().find(|n| n.slot == t.slot).unwrap();
        assert!(t.status.timestamp <= replacement.meta.created_at);
    }
    assert_eq!(status_of(&st), (UpdateState::Completed, "update completed".into()));
}

#[test]
fn a_failing_update_pauses_and_another_update_resumes_it() {
    let (mut st, now) = running(4, UpdateConfig::default());
    update_image(&mut st, "bad", now);
    let now = run_for(&mut st, now, 8);
    let (state, message) = status_of(&st);
    assert_eq!(state, UpdateState::Paused);
    let bad = of_image(&st, "bad");
    let first = bad.iter().min_by_key(|t| t.meta.created_at).unwrap();
    assert_eq!(
        message,
        format!("update paused due to failure or early termination of task {}", first.id)
    );
    // Paused after the first slot: the others still run the old image.
    let old_running = of_image(&st, "bb")
        .into_iter()
        .filter(|t| t.status.state == TaskState::Running)
        .count();
    assert_eq!(old_running, 3);
    // Paused: nothing more is replaced.
    let now = run_for(&mut st, now, 5);
    assert_eq!(status_of(&st).0, UpdateState::Paused);
    let replaced: BTreeSet<u64> = of_image(&st, "bad").iter().map(|t| t.slot).collect();
    assert_eq!(replaced.len(), 1);
    // `service update --update-failure-action continue` goes on.
    let current = st.services["svc"].clone();
    let mut spec = current.spec.clone();
    spec.update_config.failure_action = FailureAction::Continue;
    let s = crate::update::apply_spec(&current, spec, false, now);
    update_service(&mut st, s, current.meta.version + 1);
    assert_eq!(status_of(&st), (UpdateState::Updating, "update in progress".into()));
    run_for(&mut st, now, 8);
    let replaced: BTreeSet<u64> = of_image(&st, "bad").iter().map(|t| t.slot).collect();
    assert_eq!(replaced.len(), 4);
    assert!(
        of_image(&st, "bb")
            .iter()
            .all(|t| t.desired_state == TaskState::Shutdown)
    );
}

#[test]
fn a_failing_update_rolls_back_when_told_and_a_failing_rollback_pauses() {
    let config = UpdateConfig {
        failure_action: FailureAction::Rollback,
        ..Default::default()
    };
    let (mut st, now) = running(3, config);
    update_image(&mut st, "bad", now);
    let now = run_for(&mut st, now, 2);
    let (state, message) = status_of(&st);
    assert_eq!(state, UpdateState::RollbackStarted);
    assert!(
        message.starts_with("update rolled back due to failure or early termination of task "),
        "{message}"
    );
    assert_eq!(st.services["svc"].spec.task.image, "bb");
    assert!(st.services["svc"].previous_spec.is_none());
    let now = run_for(&mut st, now, 10);
    assert_eq!(
        status_of(&st),
        (UpdateState::RollbackCompleted, "rollback completed".into())
    );
    let running_images: BTreeSet<&str> = st
        .tasks
        .values()
        .filter(|t| t.desired_state == TaskState::Running)
        .map(|t| t.spec.image.as_str())
        .collect();
    assert_eq!(running_images, BTreeSet::from(["bb"]));
    assert_eq!(
        st.tasks
            .values()
            .filter(|t| t.desired_state == TaskState::Running)
            .count(),
        3
    );
    // A rollback that fails is paused, never rolled back.
    update_image(&mut st, "bb:v2", now);
    let now = run_for(&mut st, now, 10);
    assert_eq!(status_of(&st).0, UpdateState::Completed);
    let current = st.services["svc"].clone();
    let mut previous = current.previous_spec.clone().unwrap();
    previous.task.image = "bad".into();
    let mut s = current.clone();
    s.previous_spec = Some(previous);
    update_service(&mut st, s, current.meta.version + 1);
    let current = st.services["svc"].clone();
    let back = current.previous_spec.clone().unwrap();
    let s = crate::update::apply_spec(&current, back, true, now);
    update_service(&mut st, s, current.meta.version + 1);
    assert_eq!(
        status_of(&st),
        (UpdateState::RollbackStarted, "manually requested rollback".into())
    );
    run_for(&mut st, now, 3);
    let (state, message) = status_of(&st);
    assert_eq!(state, UpdateState::RollbackPaused);
    assert!(message.starts_with("rollback paused due to failure or early termination of task "));
}

#[test]
fn the_max_failure_ratio_allows_that_share_of_slots_to_fail() {
    let config = UpdateConfig {
        max_failure_ratio: 0.5,
        ..Default::default()
    };
    let (mut st, now) = running(4, config);
    update_image(&mut st, "bad", now);
    run_for(&mut st, now, 15);
    assert_eq!(status_of(&st).0, UpdateState::Paused);
    // 1/4 and 2/4 are within 0.5; the third failing slot pauses.
    let replaced: BTreeSet<u64> = of_image(&st, "bad").iter().map(|t| t.slot).collect();
    assert_eq!(replaced.len(), 3, "{replaced:?}");
}

#[test]
fn start_first_runs_the_new_task_before_the_old_one_stops() {
    let config = UpdateConfig {
        order: UpdateOrder::StartFirst,
        ..Default::default()
    };
    let (mut st, now) = running(2, config);
    update_image(&mut st, "bb:v2", now);
    for c in reconcile(&st, now) {
        st.apply(500, c).unwrap();
    }
    // The first slot has its new task, and its old one is still wanted.
    let new = of_image(&st, "bb:v2");
    assert_eq!(new.len(), 1);
    let slot = new[0].slot;
    let old = |st: &ClusterState| of_image(st, "bb").into_iter().find(|t| t.slot == slot).unwrap().clone();
    assert_eq!(old(&st).desired_state, TaskState::Running);
    // Not yet running: the old one stays.
    for c in reconcile(&st, now) {
        st.apply(501, c).unwrap();
    }
    assert_eq!(old(&st).desired_state, TaskState::Running);
    agents(&mut st, now, 502);
    for c in reconcile(&st, now) {
        st.apply(503, c).unwrap();
    }
    assert_eq!(old(&st).desired_state, TaskState::Shutdown);
    run_for(&mut st, now, 10);
    assert_eq!(status_of(&st).0, UpdateState::Completed);
}

#[test]
fn restarts_stop_after_max_attempts_within_the_window() {
    let mut st = ClusterState::default();
    st.apply(1, Command::PutNode(node("a", NodeState::Ready, Availability::Active)))
        .unwrap();
    let mut s = service(1);
    s.spec.task.image = "bad".into();
    s.spec.task.restart.delay_ns = 100_000_000;
    s.spec.task.restart.max_attempts = 6;
    st.apply(2, Command::CreateService(s)).unwrap();
    run_for(&mut st, OffsetDateTime::now_utc(), 10);
    // The first task and six restarts, though history keeps five.
    let tasks: Vec<&Task> = st.tasks.values().collect();
    assert_eq!(tasks.len(), 5);
    let last = tasks.iter().max_by_key(|t| t.meta.created_at).unwrap();
    assert_eq!(last.restarts.len(), 6);
    assert!(tasks.iter().all(|t| t.status.state == TaskState::Failed));
    assert_eq!(
        last.desired_state,
        TaskState::Running,
        "the last one is left as it ended"
    );

    // Within a window: at most two restarts in 10 s, judged at each failure;
    // once refused, the slot stays finished after the window has passed.
    let mut st = ClusterState::default();
    st.apply(1, Command::PutNode(node("a", NodeState::Ready, Availability::Active)))
        .unwrap();
    let mut s = service(1);
    s.spec.task.image = "bad".into();
    s.spec.task.restart.delay_ns = 1_000_000_000;
    s.spec.task.restart.max_attempts = 2;
    s.spec.task.restart.window_ns = 10_000_000_000;
    st.apply(2, Command::CreateService(s)).unwrap();
    run_for(&mut st, OffsetDateTime::now_utc(), 20);
    assert_eq!(
        st.tasks.len(),
        3,
        "two restarts within 10 s, then none even after the window"
    );
}

#[test]
fn an_initialized_swarm_gets_its_predefined_networks_once() {
    let mut st = cluster();
    let now = OffsetDateTime::now_utc();
    settle(&mut st, now);
    assert!(st.networks.is_empty(), "no networks before the swarm is initialized");
    st.cluster = Some(Cluster {
        data_path_port: Default::default(),
        default_addr_pool: Default::default(),
        subnet_size: Default::default(),
        id: "c".into(),
        meta: meta(now),
        name: "default".into(),
        snapshot_interval: 10_000,
        keep_old_snapshots: 0,
        election_tick: 10,
        heartbeat_tick: 1,
        log_entries_for_slow_followers: swarmkeep_store::objects::DEFAULT_LOG_ENTRIES_FOR_SLOW_FOLLOWERS,
        task_history_retention_limit: 5,
        heartbeat_period_ms: 5000,
        ca_cert_pem: String::new(),
        sealed_ca_key: Vec::new(),
        sealed_worker_token: Vec::new(),
        sealed_manager_token: Vec::new(),
        node_cert_expiry_ms: 1,
        ca_force_rotate: 0,
        autolock: false,
        sealed_unlock_key: Vec::new(),
    });
    assert_eq!(settle(&mut st, now), 1);
    let host = st.network_by_name("host").expect("the host network");
    assert_eq!(host.spec.driver, "host");
    assert!(host.is_predefined());
    assert_eq!(st.networks.len(), 1);
}

/// Nodes `ids`, all up and active, with `labels` (node → zone).
fn nodes(ids: &[&str], zones: &[(&str, &str)]) -> ClusterState {
    let mut st = ClusterState::default();
    for (i, id) in ids.iter().enumerate() {
        let mut n = node(id, NodeState::Ready, Availability::Active);
        n.description.nano_cpus = 2_000_000_000;
        n.description.memory_bytes = 1 << 30;
        if let Some((_, zone)) = zones.iter().find(|(node, _)| node == id) {
            n.labels.insert("zone".into(), zone.to_string());
        }
        st.apply(i as u64 + 1, Command::PutNode(n)).unwrap();
    }
    st
}

fn set_node(st: &mut ClusterState, id: &str, change: impl FnOnce(&mut Node)) {
    let mut n = st.nodes[id].clone();
    change(&mut n);
    let expected_version = n.meta.version;
    let index = st.nodes.values().map(|n| n.meta.version).max().unwrap_or(0) + 5000;
    st.apply(
        index,
        Command::UpdateNode {
            expected_version,
            node: n,
        },
    )
    .unwrap();
}

fn create(st: &mut ClusterState, s: Service) {
    let index = st.nodes.len() as u64 + st.services.len() as u64 + 100;
    st.apply(index, Command::CreateService(s)).unwrap();
}

fn live_per_node(st: &ClusterState) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for t in st
        .tasks
        .values()
        .filter(|t| t.desired_state == TaskState::Running && !t.status.state.is_terminal())
    {
        let Some(node) = t.node_id.clone() else { continue };
        *m.entry(node).or_default() += 1;
    }
    m
}

#[test]
fn a_down_nodes_tasks_are_replaced_elsewhere_at_once_and_stay_there() {
    let mut st = nodes(&["a", "b", "c"], &[]);
    create(&mut st, service(3));
    let t0 = OffsetDateTime::now_utc();
    let now = run_for(&mut st, t0, 1);
    assert_eq!(
        live_per_node(&st),
        BTreeMap::from([("a".into(), 1), ("b".into(), 1), ("c".into(), 1)])
    );
    set_node(&mut st, "c", |n| n.state = NodeState::Down);
    // One pass: c's task is shut down and its slot has a new task elsewhere.
    for c in reconcile(&st, now) {
        st.apply(7000, c).unwrap();
    }
    let on_c = st.tasks.values().find(|t| t.node_id.as_deref() == Some("c")).unwrap();
    assert_eq!(on_c.desired_state, TaskState::Shutdown);
    let replacement = st
        .tasks
        .values()
        .find(|t| t.slot == on_c.slot && t.desired_state == TaskState::Running)
        .unwrap();
    assert!(matches!(replacement.node_id.as_deref(), Some("a" | "b")));
    let now = run_for(&mut st, now, 1);
    assert_eq!(live_per_node(&st).values().sum::<usize>(), 3);
    // Back up: nothing moves to it.
    set_node(&mut st, "c", |n| n.state = NodeState::Ready);
    run_for(&mut st, now, 2);
    assert_eq!(live_per_node(&st).get("c"), None);
}

#[test]
fn drain_moves_tasks_away_and_pause_keeps_them_but_takes_no_new_ones() {
    let mut st = nodes(&["a", "b"], &[]);
    create(&mut st, service(4));
    let now = run_for(&mut st, OffsetDateTime::now_utc(), 1);
    assert_eq!(live_per_node(&st), BTreeMap::from([("a".into(), 2), ("b".into(), 2)]));
    set_node(&mut st, "b", |n| n.availability = Availability::Pause);
    let now = run_for(&mut st, now, 1);
    assert_eq!(live_per_node(&st), BTreeMap::from([("a".into(), 2), ("b".into(), 2)]));
    // Scaling up on a paused node: the new tasks all go to a.
    let mut s = st.services["svc"].clone();
    s.spec.mode = ServiceMode::Replicated { replicas: 6 };
    let v = s.meta.version;
    update_service(&mut st, s, v + 1);
    let now = run_for(&mut st, now, 1);
    assert_eq!(live_per_node(&st), BTreeMap::from([("a".into(), 4), ("b".into(), 2)]));
    set_node(&mut st, "b", |n| n.availability = Availability::Drain);
    run_for(&mut st, now, 1);
    assert_eq!(live_per_node(&st), BTreeMap::from([("a".into(), 6)]));
}

#[test]
fn a_global_service_follows_joining_draining_and_leaving_nodes() {
    let mut st = nodes(&["a", "b"], &[]);
    let mut s = service(0);
    s.spec.mode = ServiceMode::Global;
    create(&mut st, s);
    let now = run_for(&mut st, OffsetDateTime::now_utc(), 1);
    assert_eq!(live_per_node(&st), BTreeMap::from([("a".into(), 1), ("b".into(), 1)]));
    st.apply(
        8000,
        Command::PutNode(node("c", NodeState::Ready, Availability::Active)),
    )
    .unwrap();
    let now = run_for(&mut st, now, 1);
    assert_eq!(live_per_node(&st).len(), 3);
    set_node(&mut st, "b", |n| n.availability = Availability::Pause);
    let now = run_for(&mut st, now, 1);
    assert_eq!(live_per_node(&st).len(), 3, "a paused node keeps its task");
    set_node(&mut st, "b", |n| n.availability = Availability::Drain);
    let now = run_for(&mut st, now, 1);
    assert_eq!(live_per_node(&st), BTreeMap::from([("a".into(), 1), ("c".into(), 1)]));
    set_node(&mut st, "c", |n| n.state = NodeState::Down);
    run_for(&mut st, now, 1);
    assert_eq!(live_per_node(&st), BTreeMap::from([("a".into(), 1)]));
}

#[test]
fn constraints_place_only_on_matching_nodes_or_say_why_not() {
    let mut st = nodes(&["a", "b", "c"], &[("a", "east"), ("b", "west"), ("c", "west")]);
    let mut s = service(4);
    s.spec.task.placement.constraints = vec!["node.labels.zone==WEST".into(), "node.hostname!=c".into()];
    create(&mut st, s);
    let now = run_for(&mut st, OffsetDateTime::now_utc(), 1);
    assert_eq!(live_per_node(&st), BTreeMap::from([("b".into(), 4)]));
    // Nothing fits: pending with swarmkit's explanation.
    let mut s = service(1);
    s.id = "svc2".into();
    s.spec.annotations.name = "other".into();
    s.spec.task.placement.constraints = vec!["node.role==manager".into()];
    create(&mut st, s);
    let now = run_for(&mut st, now, 1);
    let pending = st.tasks.values().find(|t| t.service_id == "svc2").unwrap();
    assert_eq!(pending.status.state, TaskState::Pending);
    assert_eq!(
        pending.status.err,
        "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    );
    // A label removed: the tasks it no longer allows move.
    set_node(&mut st, "b", |n| {
        n.labels.remove("zone");
    });
    run_for(&mut st, now, 1);
    assert_eq!(live_per_node(&st), BTreeMap::new());
    let why: BTreeSet<String> = st
        .tasks
        .values()
        .filter(|t| t.service_id == "svc" && t.desired_state == TaskState::Running)
        .map(|t| t.status.err.clone())
        .collect();
    assert_eq!(
        why,
        BTreeSet::from(["no suitable node (scheduling constraints not satisfied on 3 nodes)".to_string()])
    );
}

#[test]
fn spread_balances_over_label_values_then_nodes() {
    let mut st = nodes(&["a", "b", "c"], &[("a", "east"), ("b", "west"), ("c", "west")]);
    let mut s = service(6);
    s.spec.task.placement.spread = vec!["node.labels.zone".into()];
    create(&mut st, s);
    run_for(&mut st, OffsetDateTime::now_utc(), 1);
    // Half per zone: east's one node takes three.
    let per = live_per_node(&st);
    assert_eq!(per["a"], 3);
    assert_eq!(per["b"] + per["c"], 3);
    assert!(per["b"].abs_diff(per["c"]) <= 1);
}

#[test]
fn max_replicas_and_reservations_limit_a_node_with_swarmkits_words() {
    let mut st = nodes(&["a", "b"], &[]);
    let mut s = service(3);
    s.spec.task.placement.max_replicas = 1;
    create(&mut st, s);
    let now = run_for(&mut st, OffsetDateTime::now_utc(), 1);
    assert_eq!(live_per_node(&st), BTreeMap::from([("a".into(), 1), ("b".into(), 1)]));
    let pending: Vec<&Task> = st
        .tasks
        .values()
        .filter(|t| t.status.state == TaskState::Pending)
        .collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].status.err,
        "no suitable node (max replicas per node limit exceed)"
    );

    let mut s = service(3);
    s.id = "svc2".into();
    s.spec.annotations.name = "big".into();
    s.spec.task.reservations.memory_bytes = 600 << 20;
    create(&mut st, s);
    run_for(&mut st, now, 1);
    let big: Vec<&Task> = st.tasks.values().filter(|t| t.service_id == "svc2").collect();
    assert_eq!(big.iter().filter(|t| t.status.state == TaskState::Running).count(), 2);
    let waiting = big.iter().find(|t| t.status.state == TaskState::Pending).unwrap();
    assert_eq!(
        waiting.status.err,
        "no suitable node (insufficient resources on 2 nodes)"
    );
}

#[test]
fn a_replicated_job_runs_its_completions_max_concurrent_at_a_time_and_stops() {
    let mut st = nodes(&["a", "b"], &[]);
    let mut s = service(0);
    s.spec.mode = ServiceMode::ReplicatedJob {
        max_concurrent: 2,
        total_completions: 5,
    };
    s.spec.task.restart.condition = RestartCondition::OnFailure;
    create(&mut st, s);
    let mut now = OffsetDateTime::now_utc();
    for i in 0..10u64 {
        for c in reconcile(&st, now) {
            st.apply(9000 + i, c).unwrap();
        }
        let live = st.tasks.values().filter(|t| !t.status.state.is_terminal()).count();
        assert!(live <= 2, "{live} at once");
        agents(&mut st, now, 9100 + i);
        now += time::Duration::milliseconds(100);
    }
    let done: Vec<&Task> = st.tasks.values().collect();
    assert_eq!(done.len(), 5);
    assert!(
        done.iter()
            .all(|t| t.status.state == TaskState::Complete && t.desired_state == TaskState::Complete)
    );
    let slots: BTreeSet<u64> = done.iter().map(|t| t.slot).collect();
    assert_eq!(slots, BTreeSet::from([1, 2, 3, 4, 5]));
    assert!(
        reconcile(&st, now + time::Duration::seconds(60)).is_empty(),
        "completed tasks are not run again"
    );
    // A new spec runs the job again.
    let mut s = st.services["svc"].clone();
    s.spec.task.force_update += 1;
    let v = s.meta.version;
    update_service(&mut st, s, v + 1);
    run_for(&mut st, now, 2);
    let rerun = st
        .tasks
        .values()
        .filter(|t| t.spec.force_update == 1 && t.status.state == TaskState::Complete)
        .count();
    assert_eq!(rerun, 5);
}

#[test]
fn a_global_job_runs_once_per_node_including_a_new_one() {
    let mut st = nodes(&["a", "b"], &[]);
    let mut s = service(0);
    s.spec.mode = ServiceMode::GlobalJob;
    create(&mut st, s);
    let now = run_for(&mut st, OffsetDateTime::now_utc(), 2);
    assert_eq!(st.tasks.len(), 2);
    assert!(
        st.tasks.values().all(|t| t.status.state == TaskState::Complete),
        "{:?}",
        st.tasks
            .values()
            .map(|t| (t.status.state, t.desired_state, &t.status.err))
            .collect::<Vec<_>>()
    );
    st.apply(
        9500,
        Command::PutNode(node("c", NodeState::Ready, Availability::Active)),
    )
    .unwrap();
    run_for(&mut st, now, 2);
    let per: BTreeSet<String> = st.tasks.values().filter_map(|t| t.node_id.clone()).collect();
    assert_eq!(per, BTreeSet::from(["a".into(), "b".into(), "c".into()]));
    assert_eq!(st.tasks.len(), 3);
}

#[test]
fn a_failing_job_task_is_restarted_under_its_policy_then_left() {
    let mut st = nodes(&["a"], &[]);
    let mut s = service(0);
    s.spec.mode = ServiceMode::ReplicatedJob {
        max_concurrent: 1,
        total_completions: 1,
    };
    s.spec.task.image = "bad".into();
    s.spec.task.restart = RestartPolicy {
        condition: RestartCondition::OnFailure,
        delay_ns: 100_000_000,
        max_attempts: 2,
        window_ns: 0,
    };
    create(&mut st, s);
    run_for(&mut st, OffsetDateTime::now_utc(), 5);
    assert_eq!(st.tasks.len(), 3, "the first run and two restarts");
    assert!(st.tasks.values().all(|t| t.status.state == TaskState::Failed));
}

#[test]
fn a_manager_silent_to_the_leader_for_longer_than_the_limit_is_unreachable_until_it_answers() {
    use crate::liveness::manager_reachability;
    use std::time::Duration;
    let mut st = ClusterState::default();
    for (id, raft) in [("leader", 1), ("quiet", 2), ("never", 3), ("answers", 4)] {
        let mut n = node(id, NodeState::Ready, Availability::Active);
        n.role = NodeRole::Manager;
        n.raft_id = Some(raft);
        st.nodes.insert(id.into(), n);
    }
    st.nodes
        .insert("worker".into(), node("worker", NodeState::Ready, Availability::Active));
    let limit = Duration::from_secs(1);
    let silent = |peer: u64| match peer {
        2 => Some(Duration::from_secs(5)),
        4 => Some(Duration::from_millis(30)),
        _ => None,
    };
    let marked = |cmds: Vec<Command>| -> BTreeMap<String, bool> {
        cmds.into_iter()
            .map(|c| match c {
                Command::UpdateNode { node, .. } => (node.id, node.raft_unreachable),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let got = marked(manager_reachability(&st, 1, &silent, limit));
    assert_eq!(
        got,
        BTreeMap::from([("quiet".to_string(), true), ("never".to_string(), true)]),
        "the leader itself, a manager that answers and a worker are left alone"
    );
    // Once it is marked, nothing more is written until it answers again.
    for id in ["quiet", "never"] {
        st.nodes.get_mut(id).unwrap().raft_unreachable = true;
    }
    assert!(manager_reachability(&st, 1, &silent, limit).is_empty());
    let answered = |peer: u64| [2, 4].contains(&peer).then(|| Duration::from_millis(10));
    assert_eq!(
        marked(manager_reachability(&st, 1, &answered, limit)),
        BTreeMap::from([("quiet".to_string(), false)])
    );
}
