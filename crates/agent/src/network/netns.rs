//! Network namespaces the agent makes and works in: a namespace kept alive by
//! a bind mount on a file (as `ip netns add` does), and running netlink work
//! inside a namespace from a thread of its own (a namespace is a thread's
//! property; the agent's runtime threads never change theirs).

use std::future::Future;
use std::os::fd::AsFd;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// An error's text, said of `what`.
pub(super) fn io<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

/// Makes a new network namespace held by a bind mount on `path` (the file
/// is created). Made again if `path` holds one already.
pub fn create(path: &Path) -> Result<(), String> {
    if path.exists() {
        remove(path);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    std::fs::File::create(path).map_err(io(format!("creating {}", path.display())))?;
    let target = path.to_path_buf();
    let made = std::thread::spawn(move || -> Result<(), String> {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(io("making a network namespace"))?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(io(format!("holding the network namespace at {}", target.display())))
    })
    .join()
    .map_err(|_| "making a network namespace panicked".to_string())?;
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// Lets go of the namespace held at `path` (it ends when nothing else
/// holds it: its devices go with it) and removes the file.
pub fn remove(path: &Path) {
    let _ = nix::mount::umount2(path, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(path);
}

/// Runs `work` inside the network namespace `ns` (a file such as
/// `/proc/<pid>/ns/net` or one [`create`] made), on a thread of its own with
/// a runtime of its own, and waits for it without blocking the caller's
/// runtime.
pub async fn run_in<F, Fut, T>(ns: &Path, work: F) -> Result<T, String>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, String>>,
    T: Send + 'static,
{
    let file = std::fs::File::open(ns).map_err(io(format!("opening the network namespace {}", ns.display())))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = (|| {
            nix::sched::setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io("entering a network namespace"))?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(io("runtime"))?;
            rt.block_on(work())
        })();
        let _ = tx.send(result);
    });
    rx.await
        .map_err(|_| "work in a network namespace panicked".to_string())?
}

/// A MAC address of a bridge's own, set when it is made: a Linux bridge
/// whose address was never set takes its lowest port's, and so changes as
/// ports come and go — every neighbour's ARP entry for it goes stale and
/// the tasks behind it lose their gateway until it is learned again.
/// Locally administered, unicast, unique per bridge.
pub fn bridge_mac(name: &str) -> Vec<u8> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let digest = swarmkeep_image::sha256_digest(format!("{name}/{}/{nanos}", std::process::id()).as_bytes());
    let hex = digest.trim_start_matches("sha256:");
    let mut mac: Vec<u8> = (0..6)
        .map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap_or_default())
        .collect();
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

/// A netlink connection in the calling thread's namespace.
pub fn connect() -> Result<rtnetlink::Handle, String> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(io("opening a netlink socket"))?;
    tokio::spawn(connection);
    Ok(handle)
}

/// The index of the link `name`, if there is one.
pub(super) async fn link_index(handle: &rtnetlink::Handle, name: &str) -> Result<Option<u32>, String> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match futures::TryStreamExt::try_next(&mut links).await {
        Ok(link) => Ok(link.map(|l| l.header.index)),
        // ENODEV: no such link.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(format!("looking up link {name}: {e}")),
    }
}

/// Gives link `index` the address `addr/prefix` and brings it up; `what`
/// names it in errors.
pub(super) async fn address_up(
    handle: &rtnetlink::Handle,
    index: u32,
    addr: std::net::Ipv4Addr,
    prefix: u8,
    what: &str,
) -> Result<(), String> {
    handle
        .address()
        .add(index, std::net::IpAddr::V4(addr), prefix)
        .execute()
        .await
        .map_err(io(format!("addressing {what}")))?;
    handle
        .link()
        .set(rtnetlink::LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(io(format!("bringing up {what}")))
}
