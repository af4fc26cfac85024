//! Key bytes on a page of their own, locked in RAM where the memory-lock
//! limit allows (`mlock`: never written to swap), wiped before the page is
//! unlocked and freed. One page per key, so unlocking one never unlocks
//! another.

use std::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use zeroize::Zeroize;

const PAGE: usize = 4096;

/// 32 key bytes, page-aligned, `mlock`ed when the limit allows.
pub(crate) struct LockedKey {
    page: NonNull<[u8; 32]>,
    locked: bool,
}

// The page is owned exclusively, like a Box.
unsafe impl Send for LockedKey {}
unsafe impl Sync for LockedKey {}

fn layout() -> Layout {
    // PAGE is a power of two and 32 <= PAGE: this cannot fail.
    Layout::from_size_align(PAGE, PAGE).unwrap_or_else(|_| unreachable!("a page is a valid layout"))
}

impl LockedKey {
    /// All zeroes, filled in place by the caller (no copy of the key is made
    /// on the way in).
    pub(crate) fn zeroed() -> Self {
        let layout = layout();
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(page) = NonNull::new(raw.cast::<[u8; 32]>()) else {
            handle_alloc_error(layout)
        };
        // SAFETY: `raw` is a live allocation of `layout.size()` bytes.
        let locked = unsafe { libc::mlock(raw.cast(), layout.size()) } == 0;
        Self { page, locked }
    }

    pub(crate) fn from_bytes(bytes: &[u8; 32]) -> Self {
        let mut k = Self::zeroed();
        k.copy_from_slice(bytes);
        k
    }

    /// Whether the page is locked in RAM (the limit allowed it).
    #[cfg(test)]
    pub(crate) fn is_locked(&self) -> bool {
        self.locked
    }
}

impl Deref for LockedKey {
    type Target = [u8; 32];

    fn deref(&self) -> &[u8; 32] {
        // SAFETY: the page is live and initialised (zeroed) while `self` is.
        unsafe { self.page.as_ref() }
    }
}

impl DerefMut for LockedKey {
    fn deref_mut(&mut self) -> &mut [u8; 32] {
        // SAFETY: as in `deref`, and `&mut self` is exclusive.
        unsafe { self.page.as_mut() }
    }
}

impl Clone for LockedKey {
    fn clone(&self) -> Self {
        Self::from_bytes(self)
    }
}

impl Drop for LockedKey {
    fn drop(&mut self) {
        self.deref_mut().zeroize();
        let raw = self.page.as_ptr().cast::<u8>();
        // SAFETY: the page was allocated with `layout()` and is freed once.
        unsafe {
            if self.locked {
                libc::munlock(raw.cast(), PAGE);
            }
            dealloc(raw, layout());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locked_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmLck:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn a_key_sits_on_a_locked_page_of_its_own_while_it_lives() {
        let key = LockedKey::from_bytes(&[7; 32]);
        assert_eq!(*key, [7; 32]);
        assert_eq!(key.as_ptr() as usize % PAGE, 0, "page-aligned");
        // Under the default 64 KiB limit a page is always allowed.
        assert!(key.is_locked(), "mlock refused");
        assert!(locked_kib() >= 4, "VmLck {} kB", locked_kib());
        let copy = key.clone();
        assert_ne!(copy.as_ptr(), key.as_ptr());
        assert_eq!(*copy, *key);
    }
}
