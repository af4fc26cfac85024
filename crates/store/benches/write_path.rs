//! Where a write's time goes below the API: one sequential append + fdatasync
//! of an entry's size (the floor), then `Store::write` of a secret on a
//! one-member store (proposer, openraft, the WAL's flush thread, apply), one
//! writer at a time and eight at once. Figures are printed, not asserted:
//! compare them within one run.
//!
//!   cargo bench -p swarmkeep-store --bench write_path

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use swarmkeep_store::objects::{Annotations, Meta, Secret};
use swarmkeep_store::raft::network::NoPeers;
use swarmkeep_store::{Command, Store, StoreSettings};
use time::OffsetDateTime;

const N: usize = 3000;

fn secret(i: usize) -> Command {
    let now = OffsetDateTime::now_utc();
    Command::CreateSecret(Secret {
        id: format!("{i:025}"),
        meta: Meta {
            version: 0,
            created_at: now,
            updated_at: now,
        },
        annotations: Annotations {
            name: format!("bench_{i}"),
            labels: BTreeMap::from([("bench".to_string(), "1".to_string())]),
        },
        // A 1 KiB secret sealed: nonce + ciphertext + tag.
        sealed_data: vec![0x5a; 1024 + 24 + 16],
    })
}

fn p50(mut xs: Vec<Duration>) -> f64 {
    xs.sort();
    xs[xs.len() / 2].as_secs_f64() * 1e3
}

fn fsync_floor(dir: &std::path::Path) -> f64 {
    let mut f = std::fs::File::create(dir.join("floor")).expect("floor file");
    let buf = vec![0x5a; 1800];
    let lat = (0..N)
        .map(|_| {
            let t = Instant::now();
            f.write_all(&buf).expect("write");
            f.sync_data().expect("fdatasync");
            t.elapsed()
        })
        .collect();
    p50(lat)
}

fn main() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let floor = fsync_floor(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = Store::open(&dir.path().join("raft"), 1, &StoreSettings::default(), NoPeers)
            .await
            .expect("open");
        store.bootstrap("127.0.0.1:2377").await.expect("bootstrap");
        let mut lat = Vec::with_capacity(N);
        for i in 0..N {
            let t = Instant::now();
            store.write(secret(i)).await.expect("write");
            lat.push(t.elapsed());
        }
        let seq = p50(lat);
        let t = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|w| {
                let s = store.clone();
                tokio::spawn(async move {
                    for i in (N + w..2 * N).step_by(8) {
                        s.write(secret(i)).await.expect("write");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("writer");
        }
        let per_s = N as f64 / t.elapsed().as_secs_f64();
        println!("append+fdatasync p50      {floor:.3} ms");
        println!(
            "Store::write p50, 1 writer {seq:.3} ms  ({:.3} ms above the floor)",
            seq - floor
        );
        println!("Store::write, 8 writers    {per_s:.0} writes/s");
    });
}
