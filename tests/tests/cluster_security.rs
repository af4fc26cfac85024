//! Who may join and who may call what on the cluster port.

use std::path::Path;

use swarmkeep_api::cluster::cluster_client::ClusterClient;
use swarmkeep_api::cluster::raft_client::RaftClient;
use swarmkeep_api::cluster::{
    HeartbeatRequest, LeaderCall, ManagerKeysRequest, ProposeRequest, RaftMessage, RaftStreamMessage, ReadIndexRequest,
    leader_answer, leader_call,
};
use swarmkeep_tests::{free_addr, memory_kib, swarm, swarm_node};
use swarmkeep_transport::tls::{NodeTls, pinned_channel};

fn tls_of(data_dir: &Path) -> NodeTls {
    NodeTls::load(&data_dir.join("tls")).expect("node TLS identity")
}

/// A one-node swarm of its own: another CA, other tokens.
fn foreign_swarm() -> swarmkeep_tests::SwarmNode {
    let other = swarm_node(5, "other");
    other
        .cli(&[
            "swarm",
            "init",
            "--advertise-addr",
            &other.addr,
            "--listen-addr",
            &other.addr,
        ])
        .ok();
    other
}

#[test]
fn joins_with_bad_tokens_are_refused_with_dockers_errors() {
    let nodes = swarm(1, 0);
    let m1 = &nodes[0];
    let other = foreign_swarm();
    let foreign_token = other
        .cli(&["swarm", "join-token", "-q", "worker"])
        .ok()
        .trim()
        .to_string();
    let token = m1.cli(&["swarm", "join-token", "-q", "worker"]).ok().trim().to_string();

    let joiner = swarm_node(6, "joiner");
    let join = |t: &str, remote: &str| {
        joiner.cli(&[
            "swarm",
            "join",
            "--token",
            t,
            "--advertise-addr",
            &joiner.addr,
            "--listen-addr",
            &joiner.addr,
            remote,
        ])
    };

    // A token of another cluster pins another CA.
    let out = join(&foreign_token, &m1.addr);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("Error response from daemon: remote CA does not match fingerprint. Expected: "),
        "{out:?}"
    );
    // A forged digest.
    let forged = format!("SWMTKN-1-{}-{}", "0".repeat(50), &token[60..]);
    assert_eq!(
        join(&forged, &m1.addr).stderr,
        format!(
            "Error response from daemon: remote CA does not match fingerprint. Expected: {}\n",
            "0".repeat(64)
        )
    );
    // The right CA, a wrong secret.
    let wrong_secret = format!("{}{}", &token[..60], "a".repeat(25));
    assert_eq!(
        join(&wrong_secret, &m1.addr).stderr,
        "Error response from daemon: rpc error: code = InvalidArgument desc = A valid join token is necessary to join this cluster\n"
    );
    assert_eq!(
        join("garbage", &m1.addr).stderr,
        "Error response from daemon: invalid join token\n"
    );
    let nobody = free_addr("127.0.0.9");
    let out = join(&token, &nobody);
    assert!(
        out.stderr
            .starts_with("Error response from daemon: rpc error: code = Unavailable desc = connection error"),
        "{out:?}"
    );
    // A failed join leaves nothing behind: the right token then works.
    assert_eq!(join(&token, &m1.addr).ok(), "This node joined a swarm as a worker.\n");
    assert_eq!(
        join(&token, &m1.addr).stderr,
        "Error response from daemon: This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.\n"
    );

    // A rotated token stops working at once.
    m1.cli(&["swarm", "join-token", "--rotate", "worker"]).ok();
    let late = swarm_node(7, "late");
    let out = late.cli(&[
        "swarm",
        "join",
        "--token",
        &token,
        "--advertise-addr",
        &late.addr,
        "--listen-addr",
        &late.addr,
        &m1.addr,
    ]);
    assert!(out.stderr.contains("A valid join token is necessary"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_certificates_and_workers_cannot_call_manager_rpcs() {
    let nodes = tokio::task::spawn_blocking(|| swarm(1, 1)).await.unwrap();
    let (m1, w1) = (&nodes[0], &nodes[1]);
    let worker_tls = tls_of(&w1.daemon.data_dir());

    // A worker's certificate: heartbeats yes, manager-only calls no.
    let mut as_worker = ClusterClient::new(worker_tls.channel(&m1.addr).unwrap());
    as_worker
        .heartbeat(HeartbeatRequest {})
        .await
        .expect("workers heartbeat");
    let keys = as_worker.manager_keys(ManagerKeysRequest {}).await.unwrap_err();
    assert_eq!(keys.code(), tonic::Code::PermissionDenied, "{keys:?}");
    let propose = as_worker
        .propose(ProposeRequest {
            command: b"{}".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(propose.code(), tonic::Code::PermissionDenied, "{propose:?}");
    let mut raft_as_worker = RaftClient::new(worker_tls.channel(&m1.addr).unwrap());
    let append = raft_as_worker
        .append_entries(RaftMessage {
            payload: b"{}".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(append.code(), tonic::Code::PermissionDenied, "{append:?}");
    let pre_vote = raft_as_worker
        .pre_vote(RaftMessage {
            payload: b"{}".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(pre_vote.code(), tonic::Code::PermissionDenied, "{pre_vote:?}");
    let (_tx, rx) = tokio::sync::mpsc::channel::<RaftStreamMessage>(1);
    let stream = raft_as_worker
        .append_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(stream.code(), tonic::Code::PermissionDenied, "{stream:?}");
    let (_tx, rx) = tokio::sync::mpsc::channel::<LeaderCall>(1);
    let stream = ClusterClient::new(worker_tls.channel(&m1.addr).unwrap())
        .leader_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(stream.code(), tonic::Code::PermissionDenied, "{stream:?}");

    // No client certificate at all.
    let mut anonymous = ClusterClient::new(pinned_channel(&m1.addr, &worker_tls.ca_pem).unwrap());
    let anon = anonymous.manager_keys(ManagerKeysRequest {}).await.unwrap_err();
    assert_eq!(anon.code(), tonic::Code::Unauthenticated, "{anon:?}");

    // A certificate from another cluster's CA is refused in the handshake.
    let other = tokio::task::spawn_blocking(foreign_swarm).await.unwrap();
    let mut foreign = tls_of(&other.daemon.data_dir());
    // Trust m1's CA so only the client certificate is foreign.
    foreign.ca_pem = worker_tls.ca_pem.clone();
    let mut as_foreign = ClusterClient::new(foreign.channel(&m1.addr).unwrap());
    let refused = as_foreign.heartbeat(HeartbeatRequest {}).await.unwrap_err();
    assert_ne!(refused.code(), tonic::Code::Ok);
    assert_ne!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
}

/// The attack of the security audit, replayed: a worker is removed with
/// `node rm --force`, and its certificate (valid for 90 more days) then
/// tries raft, the dispatcher and the cluster calls. Every call is refused,
/// nothing it sent is applied, and its task is orphaned and replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_nodes_certificate_has_no_authority_left() {
    use std::time::Duration;

    use swarmkeep_api::dispatcher::dispatcher_client::DispatcherClient;
    use swarmkeep_api::dispatcher::{FetchSecretRequest, SessionRequest};
    use swarmkeep_crypto::SessionKey;
    use swarmkeep_tests::eventually;

    let nodes = tokio::task::spawn_blocking(|| swarm(1, 1)).await.unwrap();
    let (m1, w1) = (&nodes[0], &nodes[1]);
    m1.daemon
        .cli_stdin(&["secret", "create", "db", "-"], Some(b"removed-node-marker"))
        .ok();
    let secret_id = m1
        .cli(&["secret", "inspect", "db", "--format", "{{.ID}}"])
        .ok()
        .trim()
        .to_string();
    assert!(eventually(Duration::from_secs(10), || {
        m1.cli(&["node", "ls", "--format", "{{.Status}}"]).stdout == "Ready\nReady\n"
    }));
    m1.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "s",
        "--replicas",
        "2",
        "--secret",
        "db",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    let placed = || {
        m1.cli(&["service", "ps", "s", "--format", "{{.Node}}|{{.CurrentState}}"])
            .stdout
    };
    assert!(
        eventually(Duration::from_secs(20), || placed().contains("w1|Running")),
        "{}",
        placed()
    );
    // The worker's identity, as an attacker who copied it would hold it.
    let stolen = tls_of(&w1.daemon.data_dir());
    let worker_id = m1
        .cli(&["node", "inspect", "w1", "--format", "{{.ID}}"])
        .ok()
        .trim()
        .to_string();
    // A log stream the attacker opened while the node was still a member
    // (to inject lines into a `service logs -f`) is ended by the removal.
    let (log_tx, log_rx) = tokio::sync::mpsc::channel::<swarmkeep_api::dispatcher::PublishLogsMessage>(1);
    let mut publisher = DispatcherClient::new(stolen.channel(&m1.addr).unwrap());
    let open_stream = tokio::spawn(async move {
        publisher
            .publish_logs(tokio_stream::wrappers::ReceiverStream::new(log_rx))
            .await
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!open_stream.is_finished(), "the member's log stream was refused");
    m1.cli(&["node", "rm", "--force", "w1"]).ok();
    let ended = tokio::time::timeout(Duration::from_secs(10), open_stream)
        .await
        .expect("the removed node's log stream stayed open")
        .unwrap()
        .unwrap_err();
    assert_eq!(ended.code(), tonic::Code::PermissionDenied, "{ended:?}");
    drop(log_tx);

    let key = SessionKey::generate();
    let mut dispatcher = DispatcherClient::new(stolen.channel(&m1.addr).unwrap());
    let fetch = dispatcher
        .fetch_secret(FetchSecretRequest {
            id: secret_id.clone(),
            public_key: key.public().to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(fetch.code(), tonic::Code::PermissionDenied, "{fetch:?}");
    assert_eq!(fetch.message(), format!("node {worker_id} was removed from this swarm"));
    let session = dispatcher
        .session(SessionRequest {
            public_key: key.public().to_vec(),
        })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(session.code(), tonic::Code::PermissionDenied, "{session:?}");

    let mut cluster = ClusterClient::new(stolen.channel(&m1.addr).unwrap());
    let heartbeat = cluster.heartbeat(HeartbeatRequest {}).await.unwrap_err();
    assert_eq!(heartbeat.code(), tonic::Code::PermissionDenied, "{heartbeat:?}");
    let keys = cluster.manager_keys(ManagerKeysRequest {}).await.unwrap_err();
    assert_eq!(keys.code(), tonic::Code::PermissionDenied, "{keys:?}");
    // Nor can it get a fresh certificate.
    let renew = swarmkeep_api::cluster::node_ca_client::NodeCaClient::new(stolen.channel(&m1.addr).unwrap())
        .renew_node_certificate(swarmkeep_api::cluster::RenewNodeCertificateRequest { csr_pem: String::new() })
        .await
        .unwrap_err();
    assert_eq!(renew.code(), tonic::Code::PermissionDenied, "{renew:?}");

    // Raft: a vote for a far-future term and entries removing the secret. The
    // refusal comes before the message is even decoded.
    let mut raft = RaftClient::new(stolen.channel(&m1.addr).unwrap());
    let vote = br#"{"vote":{"leader_id":{"term":100,"voted_for":7},"committed":false},"last_log_id":null}"#;
    let refused = raft.vote(RaftMessage { payload: vote.to_vec() }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let refused = raft.pre_vote(RaftMessage { payload: vote.to_vec() }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let remove = format!(r#"{{"RemoveSecret":{{"id":"{secret_id}"}}}}"#);
    let entries = format!(
        r#"{{"vote":{{"leader_id":{{"term":100,"voted_for":7}},"committed":true}},"prev_log_id":null,"entries":[{{"log_id":{{"leader_id":{{"term":100,"node_id":7}},"index":999}},"payload":{{"Normal":{remove}}}}}],"leader_commit":null}}"#
    );
    let refused = raft
        .append_entries(RaftMessage {
            payload: entries.into_bytes(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    // Nothing of it took: the secret is there, m1 still leads, and the removed
    // node's task was orphaned and replaced on m1.
    assert_eq!(m1.cli(&["secret", "ls", "--format", "{{.Name}}"]).ok(), "db\n");
    assert_eq!(
        m1.cli(&["node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}"])
            .ok(),
        "m1 Leader\n"
    );
    assert!(
        eventually(Duration::from_secs(20), || {
            m1.cli(&["service", "ls", "--format", "{{.Replicas}}"]).stdout == "2/2\n"
                && !placed().contains("w1|Running")
        }),
        "{}",
        placed()
    );
}

/// Streams outlive the check made when they opened: a manager's append
/// stream and leader stream, opened while it was one, are refused at their
/// next message once the manager has been demoted and removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_managers_open_streams_are_refused_at_their_next_message() {
    use std::time::Duration;
    use swarmkeep_tests::eventually;

    let nodes = tokio::task::spawn_blocking(|| swarm(2, 0)).await.unwrap();
    let (m1, m2) = (&nodes[0], &nodes[1]);
    // m2's identity as it is now, a manager's.
    let stolen = tls_of(&m2.daemon.data_dir());
    let mut raft = RaftClient::new(stolen.channel(&m1.addr).unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel::<RaftStreamMessage>(4);
    let mut answers = raft
        .append_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("a manager opens an append stream")
        .into_inner();
    // An append of a long-past term: answered (the leader's vote is higher),
    // with the request's seq.
    let stale = br#"{"vote":{"leader_id":{"term":0,"node_id":999},"committed":true},"prev_log_id":null,"entries":[],"leader_commit":null}"#;
    tx.send(RaftStreamMessage {
        seq: 41,
        payload: stale.to_vec(),
    })
    .await
    .unwrap();
    let answer = answers.message().await.expect("answered").expect("an answer");
    assert_eq!(answer.seq, 41);
    assert!(
        String::from_utf8_lossy(&answer.payload).contains("HigherVote"),
        "{}",
        String::from_utf8_lossy(&answer.payload)
    );
    // Its leader stream: a read index is answered, a write would be.
    let (calls, rx) = tokio::sync::mpsc::channel::<LeaderCall>(4);
    let mut leader_answers = ClusterClient::new(stolen.channel(&m1.addr).unwrap())
        .leader_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("a manager opens a leader stream")
        .into_inner();
    calls
        .send(LeaderCall {
            seq: 5,
            call: Some(leader_call::Call::ReadIndex(ReadIndexRequest {})),
        })
        .await
        .unwrap();
    let answer = leader_answers.message().await.unwrap().unwrap();
    assert_eq!(answer.seq, 5);
    assert!(
        matches!(answer.answer, Some(leader_answer::Answer::ReadIndex(ref r)) if r.index > 0),
        "{answer:?}"
    );

    m1.cli(&["node", "demote", "m2"]).ok();
    // Removable once it has also left the raft group.
    assert!(eventually(Duration::from_secs(20), || {
        m1.cli(&["node", "rm", "--force", "m2"]).code == 0
    }));
    tx.send(RaftStreamMessage {
        seq: 42,
        payload: stale.to_vec(),
    })
    .await
    .unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(10), answers.message())
        .await
        .expect("the removed manager's stream got no answer")
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    // A write removing a secret, on the leader stream: refused, not applied.
    m1.daemon
        .cli_stdin(&["secret", "create", "kept", "-"], Some(b"leader-stream-marker"))
        .ok();
    let secret_id = m1
        .cli(&["secret", "inspect", "kept", "--format", "{{.ID}}"])
        .ok()
        .trim()
        .to_string();
    calls
        .send(LeaderCall {
            seq: 6,
            call: Some(leader_call::Call::Propose(ProposeRequest {
                command: format!(r#"{{"RemoveSecret":{{"id":"{secret_id}"}}}}"#).into_bytes(),
            })),
        })
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), leader_answers.message())
        .await
        .expect("the removed manager's write got no answer")
        .unwrap()
        .unwrap();
    assert_eq!(answer.seq, 6);
    match answer.answer {
        Some(leader_answer::Answer::Refused(r)) => {
            assert_eq!(r.code, tonic::Code::PermissionDenied as i32, "{r:?}");
        }
        other => panic!("the removed manager's write was not refused: {other:?}"),
    }
    assert_eq!(m1.cli(&["secret", "ls", "--format", "{{.Name}}"]).ok(), "kept\n");
}

/// The audit's memory attack, replayed: four concurrent 100 MB raft messages
/// from a peer with no client certificate. The door refuses each before its
/// body is read, and the daemon's memory stays where it was; the node CA,
/// which such a peer may call, takes no more than a join needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_a_certificate_cannot_make_the_daemon_hold_memory() {
    use swarmkeep_api::cluster::IssueNodeCertificateRequest;
    use swarmkeep_api::cluster::node_ca_client::NodeCaClient;
    use swarmkeep_tests::Daemon;

    let d = tokio::task::spawn_blocking(|| {
        let d = Daemon::start();
        d.init();
        d
    })
    .await
    .unwrap();
    let addr = d
        .cli(&["node", "inspect", "self", "--format", "{{.ManagerStatus.Addr}}"])
        .ok()
        .trim()
        .to_string();
    let ca_pem = tls_of(&d.data_dir()).ca_pem;
    let pid = d.pid().unwrap();
    // The peak, not only the current size: memory taken and given back
    // during the attack counts too.
    let before = memory_kib(pid, "VmHWM:");

    let huge = vec![b'x'; 100 * 1024 * 1024];
    let mut calls = Vec::new();
    for _ in 0..4 {
        let mut raft = RaftClient::new(pinned_channel(&addr, &ca_pem).unwrap()).max_encoding_message_size(usize::MAX);
        let payload = huge.clone();
        calls.push(tokio::spawn(async move {
            raft.append_entries(RaftMessage { payload }).await.map(|_| ())
        }));
    }
    for call in calls {
        let refused = call.await.unwrap().unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    }
    // Renewing a certificate needs one.
    let refused = NodeCaClient::new(pinned_channel(&addr, &ca_pem).unwrap())
        .renew_node_certificate(swarmkeep_api::cluster::RenewNodeCertificateRequest { csr_pem: String::new() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    // The cluster calls other than the node CA are closed to it too.
    let mut cluster = ClusterClient::new(pinned_channel(&addr, &ca_pem).unwrap());
    let refused = cluster.heartbeat(HeartbeatRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    // The node CA answers anyone, but only for a join-sized request.
    let mut ca = NodeCaClient::new(pinned_channel(&addr, &ca_pem).unwrap()).max_encoding_message_size(usize::MAX);
    let refused = ca
        .issue_node_certificate(IssueNodeCertificateRequest {
            token: "SWMTKN-1-x".into(),
            csr_pem: "x".repeat(8 * 1024 * 1024),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::OutOfRange, "{refused:?}");

    let after = memory_kib(pid, "VmHWM:");
    assert!(
        after < before + 64 * 1024,
        "the daemon's peak grew from {before} KiB to {after} KiB"
    );
}

/// A joiner holding a valid token cannot have every peer send its overlay
/// traffic to a multicast group or the broadcast address (its data-path
/// address): the node CA refuses the request before issuing anything, and no
/// node is added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_cannot_aim_its_peers_overlay_traffic_at_a_group() {
    use swarmkeep_api::cluster::IssueNodeCertificateRequest;
    use swarmkeep_api::cluster::node_ca_client::NodeCaClient;
    use swarmkeep_tests::Daemon;

    let d = tokio::task::spawn_blocking(|| {
        let d = Daemon::start();
        d.init();
        d
    })
    .await
    .unwrap();
    let addr = d
        .cli(&["node", "inspect", "self", "--format", "{{.ManagerStatus.Addr}}"])
        .ok()
        .trim()
        .to_string();
    let token = d.cli(&["swarm", "join-token", "-q", "worker"]).ok().trim().to_string();
    let ca_pem = tls_of(&d.data_dir()).ca_pem;
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let join = |data_path_addr: &str| {
        let request = IssueNodeCertificateRequest {
            token: token.clone(),
            csr_pem: csr.clone(),
            hostname: "joiner".into(),
            advertise_addr: "10.9.8.7:2377".into(),
            data_path_addr: data_path_addr.into(),
            ..Default::default()
        };
        let channel = pinned_channel(&addr, &ca_pem).unwrap();
        async move { NodeCaClient::new(channel).issue_node_certificate(request).await }
    };
    for bad in [
        "224.0.0.1",
        "239.255.0.7",
        "255.255.255.255",
        "0.0.0.0",
        "eth0",
        "fd00::1",
    ] {
        let refused = join(bad).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{bad}: {refused:?}");
    }
    let nodes = d.cli(&["node", "ls", "-q"]).ok().to_string();
    assert_eq!(nodes.lines().count(), 1, "{nodes}");
    // The same request with a unicast address joins.
    join("10.9.8.7").await.unwrap();
    let nodes = d.cli(&["node", "ls", "-q"]).ok().to_string();
    assert_eq!(nodes.lines().count(), 2, "{nodes}");
}

/// Whether a client dialing a manager (as every node does: raft, joins,
/// heartbeats, the dispatcher) would accept `cert_pem` as the server: the
/// same rustls check, for the name `swarm-manager`, against the cluster CA.
fn serves_as_manager(ca_pem: &str, cert_pem: &str) -> bool {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        std::sync::Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    verifier
        .verify_server_cert(
            &cert,
            &[],
            &ServerName::try_from("swarm-manager").unwrap(),
            &[],
            UnixTime::now(),
        )
        .is_ok()
}

/// A worker's certificate cannot serve as a manager's (the audit's
/// finding: every certificate named `swarm-manager`); promotion and demotion
/// give the node a certificate for its new role.
#[test]
fn certificates_carry_the_nodes_role() {
    use std::time::Duration;

    use swarmkeep_tests::eventually;

    let nodes = swarm(1, 1);
    let (m1, w1) = (&nodes[0], &nodes[1]);
    let ca = tls_of(&m1.daemon.data_dir()).ca_pem;
    let cert_of = |n: &swarmkeep_tests::SwarmNode| {
        NodeTls::load(&n.daemon.data_dir().join("tls"))
            .map(|t| t.cert_pem)
            .unwrap_or_default()
    };
    assert!(serves_as_manager(&ca, &cert_of(m1)));
    assert!(
        !serves_as_manager(&ca, &cert_of(w1)),
        "a worker's certificate passed as a manager's"
    );

    m1.cli(&["node", "promote", "w1"]).ok();
    assert!(
        eventually(Duration::from_secs(30), || serves_as_manager(&ca, &cert_of(w1))),
        "the promoted node has no manager certificate"
    );
    assert!(eventually(Duration::from_secs(30), || {
        m1.cli(&["node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}"])
            .stdout
            .contains("w1 Reachable")
    }));
    m1.cli(&["node", "demote", "w1"]).ok();
    assert!(
        eventually(Duration::from_secs(30), || !cert_of(w1).is_empty()
            && !serves_as_manager(&ca, &cert_of(w1))),
        "the demoted node kept a manager certificate"
    );
    // Still a working worker: it heartbeats and is Ready.
    assert!(eventually(Duration::from_secs(15), || {
        m1.cli(&["node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.ManagerStatus}}"])
            .stdout
            .contains("w1 Ready \n")
    }));
}

/// Every node renews its certificate before it expires, with no one asking:
/// with 30 s certificates, after 80 s each of three nodes (two managers, a
/// worker) has had at least two new ones, each for its role, and the swarm
/// still works — heartbeats (a new connection with each new certificate), raft between the
/// managers, a write forwarded from a follower.
#[test]
fn certificates_renew_themselves_before_they_expire() {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use swarmkeep_tests::{eventually, node_rows, swarm_node_with_env};
    use swarmkeep_transport::tls::CertInfo;

    let env = [("SWARMKEEP_TEST_MIN_CERT_EXPIRY_SECS", "1")];
    let m1 = swarm_node_with_env(0, "m1", "info", &env);
    m1.cli(&[
        "swarm",
        "init",
        "--advertise-addr",
        &m1.addr,
        "--listen-addr",
        &m1.addr,
        "--dispatcher-heartbeat",
        "500ms",
        "--cert-expiry",
        "30s",
    ])
    .ok();
    let mut nodes = vec![m1];
    for (i, (name, role)) in [("m2", "manager"), ("w1", "worker")].into_iter().enumerate() {
        let token = nodes[0]
            .cli(&["swarm", "join-token", "-q", role])
            .ok()
            .trim()
            .to_string();
        let n = swarm_node_with_env(i + 1, name, "info", &env);
        let remote = nodes[0].addr.clone();
        n.cli(&[
            "swarm",
            "join",
            "--token",
            &token,
            "--advertise-addr",
            &n.addr,
            "--listen-addr",
            &n.addr,
            &remote,
        ])
        .ok();
        nodes.push(n);
    }
    let cert_of = |n: &swarmkeep_tests::SwarmNode| {
        NodeTls::load(&n.daemon.data_dir().join("tls"))
            .map(|t| t.cert_pem)
            .unwrap_or_default()
    };
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(80) {
        for n in &nodes {
            let cert = cert_of(n);
            let certs = seen.entry(n.name.clone()).or_default();
            if !cert.is_empty() && !certs.contains(&cert) {
                certs.push(cert);
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    for n in &nodes {
        let certs = &seen[&n.name];
        assert!(certs.len() >= 3, "{}: {} certificates in 80 s", n.name, certs.len());
        let info = CertInfo::from_pem(certs.last().unwrap()).unwrap();
        let role = if n.name.starts_with('m') {
            "swarm-manager"
        } else {
            "swarm-worker"
        };
        assert_eq!(info.role_name.as_deref(), Some(role), "{}", n.name);
        assert!(info.not_after > std::time::SystemTime::now(), "{}: expired", n.name);
        let life = info.not_after.duration_since(info.issued_at()).unwrap();
        assert!(life <= Duration::from_secs(31), "{}: issued for {life:?}", n.name);
    }
    // Still one working swarm.
    let m2 = &nodes[1];
    assert!(
        eventually(Duration::from_secs(10), || node_rows(m2).iter().all(|r| r.1 == "Ready")
            && node_rows(m2).len() == 3),
        "{:?}",
        node_rows(m2)
    );
    m2.daemon
        .cli_stdin(&["secret", "create", "after-renewals", "-"], Some(b"v"))
        .ok();
    let listed = nodes[0].cli(&["secret", "ls", "--format", "{{.Name}}"]);
    assert!(listed.ok().contains("after-renewals"));
}

/// `swarm ca --rotate` (CAConfig.ForceRotate) gives every node a new key
/// and certificate from the same root, once: the leader, a follower manager
/// and a worker that was down when it was ordered (it renews when it is back).
/// Afterwards the swarm works, and nobody renews again.
#[test]
fn a_forced_rotation_renews_every_nodes_certificate_once() {
    use std::time::Duration;

    use swarmkeep_tests::{eventually, node_rows};

    let mut nodes = swarm(2, 1);
    let tls = |n: &swarmkeep_tests::SwarmNode| tls_of(&n.daemon.data_dir());
    let before: Vec<NodeTls> = nodes.iter().map(tls).collect();
    nodes[2].daemon.stop();
    let out = nodes[0].cli(&["swarm", "ca", "--rotate"]);
    // The root stays, and is what the command prints.
    assert_eq!(out.ok().trim(), before[0].ca_pem.trim());
    let inspect = nodes[1].cli(&["swarm", "inspect", "--format", "{{json .Spec.CAConfig}}"]);
    assert!(inspect.ok().contains("\"ForceRotate\":1"), "{}", inspect.stdout);
    nodes[2].daemon.restart();
    for (n, old) in nodes.iter().zip(&before) {
        assert!(
            eventually(Duration::from_secs(20), || tls(n).cert_pem != old.cert_pem),
            "{} kept its certificate",
            n.name
        );
        let new = tls(n);
        assert_ne!(new.key_pem, old.key_pem, "{}: same key", n.name);
        assert_eq!(new.ca_pem, old.ca_pem, "{}: another root", n.name);
        assert!(
            serves_as_manager(&new.ca_pem, &new.cert_pem) == n.name.starts_with('m'),
            "{}",
            n.name
        );
    }
    let rotated: Vec<String> = nodes.iter().map(|n| tls(n).cert_pem).collect();
    // Every node shows the root that issued its certificate, as Docker's do.
    let shown = nodes[1].cli(&[
        "node",
        "inspect",
        "w1",
        "--format",
        "{{.Description.TLSInfo.TrustRoot}}",
    ]);
    assert_eq!(shown.ok().trim(), before[0].ca_pem.trim());
    // Still one swarm: every node heartbeats (new connections, new
    // certificates) and a follower's write reaches the leader.
    assert!(
        eventually(Duration::from_secs(10), || {
            let rows = node_rows(&nodes[1]);
            rows.len() == 3 && rows.iter().all(|r| r.1 == "Ready")
        }),
        "{:?}",
        node_rows(&nodes[1])
    );
    nodes[1]
        .daemon
        .cli_stdin(&["secret", "create", "after-rotation", "-"], Some(b"v"))
        .ok();
    assert!(nodes[0].cli(&["secret", "ls"]).ok().contains("after-rotation"));
    // Once: several heartbeats later, the same certificates.
    std::thread::sleep(Duration::from_secs(3));
    let now: Vec<String> = nodes.iter().map(|n| tls(n).cert_pem).collect();
    assert_eq!(now, rotated, "a node renewed again");
    for n in &nodes {
        assert_eq!(
            n.daemon
                .log()
                .matches("the swarm rotated its node certificates")
                .count(),
            1,
            "{}",
            n.name
        );
    }
}

/// A demoted manager's old certificate (still unexpired, still naming
/// `swarm-manager`) cannot pass as a manager to a worker: the worker accepts
/// as managers only the nodes the managers list (kept across its restarts).
/// Replayed: the leader is stopped, the worker restarted, and an impostor
/// serving the old certificate takes the leader's address; the worker dials
/// it and aborts every handshake.
#[test]
fn a_demoted_managers_old_certificate_cannot_pass_as_a_manager() {
    use std::time::{Duration, Instant};

    use swarmkeep_tests::eventually;

    let mut nodes = swarm(2, 1);
    let m2_old = tls_of(&nodes[1].daemon.data_dir());
    assert_eq!(
        swarmkeep_transport::tls::CertInfo::from_pem(&m2_old.cert_pem)
            .unwrap()
            .role_name
            .as_deref(),
        Some("swarm-manager")
    );
    nodes[0].cli(&["node", "demote", "m2"]).ok();
    // The worker has heard who the managers are now (a few heartbeats).
    assert!(eventually(Duration::from_secs(30), || {
        nodes[0]
            .cli(&["node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}"])
            .stdout
            .contains("m2 \n")
    }));
    std::thread::sleep(Duration::from_secs(3));
    // The demotion left the swarm writable: the leader still reached the
    // demoted node to take it out of the raft group.
    let wrote = nodes[0]
        .daemon
        .cli_stdin(&["secret", "create", "after-demotion", "-"], Some(b"v"));
    assert_eq!(wrote.code, 0, "{wrote:?}");
    let addr = nodes[0].addr.clone();
    nodes[0].daemon.kill9();
    // The worker restarts: it knows the managers from its disk, not only
    // from memory.
    nodes[2].daemon.restart();

    // The impostor: m2's old manager certificate and key, on m1's address.
    let listener = std::net::TcpListener::bind(&addr).expect("m1's address is free");
    listener.set_nonblocking(true).unwrap();
    let config = {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(m2_old.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(m2_old.key_pem.expose()).unwrap();
        let mut c =
            rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap();
        c.alpn_protocols = vec![b"h2".to_vec()];
        std::sync::Arc::new(c)
    };
    let (mut attempts, mut completed) = (0, 0);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let Ok((tcp, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        attempts += 1;
        tcp.set_nonblocking(false).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut conn = rustls::ServerConnection::new(config.clone()).unwrap();
        let mut tcp = tcp;
        let mut ok = true;
        while conn.is_handshaking() {
            if conn.complete_io(&mut tcp).is_err() {
                ok = false;
                break;
            }
        }
        // A client that accepted the certificate sends its first HTTP/2
        // bytes; one that refused it has sent an alert and closed.
        if ok {
            let mut buf = [0u8; 64];
            use std::io::Read;
            if rustls::Stream::new(&mut conn, &mut tcp)
                .read(&mut buf)
                .is_ok_and(|n| n > 0)
            {
                completed += 1;
            }
        }
    }
    assert!(attempts > 0, "the worker never dialed the leader's address");
    assert_eq!(
        completed, 0,
        "the worker took a demoted manager's certificate ({attempts} attempts)"
    );
}

/// Peers without a certificate cannot take the cluster port's connection
/// slots from the members: at most 256 such connections are held at once,
/// each for at most 30 s, while the members' own connections (heartbeats,
/// a new one each) carry on.
#[test]
fn peers_without_a_certificate_cannot_hold_the_cluster_port() {
    use std::io::Read;
    use std::time::{Duration, Instant};

    use swarmkeep_tests::{eventually, node_rows};

    let nodes = swarm(1, 1);
    let m1 = &nodes[0];
    let ca = tls_of(&m1.daemon.data_dir()).ca_pem;
    let config = {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
            .unwrap();
        let mut c =
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        c.alpn_protocols = vec![b"h2".to_vec()];
        std::sync::Arc::new(c)
    };
    // 300 anonymous TLS connections, handshakes finished, then silence.
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut tcp = std::net::TcpStream::connect(&m1.addr).unwrap();
        let name = rustls::pki_types::ServerName::try_from("swarm-manager").unwrap();
        let mut conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).unwrap();
        }
        tcp.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        held.push((conn, tcp));
    }
    let open = |held: &mut Vec<(rustls::ClientConnection, std::net::TcpStream)>| {
        held.iter_mut()
            .map(|(conn, tcp)| {
                let mut buf = [0u8; 256];
                let mut s = rustls::Stream::new(conn, tcp);
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => return false,
                        Ok(_) => continue,
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut =>
                        {
                            return true;
                        }
                        Err(_) => return false,
                    }
                }
            })
            .filter(|open| *open)
            .count()
    };
    let start = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), || open(&mut held) <= 256),
        "more than 256 anonymous connections held"
    );
    // The members are not shut out meanwhile.
    assert!(eventually(Duration::from_secs(10), || {
        node_rows(m1).iter().all(|r| r.1 == "Ready") && node_rows(m1).len() == 2
    }));
    // And the anonymous ones are gone after their 30 s.
    assert!(
        eventually(Duration::from_secs(45), || open(&mut held) == 0),
        "anonymous connections outlived their lifetime"
    );
    assert!(
        start.elapsed() >= Duration::from_secs(25),
        "closed before their lifetime"
    );
}
