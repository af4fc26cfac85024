//! User namespace remapping (`swarmkeepd --userns-remap`), as dockerd's: a
//! task's users are a subordinate range of the host's (`/etc/subuid`,
//! `/etc/subgid`), so a task's root is an unprivileged user on the node.
//!
//! The task's namespaces other than its user namespace stay the node's
//! (the shim, still the host's root, builds the task's root and mounts in
//! them); the image's layers are seen through idmapped mounts, the task's
//! upper directory and the files the agent makes for it belong to the
//! remapped root, and the command (and every `exec`) joins the user
//! namespace last, as the remapped user.

use std::os::fd::{FromRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

/// `count` IDs from `inside` (in the task) are `outside` on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remap {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

/// dockerd's name for the user it makes for `--userns-remap default`.
const DEFAULT_USER: &str = "dockremap";

impl Remap {
    /// dockerd's `--userns-remap` value: `default`, `user`, `user:group`,
    /// `uid` or `uid:gid`, whose subordinate ranges are read from
    /// `/etc/subuid` and `/etc/subgid`. `default` makes the `dockremap`
    /// user and its ranges where missing, as dockerd does.
    pub fn from_flag(value: &str) -> Result<Self, String> {
        let (user, group) = match value.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (value, None),
        };
        if user.is_empty() || group.is_some_and(str::is_empty) {
            return Err(format!("invalid --userns-remap value {value:?}"));
        }
        let user = if user == "default" {
            ensure_default_user()?;
            DEFAULT_USER.to_string()
        } else {
            user_name(user)?
        };
        let group = match group {
            Some(g) => group_name(g)?,
            None => user.clone(),
        };
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let uids = ranges(&read("/etc/subuid"), &user);
        let gids = ranges(&read("/etc/subgid"), &group);
        if uids.is_empty() {
            return Err(format!(
                "Can't create ID mappings: No subuid ranges found for user {user:?}"
            ));
        }
        if gids.is_empty() {
            return Err(format!(
                "Can't create ID mappings: No subgid ranges found for group {group:?}"
            ));
        }
        Ok(Self {
            uids: id_map(uids),
            gids: id_map(gids),
        })
    }

    /// The host UID of the task's `uid` (None: outside the ranges).
    pub fn uid(&self, uid: u32) -> Option<u32> {
        to_host(&self.uids, uid)
    }

    pub fn gid(&self, gid: u32) -> Option<u32> {
        to_host(&self.gids, gid)
    }

    /// The host UID and GID of the task's root.
    pub fn root(&self) -> (u32, u32) {
        (self.uid(0).unwrap_or(0), self.gid(0).unwrap_or(0))
    }

    /// Makes the user namespace (in the shim, before its other
    /// namespaces): a helper child unshares it, this process (the host's
    /// root) writes its ID maps and keeps it by an fd.
    pub fn create(&self) -> Result<OwnedFd, String> {
        let (ready_r, ready_w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
        let (go_r, go_w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
        // SAFETY: the shim is single-threaded; the child only makes
        // syscalls and exits.
        match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
            nix::unistd::ForkResult::Child => {
                drop(ready_r);
                drop(go_w);
                let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_ok();
                let _ = nix::unistd::write(&ready_w, &[u8::from(ok)]);
                let mut b = [0u8; 1];
                let _ = nix::unistd::read(&go_r, &mut b);
                // SAFETY: _exit in a forked child runs nothing of the parent's.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(ready_w);
                drop(go_r);
                let result = (|| {
                    let mut b = [0u8; 1];
                    if nix::unistd::read(&ready_r, &mut b) != Ok(1) || b[0] != 1 {
                        return Err("creating the task's user namespace".to_string());
                    }
                    for (file, map) in [("uid_map", &self.uids), ("gid_map", &self.gids)] {
                        std::fs::write(format!("/proc/{child}/{file}"), map_text(map))
                            .map_err(|e| format!("writing the task's {file}: {e}"))?;
                    }
                    let path = std::ffi::CString::new(format!("/proc/{child}/ns/user")).map_err(|e| e.to_string())?;
                    // SAFETY: a NUL-terminated path; the fd is owned below.
                    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                    if fd < 0 {
                        return Err(format!(
                            "opening the task's user namespace: {}",
                            std::io::Error::last_os_error()
                        ));
                    }
                    // SAFETY: open returned a new fd.
                    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
                })();
                drop(go_w);
                let _ = nix::sys::wait::waitpid(child, None);
                result
            }
        }
    }
}

/// Joins the task's user namespace (the last namespace joined: from here on
/// this process has no privilege over the host's) and becomes its root at
/// once, as runc's nsexec: until then it would be the host's root, to be
/// ptraced by a task process with CAP_SYS_PTRACE there (an attack review did
/// that to an `exec`); changing its IDs also makes it undumpable until exec.
pub fn enter(userns: &OwnedFd) -> Result<(), String> {
    fn fail(what: &'static str) -> impl Fn(nix::errno::Errno) -> String {
        move |e| format!("joining the task's user namespace ({what}): {e}")
    }
    nix::sched::setns(userns, nix::sched::CloneFlags::CLONE_NEWUSER).map_err(fail("setns"))?;
    nix::unistd::setgroups(&[]).map_err(fail("setgroups"))?;
    let root_gid = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid).map_err(fail("setresgid"))?;
    let root = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresuid(root, root, root).map_err(fail("setresuid"))
}

fn to_host(map: &[IdRange], id: u32) -> Option<u32> {
    map.iter()
        .find(|r| id >= r.inside && id - r.inside < r.count)
        .map(|r| r.outside + (id - r.inside))
}

/// `/proc/<pid>/uid_map`'s lines.
fn map_text(map: &[IdRange]) -> String {
    map.iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

/// The (start, count) ranges `/etc/subuid`-style `text` gives `name`.
fn ranges(text: &str, name: &str) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            (who == name).then_some((start.parse().ok()?, count.parse().ok()?))
        })
        .filter(|(_, count)| *count > 0)
        .collect()
}

/// The task's IDs, contiguous from 0, over the host's ranges in order of
/// their start (dockerd's `createIDMap`).
fn id_map(mut ranges: Vec<(u32, u32)>) -> Vec<IdRange> {
    ranges.sort();
    let mut inside = 0u32;
    let mut out = Vec::new();
    for (outside, count) in ranges {
        let Some(end) = inside.checked_add(count) else { break };
        out.push(IdRange { inside, outside, count });
        inside = end;
    }
    out
}

/// A user given by name or UID, as its name.
fn user_name(user: &str) -> Result<String, String> {
    let found = match user.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(user),
    };
    match found {
        Ok(Some(u)) => Ok(u.name),
        _ => Err(format!("Can't create ID mappings: user {user:?} not found")),
    }
}

fn group_name(group: &str) -> Result<String, String> {
    let found = match group.parse::<u32>() {
        Ok(gid) => nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)),
        Err(_) => nix::unistd::Group::from_name(group),
    };
    match found {
        Ok(Some(g)) => Ok(g.name),
        _ => Err(format!("Can't create ID mappings: group {group:?} not found")),
    }
}

/// dockerd's `--userns-remap default`: the `dockremap` user (a system user
/// without a shell) and 65536 subordinate IDs from the first free range at
/// or above 100000, made with the system's useradd and usermod.
fn ensure_default_user() -> Result<(), String> {
    let run = |cmd: &str, args: &[&str]| -> Result<(), String> {
        let out = std::process::Command::new(cmd)
            .args(args)
            .output()
            .map_err(|e| format!("Can't create ID mappings: running {cmd}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "Can't create ID mappings: {cmd} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    if !matches!(nix::unistd::User::from_name(DEFAULT_USER), Ok(Some(_))) {
        run("useradd", &["-r", "-s", "/bin/false", DEFAULT_USER])?;
    }
    for (file, flag) in [("/etc/subuid", "--add-subuids"), ("/etc/subgid", "--add-subgids")] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if ranges(&text, DEFAULT_USER).is_empty() {
            let start = next_free(&text);
            let range = format!("{start}-{}", start + 65535);
            run("usermod", &[flag, &range, DEFAULT_USER])?;
        }
    }
    Ok(())
}

/// The first start at or above 100000 past every range of the file.
fn next_free(text: &str) -> u32 {
    text.lines()
        .filter_map(|line| {
            let mut f = line.trim().split(':').skip(1);
            let start: u32 = f.next()?.parse().ok()?;
            let count: u32 = f.next()?.parse().ok()?;
            start.checked_add(count)
        })
        .fold(100_000, u32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_per_name_and_made_contiguous() {
        let text = "other:100000:65536\nswk:300000:10\nswk:200000:65536\nbad line\nswk:5:0\n";
        let r = ranges(text, "swk");
        assert_eq!(r, [(300000, 10), (200000, 65536)]);
        let map = id_map(r);
        assert_eq!(
            map,
            [
                IdRange {
                    inside: 0,
                    outside: 200000,
                    count: 65536
                },
                IdRange {
                    inside: 65536,
                    outside: 300000,
                    count: 10
                },
            ]
        );
        let remap = Remap {
            uids: map.clone(),
            gids: map,
        };
        assert_eq!(remap.uid(0), Some(200000));
        assert_eq!(remap.uid(65535), Some(265535));
        assert_eq!(remap.uid(65536), Some(300000));
        assert_eq!(remap.uid(65546), None);
        assert_eq!(remap.root(), (200000, 200000));
        assert_eq!(map_text(&remap.uids), "0 200000 65536\n65536 300000 10\n");
        assert_eq!(next_free(text), 300010);
        assert_eq!(next_free(""), 100000);
    }
}
