//! One layer (a tar stream, gzip-compressed or not) unpacked into a
//! directory of its own, ready to be an overlay lower directory: OCI
//! whiteouts become overlay whiteouts (a 0/0 character device for a removed
//! entry, `trusted.overlay.opaque=y` on a directory whose lower contents are
//! hidden); device nodes and FIFOs are made with mknod; ownership, modes,
//! hard links and file xattrs are kept. Nothing is ever written outside the
//! directory: an entry that would climb out (`..`, or through a symlink) is
//! refused and the layer with it.

use std::ffi::CString;
use std::io::{BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::ImageError;

/// The most one layer may unpack to (its uncompressed tar stream).
pub const MAX_UNPACKED_BYTES: u64 = 64 << 30;
/// What an unpack leaves free on the store's filesystem, at least: the
/// node's raft log and keys live there too.
const KEEP_FREE_BYTES: u64 = 1 << 30;
/// How often (bytes of tar stream) the free space is looked at.
const SPACE_CHECK_EVERY: u64 = 64 << 20;

/// Reads through, hashing what it read: the layer's diff ID (the digest of
/// its uncompressed tar). It stops a decompression bomb: no more than
/// `left` bytes, and never below [`KEEP_FREE_BYTES`] free where `dst` is.
struct Hashing<'a, R> {
    inner: R,
    hash: Sha256,
    limit: u64,
    left: u64,
    since_check: u64,
    dst: &'a Path,
}

/// (available, total) bytes of the filesystem `path` is on.
fn space(path: &Path) -> Option<(u64, u64)> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct for a NUL-terminated path.
    let mut fs: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut fs) } != 0 {
        return None;
    }
    let unit = fs.f_frsize;
    Some((fs.f_bavail.saturating_mul(unit), fs.f_blocks.saturating_mul(unit)))
}

/// Whether `available` bytes are enough to go on, keeping
/// [`KEEP_FREE_BYTES`] (or a twentieth of a small filesystem) free.
fn enough_space(available: u64, total: u64) -> bool {
    available >= KEEP_FREE_BYTES.min(total / 20)
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let counted = u64::try_from(n).unwrap_or(u64::MAX);
        if counted > self.left {
            return Err(std::io::Error::other(format!(
                "the layer unpacks to more than {} bytes",
                self.limit
            )));
        }
        self.left -= counted;
        self.since_check += counted;
        if self.since_check >= SPACE_CHECK_EVERY {
            self.since_check = 0;
            if let Some((available, total)) = space(self.dst)
                && !enough_space(available, total)
            {
                return Err(std::io::Error::other(
                    "not enough disk space left for this layer (the node's own state needs it)",
                ));
            }
        }
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpacks `blob` (of `media_type`) into `dst`, which must not exist yet;
/// returns the layer's diff ID (`sha256:…`).
pub fn unpack_layer(blob: &Path, media_type: &str, dst: &Path) -> Result<String, ImageError> {
    unpack_layer_within(blob, media_type, dst, MAX_UNPACKED_BYTES)
}

/// [`unpack_layer`], unpacking at most `limit` bytes of tar stream.
pub fn unpack_layer_within(blob: &Path, media_type: &str, dst: &Path, limit: u64) -> Result<String, ImageError> {
    let file = BufReader::new(std::fs::File::open(blob).map_err(|e| ImageError::io("reading a layer", e))?);
    let tar: Box<dyn Read> = if media_type.ends_with("gzip") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else if media_type.ends_with(".tar") || media_type.ends_with("tar.layer") {
        Box::new(file)
    } else {
        return Err(ImageError::Unsupported(format!("layer media type {media_type}")));
    };
    let mut hashing = Hashing {
        inner: tar,
        hash: Sha256::new(),
        limit,
        left: limit,
        since_check: 0,
        dst: dst.parent().unwrap_or(dst),
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        // A task's `/` is 0755 unless the layer says otherwise.
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(dst)
            .map_err(|e| ImageError::io("creating a layer directory", e))?;
        std::fs::set_permissions(dst, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| ImageError::io("creating a layer directory", e))?;
    }
    {
        let mut archive = tar::Archive::new(&mut hashing);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_unpack_xattrs(true);
        archive.set_overwrite(true);
        let entries = archive.entries().map_err(|e| ImageError::io("reading a layer", e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| ImageError::io("reading a layer", e))?;
            let rel = relative(&entry.path().map_err(|e| ImageError::io("reading a layer", e))?)?;
            let Some(name) = rel.file_name().map(|n| n.to_os_string()) else {
                continue; // the layer's root itself
            };
            let name = name.to_string_lossy().into_owned();
            if name == ".wh..wh..opq" {
                let dir = safe_parent(dst, &rel)?;
                set_xattr(&dir, "trusted.overlay.opaque", b"y")?;
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                let dir = safe_parent(dst, &rel)?;
                make_node(&dir.join(hidden), libc::S_IFCHR, 0)?;
                continue;
            }
            let header = entry.header();
            let kind = match header.entry_type() {
                tar::EntryType::Char => Some(libc::S_IFCHR),
                tar::EntryType::Block => Some(libc::S_IFBLK),
                tar::EntryType::Fifo => Some(libc::S_IFIFO),
                _ => None,
            };
            if let Some(kind) = kind {
                let dir = safe_parent(dst, &rel)?;
                let mode = header.mode().unwrap_or(0o644) & 0o7777;
                let dev = libc::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                let path = dir.join(&name);
                make_node(&path, kind | mode, dev)?;
                let (uid, gid) = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
                let _ = std::os::unix::fs::lchown(&path, u32::try_from(uid).ok(), u32::try_from(gid).ok());
                continue;
            }
            safe_parent(dst, &rel)?;
            let unpacked = entry.unpack_in(dst).map_err(|e| {
                // Every cause (a bound the stream hit is the innermost).
                let mut cause = String::new();
                let mut source = std::error::Error::source(&e);
                while let Some(c) = source {
                    cause.push_str(&format!(": {c}"));
                    source = c.source();
                }
                ImageError::InvalidLayer(format!("{}: {e}{cause}", rel.display()))
            })?;
            if !unpacked {
                return Err(ImageError::InvalidLayer(format!(
                    "{} is outside the layer",
                    rel.display()
                )));
            }
        }
    }
    // The rest of the stream (tar padding) counts towards the digest.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| ImageError::io("reading a layer", e))?;
    Ok(crate::hex_digest(&hashing.hash.finalize()))
}

/// An entry's path inside the layer: leading `/` and `./` dropped, `..`
/// refused.
fn relative(path: &Path) -> Result<PathBuf, ImageError> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(ImageError::InvalidLayer(format!(
                    "{} climbs out of the layer",
                    path.display()
                )));
            }
        }
    }
    Ok(out)
}

/// The directory an entry goes in, made (0755) where missing, never through
/// a symlink.
fn safe_parent(dst: &Path, rel: &Path) -> Result<PathBuf, ImageError> {
    let mut dir = dst.to_path_buf();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            dir.push(c);
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(ImageError::InvalidLayer(format!(
                        "{} passes through a symlink",
                        rel.display()
                    )));
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(ImageError::InvalidLayer(format!("{} is under a file", rel.display()))),
                Err(_) => {
                    use std::os::unix::fs::DirBuilderExt;
                    std::fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&dir)
                        .map_err(|e| ImageError::io("creating a layer directory", e))?;
                }
            }
        }
    }
    Ok(dir)
}

fn c_path(path: &Path) -> Result<CString, ImageError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| ImageError::InvalidLayer("a path holds a NUL".into()))
}

fn make_node(path: &Path, mode: libc::mode_t, dev: libc::dev_t) -> Result<(), ImageError> {
    let _ = std::fs::remove_file(path);
    let c = c_path(path)?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::mknod(c.as_ptr(), mode, dev) } != 0 {
        return Err(ImageError::io("making a device node", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<(), ImageError> {
    let c = c_path(path)?;
    let name = CString::new(name).map_err(|_| ImageError::InvalidLayer("xattr name".into()))?;
    // SAFETY: valid NUL-terminated strings and a buffer of `value.len()` bytes.
    let rc = unsafe { libc::lsetxattr(c.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc != 0 {
        return Err(ImageError::io("setting an xattr", std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn layer(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(if *kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_uid(0);
            h.set_gid(0);
            match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    h.set_size(0);
                    b.append_link(&mut h, path, std::str::from_utf8(data).unwrap()).unwrap();
                }
                _ if path.contains("..") => {
                    // The builder refuses such names; an attacker's layer has them.
                    h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
                    h.set_size(data.len() as u64);
                    h.set_cksum();
                    b.append(&h, *data).unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, *data).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn unpack(bytes: &[u8]) -> (tempfile::TempDir, Result<String, ImageError>) {
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("blob");
        std::fs::write(&blob, bytes).unwrap();
        let out = unpack_layer(&blob, "application/vnd.oci.image.layer.v1.tar", &dir.path().join("l"));
        (dir, out)
    }

    #[test]
    fn a_layer_that_unpacks_to_more_than_its_bound_is_refused() {
        let big = vec![0u8; 64 * 1024];
        let bytes = layer(&[("zeros", tar::EntryType::Regular, &big)]);
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("blob");
        std::fs::write(&blob, &bytes).unwrap();
        let media = "application/vnd.oci.image.layer.v1.tar";
        let out = unpack_layer_within(&blob, media, &dir.path().join("small"), 16 * 1024);
        let e = out.unwrap_err().to_string();
        assert!(e.contains("unpacks to more than"), "{e}");
        assert!(unpack_layer_within(&blob, media, &dir.path().join("fits"), 1 << 20).is_ok());
        assert!(space(dir.path()).is_some_and(|(a, t)| a <= t && t > 0));
        assert!(enough_space(2 << 30, 100 << 30));
        assert!(!enough_space(512 << 20, 100 << 30), "below 1 GiB free on a large disk");
        assert!(enough_space(60 << 20, 1 << 30), "a twentieth of a small one");
        assert!(!enough_space(40 << 20, 1 << 30));
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts_and_the_diff_id_is_the_tars_digest() {
        let bytes = layer(&[
            ("etc/", tar::EntryType::Directory, b""),
            ("etc/motd", tar::EntryType::Regular, b"hi"),
            ("etc/.wh.passwd", tar::EntryType::Regular, b""),
            ("var/.wh..wh..opq", tar::EntryType::Regular, b""),
            ("bin/sh", tar::EntryType::Symlink, b"busybox"),
            ("etc/motd2", tar::EntryType::Link, b"etc/motd"),
        ]);
        let (dir, out) = unpack(&bytes);
        assert_eq!(out.unwrap(), crate::sha256_digest(&bytes));
        let l = dir.path().join("l");
        assert_eq!(std::fs::read(l.join("etc/motd")).unwrap(), b"hi");
        let wh = std::fs::symlink_metadata(l.join("etc/passwd")).unwrap();
        assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
        assert!(!l.join("etc/.wh.passwd").exists());
        let mut buf = [0u8; 4];
        let c = c_path(&l.join("var")).unwrap();
        let name = CString::new("trusted.overlay.opaque").unwrap();
        let n = unsafe { libc::lgetxattr(c.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(&buf[..usize::try_from(n).unwrap()], b"y");
        assert_eq!(std::fs::read_link(l.join("bin/sh")).unwrap(), Path::new("busybox"));
        assert_eq!(
            std::fs::metadata(l.join("etc/motd2")).unwrap().ino(),
            std::fs::metadata(l.join("etc/motd")).unwrap().ino()
        );
    }

    #[test]
    fn entries_that_climb_out_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().to_str().unwrap().as_bytes().to_vec();
        for bytes in [
            layer(&[("../escape", tar::EntryType::Regular, b"x")]),
            // A symlink to a host directory, then a file and a whiteout through it.
            layer(&[
                ("out", tar::EntryType::Symlink, &target),
                ("out/planted", tar::EntryType::Regular, b"x"),
            ]),
            layer(&[
                ("out", tar::EntryType::Symlink, &target),
                ("out/.wh.planted", tar::EntryType::Regular, b""),
            ]),
        ] {
            let (_dir, out) = unpack(&bytes);
            assert!(out.is_err(), "unpacked");
        }
        assert_eq!(
            std::fs::read_dir(outside.path()).unwrap().count(),
            0,
            "wrote outside the layer"
        );
    }
}
