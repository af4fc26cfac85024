//! Task output, kept in the agent's memory only (a task may print anything,
//! its secrets included, so nothing of it is written to disk): the last
//! [`MAX_BYTES`] of each task, while the task is assigned to this node and
//! for the last [`KEEP_FINISHED`] tasks that left it (a crashed task's output
//! is what `service logs` is for), and a live feed for `--follow`.

mod publish;

pub(crate) use publish::log_subscriptions;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::broadcast;

/// What one task's output may hold in memory (each line counted with
/// [`LINE_OVERHEAD`]); older lines go first.
pub const MAX_BYTES: usize = 1024 * 1024;
/// What a kept line costs besides its bytes.
const LINE_OVERHEAD: usize = 64;
/// Tasks no longer assigned here whose output is still kept.
pub const KEEP_FINISHED: usize = 64;
/// A longer line is cut into pieces of this size.
const MAX_LINE: usize = 16 * 1024;

#[derive(Clone, Debug)]
pub struct Line {
    pub stream: u32,
    pub timestamp_ns: i64,
    pub data: Vec<u8>,
}

struct Buffer {
    lines: VecDeque<Line>,
    bytes: usize,
}

pub struct TaskLogs {
    buffer: Mutex<Buffer>,
    feed: broadcast::Sender<Line>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TaskLogs {
    fn new() -> Self {
        Self {
            buffer: Mutex::new(Buffer {
                lines: VecDeque::new(),
                bytes: 0,
            }),
            feed: broadcast::channel(256).0,
        }
    }

    fn push(&self, line: Line) {
        let mut b = lock(&self.buffer);
        b.bytes += line.data.len() + LINE_OVERHEAD;
        if self.feed.receiver_count() > 0 {
            let _ = self.feed.send(line.clone());
        }
        b.lines.push_back(line);
        while b.bytes > MAX_BYTES {
            match b.lines.pop_front() {
                Some(old) => b.bytes -= old.data.len() + LINE_OVERHEAD,
                None => break,
            }
        }
    }

    /// The lines kept (from `since_ns`, the last `tail` of them) and, taken
    /// under the same lock so no line falls between, the live feed.
    pub fn snapshot(&self, tail: Option<u64>, since_ns: i64) -> (Vec<Line>, broadcast::Receiver<Line>) {
        let b = lock(&self.buffer);
        let mut lines: Vec<Line> = b.lines.iter().filter(|l| l.timestamp_ns >= since_ns).cloned().collect();
        if let Some(tail) = tail {
            let keep = usize::try_from(tail).unwrap_or(usize::MAX).min(lines.len());
            lines.drain(..lines.len() - keep);
        }
        (lines, self.feed.subscribe())
    }
}

#[derive(Default)]
pub struct LogStore {
    tasks: Mutex<HashMap<String, Arc<TaskLogs>>>,
    /// Tasks that left this node, oldest first: their output is kept a while.
    finished: Mutex<VecDeque<String>>,
}

fn now_ns() -> i64 {
    let t = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(t).unwrap_or(i64::MAX)
}

impl LogStore {
    pub fn get(&self, task_id: &str) -> Option<Arc<TaskLogs>> {
        lock(&self.tasks).get(task_id).cloned()
    }

    /// The task's output, made empty if the task has printed nothing yet (a
    /// follower may arrive before the task starts).
    pub fn get_or_create(&self, task_id: &str) -> Arc<TaskLogs> {
        lock(&self.tasks)
            .entry(task_id.to_string())
            .or_insert_with(|| Arc::new(TaskLogs::new()))
            .clone()
    }

    /// Reads a task's stdout (stream 1) and stderr (stream 2) line by line
    /// until they close.
    pub fn capture(
        &self,
        task_id: &str,
        stdout: Option<impl AsyncRead + Unpin + Send + 'static>,
        stderr: Option<impl AsyncRead + Unpin + Send + 'static>,
    ) {
        let logs = self.get_or_create(task_id);
        if let Some(out) = stdout {
            tokio::spawn(read_lines(logs.clone(), out, 1));
        }
        if let Some(err) = stderr {
            tokio::spawn(read_lines(logs, err, 2));
        }
    }

    /// Tasks no longer assigned to this node: their output is kept for the
    /// last [`KEEP_FINISHED`] of them, then forgotten.
    pub fn retain(&self, assigned: impl Fn(&str) -> bool) {
        let mut tasks = lock(&self.tasks);
        let mut finished = lock(&self.finished);
        for id in tasks.keys() {
            if !assigned(id) && !finished.contains(id) {
                finished.push_back(id.clone());
            }
        }
        // A task assigned again (or not yet seen) is not finished.
        finished.retain(|id| !assigned(id) && tasks.contains_key(id));
        while finished.len() > KEEP_FINISHED {
            if let Some(old) = finished.pop_front() {
                tasks.remove(&old);
            }
        }
    }
}

async fn read_lines(logs: Arc<TaskLogs>, reader: impl AsyncRead + Unpin, stream: u32) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader).take(MAX_LINE as u64).read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => logs.push(Line {
                stream,
                timestamp_ns: now_ns(),
                data: std::mem::take(&mut buf),
            }),
        }
    }
}

use tokio::io::AsyncReadExt as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_kept_tailed_and_fed() {
        let store = LogStore::default();
        let (mut w, r) = tokio::io::duplex(64);
        store.capture("t", Some(r), None::<tokio::io::DuplexStream>);
        use tokio::io::AsyncWriteExt;
        w.write_all(b"one\ntwo\nthree\n").await.unwrap();
        let logs = store.get("t").unwrap();
        for _ in 0..100 {
            if logs.snapshot(None, 0).0.len() == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let (all, mut feed) = logs.snapshot(None, 0);
        assert_eq!(
            all.iter().map(|l| l.data.as_slice()).collect::<Vec<_>>(),
            [b"one\n".as_slice(), b"two\n", b"three\n"]
        );
        let (last, _) = logs.snapshot(Some(1), 0);
        assert_eq!(last[0].data, b"three\n");
        w.write_all(b"four\n").await.unwrap();
        let next = feed.recv().await.unwrap();
        assert_eq!((next.stream, next.data.as_slice()), (1, b"four\n".as_slice()));
        // Kept a while after the task left the node, then forgotten.
        store.retain(|_| false);
        assert!(store.get("t").is_some());
        for i in 0..KEEP_FINISHED {
            store.get_or_create(&format!("other{i}"));
            store.retain(|_| false);
        }
        assert!(store.get("t").is_none());
        assert!(store.get(&format!("other{}", KEEP_FINISHED - 1)).is_some());
    }

    #[test]
    fn old_lines_go_first_past_the_cap() {
        let logs = TaskLogs::new();
        for i in 0..3 {
            logs.push(Line {
                stream: 1,
                timestamp_ns: i,
                data: vec![b'x'; MAX_BYTES / 2 - LINE_OVERHEAD],
            });
        }
        let (lines, _) = logs.snapshot(None, 0);
        assert_eq!(lines.iter().map(|l| l.timestamp_ns).collect::<Vec<_>>(), [1, 2]);
    }
}
