//! Who a task's command runs as, resolved inside the task's root (its
//! image's `/etc/passwd` and `/etc/group`) with runc's rules, as Docker:
//! `name|uid[:group|gid]`; a name must be in passwd; a uid not in it gets
//! gid 0 and home `/`; without an explicit group, the user's groups in
//! `/etc/group` are its supplementary groups; `--group` adds more (names
//! looked up, numbers taken as they are).

#[derive(Debug, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 6 || line.starts_with('#') {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 3 || line.starts_with('#') {
            return None;
        }
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f
                .get(3)
                .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default(),
        })
    })
}

/// Resolves `user` (and the service's extra `groups`) against the image's
/// `passwd` and `group` files (empty when the image has none).
pub fn resolve(user: &str, extra_groups: &[String], passwd: &str, group: &str) -> Result<ExecUser, String> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let mut out = ExecUser {
        uid: 0,
        gid: 0,
        groups: Vec::new(),
        home: "/".into(),
    };
    let mut matched_name = None;
    if !user_part.is_empty() {
        let numeric = user_part.parse::<u32>().ok();
        let entry = passwd_entries(passwd).find(|e| match numeric {
            Some(uid) => e.uid == uid,
            None => e.name == user_part,
        });
        match (entry, numeric) {
            (Some(e), _) => {
                out.uid = e.uid;
                out.gid = e.gid;
                out.home = if e.home.is_empty() { "/".into() } else { e.home.into() };
                matched_name = Some(e.name);
            }
            (None, Some(uid)) => out.uid = uid,
            (None, None) => {
                return Err(format!(
                    "unable to find user {user_part}: no matching entries in passwd file"
                ));
            }
        }
    } else if let Some(e) = passwd_entries(passwd).find(|e| e.uid == 0) {
        out.home = if e.home.is_empty() { "/".into() } else { e.home.into() };
        matched_name = Some(e.name);
    }
    match group_part {
        Some(g) if !g.is_empty() => {
            out.gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => group_entries(group)
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| format!("unable to find group {g}: no matching entries in group file"))?,
            };
        }
        _ => {
            if let Some(name) = matched_name {
                out.groups.extend(
                    group_entries(group)
                        .filter(|e| e.members.contains(&name))
                        .map(|e| e.gid),
                );
            }
        }
    }
    for g in extra_groups {
        let gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entries(group)
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| format!("Unable to find group {g}"))?,
        };
        out.groups.push(gid);
    }
    out.groups.sort_unstable();
    out.groups.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\nwww:x:33:33::/var/www:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root,www\nwww-data:x:33:\nnogroup:x:65534:\naudio:x:29:www\n";

    #[test]
    fn users_resolve_as_runc_does() {
        let root = resolve("", &[], PASSWD, GROUP).unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        assert_eq!(root.groups, [10]);
        let www = resolve("www", &[], PASSWD, GROUP).unwrap();
        assert_eq!((www.uid, www.gid, www.groups.clone()), (33, 33, vec![10, 29]));
        assert_eq!(www.home, "/var/www");
        let numeric = resolve("1000", &[], PASSWD, GROUP).unwrap();
        assert_eq!((numeric.uid, numeric.gid, numeric.home.as_str()), (1000, 0, "/"));
        let with_group = resolve("www:nogroup", &[], PASSWD, GROUP).unwrap();
        assert_eq!((with_group.gid, with_group.groups.len()), (65534, 0));
        let extra = resolve("1000:1000", &["audio".into(), "5".into()], PASSWD, GROUP).unwrap();
        assert_eq!((extra.gid, extra.groups.clone()), (1000, vec![5, 29]));
        assert_eq!(
            resolve("ghost", &[], PASSWD, GROUP).unwrap_err(),
            "unable to find user ghost: no matching entries in passwd file"
        );
        assert_eq!(
            resolve("", &["nosuch".into()], PASSWD, GROUP).unwrap_err(),
            "Unable to find group nosuch"
        );
        assert_eq!(resolve("7", &[], "", "").unwrap().uid, 7);
    }
}
