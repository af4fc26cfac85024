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

/// Reads through, hashing what it read: the layer's diff ID (the digest of
/// its uncompressed tar).
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpacks `blob` (of `media_type`) into `dst`, which must not exist yet;
/// returns the layer's diff ID (`sha256:…`).
pub fn unpack_layer(blob: &Path, media_type: &str, dst: &Path) -> Result<String, ImageError> {
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
                let cause = std::error::Error::source(&e)
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
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
