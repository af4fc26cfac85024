//! A real one-member raft store on disk: writes survive a restart, snapshots
//! compact the log and still restore every object.

use std::collections::BTreeMap;

use openraft::async_runtime::WatchReceiver;
use swarmkeep_store::objects::{Annotations, Meta, Secret};
use swarmkeep_store::raft::network::NoPeers;
use swarmkeep_store::{Command, CommandError, ObjectKind, RaftTicks, Store, StoreSettings, WriteError};
use time::OffsetDateTime;

fn secret(id: &str, name: &str) -> Command {
    let now = OffsetDateTime::now_utc();
    Command::CreateSecret(Secret {
        id: id.into(),
        meta: Meta {
            version: 0,
            created_at: now,
            updated_at: now,
        },
        annotations: Annotations {
            name: name.into(),
            labels: BTreeMap::new(),
        },
        sealed_data: vec![7; 40],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_restart_and_snapshots_compact_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let settings = StoreSettings {
        snapshot_interval: Some(50),
        log_entries_for_slow_followers: Some(5),
        ..StoreSettings::default()
    };
    let store = Store::open(dir.path(), 1, &settings, NoPeers).await.unwrap();
    assert!(!store.is_initialized().await);
    store.bootstrap("127.0.0.1:2377").await.unwrap();
    assert!(store.is_initialized().await);

    let mut versions = BTreeMap::new();
    for i in 0..120 {
        let idx = store.write(secret(&format!("id{i}"), &format!("s{i}"))).await.unwrap();
        versions.insert(format!("id{i}"), idx);
    }
    // Concurrent writers share raft entries (group commit) and each still gets its answer.
    let mut handles = Vec::new();
    for i in 120..200 {
        let s = store.clone();
        handles.push(tokio::spawn(async move {
            (i, s.write(secret(&format!("id{i}"), &format!("s{i}"))).await)
        }));
    }
    for h in handles {
        let (i, r) = h.await.unwrap();
        versions.insert(format!("id{i}"), r.unwrap());
    }
    let dup = store.write(secret("other", "S1")).await.unwrap_err();
    assert_eq!(
        dup,
        WriteError::Rejected(CommandError::NameConflict {
            kind: ObjectKind::Secret,
            name: "S1".into()
        })
    );
    assert!(
        dir.path().join("snapshots/snapshot.json").exists(),
        "a snapshot was taken"
    );
    store.shutdown().await;
    drop(store);

    let store = Store::open(dir.path(), 1, &settings, NoPeers).await.unwrap();
    assert!(store.is_initialized().await);
    store.wait_for_leader(std::time::Duration::from_secs(10)).await.unwrap();
    // Re-applying the log after the snapshot happens as the member resumes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.read(|s| s.secrets.len()) < 200 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    store.read(|s| {
        assert_eq!(s.secrets.len(), 200);
        for (id, v) in &versions {
            assert_eq!(s.secrets[id].meta.version, *v, "version of {id}");
        }
    });
    let n = store.read_linearizable(|s| s.secrets.len()).await.unwrap();
    assert_eq!(n, 200);
    store.write(secret("new", "after-restart")).await.unwrap();
    store.shutdown().await;
}

#[tokio::test]
async fn a_raft_log_of_the_old_redb_format_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("log.redb");
    std::fs::write(&old, b"redb\x1a\n\xa9\r\n").unwrap();
    let err = match Store::open(dir.path(), 1, &StoreSettings::default(), NoPeers).await {
        Ok(_) => panic!("a data dir with a redb raft log was opened"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("log.redb") && err.contains("redb format"), "{err}");
    assert_eq!(std::fs::read(&old).unwrap(), b"redb\x1a\n\xa9\r\n");
    assert!(
        !dir.path().join("log").exists(),
        "a new log was started beside the old one"
    );
}

/// With purging left to the caller, `compact(keep)` purges the log up to
/// `keep` entries behind the newest snapshot, and no further.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_keeps_the_asked_entries_behind_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let settings = StoreSettings {
        snapshot_interval: None,
        log_entries_for_slow_followers: None,
        ..StoreSettings::default()
    };
    let store = Store::open(dir.path(), 1, &settings, NoPeers).await.unwrap();
    store.bootstrap("127.0.0.1:2377").await.unwrap();
    for i in 0..60 {
        store.write(secret(&format!("id{i}"), &format!("s{i}"))).await.unwrap();
    }
    let metrics = || store.raft().metrics().borrow_watched().clone();
    store.snapshot_if_due(50).await;
    let snapshot = store
        .raft()
        .wait(Some(std::time::Duration::from_secs(10)))
        .metrics(|m| m.snapshot.is_some(), "a snapshot")
        .await
        .unwrap()
        .snapshot
        .unwrap()
        .index;
    // Nothing is purged until asked.
    assert_eq!(metrics().purged, None);
    store.compact(7).await;
    let purged = store
        .raft()
        .wait(Some(std::time::Duration::from_secs(10)))
        .metrics(|m| m.purged.is_some(), "a purge")
        .await
        .unwrap()
        .purged
        .unwrap()
        .index;
    assert_eq!(purged, snapshot - 7);
    // Asked again, it does not go further.
    store.compact(7).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(metrics().purged.unwrap().index, snapshot - 7);
}

/// A member starts with the ticks saved beside its log: the settings' ticks
/// only for a new member; the cluster's (saved by `save_ticks`) from its next
/// start on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_starts_with_the_raft_ticks_saved_beside_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let slow = RaftTicks {
        election: 20,
        heartbeat: 2,
    };
    let settings = StoreSettings {
        ticks: slow,
        ..StoreSettings::default()
    };
    let store = Store::open(dir.path(), 1, &settings, NoPeers).await.unwrap();
    store.bootstrap("127.0.0.1:2377").await.unwrap();
    assert_eq!(store.ticks(), slow);
    assert_eq!(store.raft().config().heartbeat_interval, 60);
    assert_eq!(store.raft().config().election_timeout_min, 600);
    store.shutdown().await;

    // Restarted with other settings: the saved timing wins.
    let store = Store::open(dir.path(), 1, &StoreSettings::default(), NoPeers)
        .await
        .unwrap();
    assert_eq!(store.ticks(), slow);
    let fast = RaftTicks {
        election: 12,
        heartbeat: 1,
    };
    assert!(store.save_ticks(fast).unwrap());
    assert!(
        !store.save_ticks(fast).unwrap(),
        "saving the same ticks again changes nothing"
    );
    assert_eq!(store.ticks(), slow, "openraft's timing is fixed until the next start");
    assert!(
        store
            .save_ticks(RaftTicks {
                election: 1,
                heartbeat: 1
            })
            .is_err()
    );
    store.shutdown().await;

    let store = Store::open(dir.path(), 1, &settings, NoPeers).await.unwrap();
    assert_eq!(store.ticks(), fast);
    assert_eq!(store.raft().config().heartbeat_interval, 30);
    assert_eq!(store.raft().config().election_timeout_min, 360);
    store.shutdown().await;
}
