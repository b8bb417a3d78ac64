//! Page-aligned I/O buffers for `O_DIRECT`, recycled through a small bounded pool.
//!
//! The data path reads a request straight into one [`AlignedBuf`] and hands that buffer to the
//! frontend (as `Bytes::from_owner`), so a read costs one copy into user space (the `pread`)
//! instead of three, and no per-request zeroed allocation: buffers of the common sizes
//! (4 KiB to 1 MiB, powers of two) go back to the pool when dropped.
//!
//! Recycled buffers hold old bytes (always initialised memory, never uninitialised): every
//! user overwrites the whole visible length before handing the data on.

use std::alloc::{self, Layout};
use std::io;
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Alignment of offsets, lengths and buffers for `O_DIRECT` I/O.
pub const DIRECT_IO_ALIGN_BYTES: usize = 4096;

/// Smallest pooled capacity (one alignment unit).
const POOL_MIN_BYTES: usize = DIRECT_IO_ALIGN_BYTES;
/// Size classes: `POOL_MIN_BYTES << k` for `k` in `0..POOL_CLASSES` (4 KiB .. 1 MiB).
const POOL_CLASSES: usize = 9;
/// Idle bytes one class may keep (at least [`POOL_MIN_BUFFERS_PER_CLASS`] buffers).
const POOL_IDLE_BYTES_PER_CLASS: usize = 2 << 20;
/// Idle buffers every class may keep whatever their size (1 MiB reads at QD4).
const POOL_MIN_BUFFERS_PER_CLASS: usize = 4;

/// One idle allocation of the pool: a pointer from `alloc_zeroed` with [`raw_layout`]`(cap)`.
struct RawBuf {
    ptr: NonNull<u8>,
}

// SAFETY: a RawBuf is an exclusively owned heap allocation (like Box<[u8]>); nothing else
// points into it while it sits in the pool.
unsafe impl Send for RawBuf {}

/// Idle buffers per size class (the pool is process-wide: every volume and file shares it).
static POOL: [Mutex<Vec<RawBuf>>; POOL_CLASSES] = [const { Mutex::new(Vec::new()) }; POOL_CLASSES];

/// The idle list of one class. A panic while it was held cannot leave it inconsistent (a
/// push or a pop of a Vec), so a poisoned lock is used as it is.
fn pool(class: usize) -> MutexGuard<'static, Vec<RawBuf>> {
    POOL[class].lock().unwrap_or_else(PoisonError::into_inner)
}

fn raw_layout(cap: usize) -> io::Result<Layout> {
    Layout::from_size_align(cap, DIRECT_IO_ALIGN_BYTES)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// The pool class for a capacity, if it is one of the pooled sizes.
fn class_of(cap: usize) -> Option<usize> {
    if cap < POOL_MIN_BYTES || !cap.is_power_of_two() {
        return None;
    }
    let k = (cap / POOL_MIN_BYTES).trailing_zeros() as usize;
    (k < POOL_CLASSES).then_some(k)
}

fn class_limit(class: usize) -> usize {
    let cap = POOL_MIN_BYTES << class;
    (POOL_IDLE_BYTES_PER_CLASS / cap).max(POOL_MIN_BUFFERS_PER_CLASS)
}

/// A buffer aligned to [`DIRECT_IO_ALIGN_BYTES`] whose capacity is a multiple of it; the
/// visible length may be smaller. Always fully initialised.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively (like Vec<u8>), so moving it between
// threads or sharing &AlignedBuf is as safe as for Vec<u8>.
unsafe impl Send for AlignedBuf {}
// SAFETY: see above; &AlignedBuf only gives shared access to plain bytes.
unsafe impl Sync for AlignedBuf {}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("cap", &self.cap)
            .finish()
    }
}

impl AlignedBuf {
    /// A buffer of `len` visible bytes with unspecified (but initialised) contents: from the
    /// pool when `len` fits a pooled size, else freshly allocated and zeroed.
    pub fn new(len: usize) -> io::Result<Self> {
        let pooled_cap = len.max(POOL_MIN_BYTES).checked_next_power_of_two();
        if let Some(class) = pooled_cap.and_then(class_of) {
            let cap = POOL_MIN_BYTES << class;
            let idle = pool(class).pop();
            if let Some(raw) = idle {
                return Ok(Self {
                    ptr: raw.ptr,
                    len,
                    cap,
                });
            }
            return Self::alloc(len, cap);
        }
        let cap = len
            .max(1)
            .checked_next_multiple_of(DIRECT_IO_ALIGN_BYTES)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "buffer too large"))?;
        Self::alloc(len, cap)
    }

    /// A buffer of `len` zero bytes.
    pub fn zeroed(len: usize) -> io::Result<Self> {
        let mut b = Self::new(len)?;
        b.as_mut_slice().fill(0);
        Ok(b)
    }

    fn alloc(len: usize, cap: usize) -> io::Result<Self> {
        let layout = raw_layout(cap)?;
        // SAFETY: cap >= DIRECT_IO_ALIGN_BYTES > 0, so the layout has a nonzero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw)
            .ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "aligned buffer"))?;
        Ok(Self { ptr, len, cap })
    }

    /// Capacity in bytes: the most the visible length can be set to.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Sets the visible length (contents kept; bytes newly visible hold old data, always
    /// initialised). An error if `len` is over the capacity.
    pub fn set_len(&mut self, len: usize) -> io::Result<()> {
        if len > self.cap {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("length {len} over the buffer's capacity {}", self.cap),
            ));
        }
        self.len = len;
        Ok(())
    }

    /// Visible length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the visible length is zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The visible bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr points to an initialised allocation of cap >= len bytes owned by self,
        // alive as long as &self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The visible bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in as_slice, and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if let Some(class) = class_of(self.cap) {
            let mut idle = pool(class);
            if idle.len() < class_limit(class) {
                idle.push(RawBuf { ptr: self.ptr });
                return;
            }
        }
        if let Ok(layout) = raw_layout(self.cap) {
            // SAFETY: ptr was allocated by alloc_zeroed with raw_layout(cap) (pooled buffers
            // keep the capacity of their class) and is not in the pool.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_sized_and_recycled() {
        for len in [0usize, 1, 512, 4096, 4097, 65536, 1 << 20, (1 << 20) + 512] {
            let mut b = AlignedBuf::new(len).expect("alloc");
            assert_eq!(b.len(), len);
            assert_eq!(b.ptr.as_ptr() as usize % DIRECT_IO_ALIGN_BYTES, 0);
            assert!(b.cap >= len && b.cap % DIRECT_IO_ALIGN_BYTES == 0);
            b.as_mut_slice().fill(0xa5);
            drop(b);
            let z = AlignedBuf::zeroed(len).expect("alloc");
            assert!(z.as_slice().iter().all(|&x| x == 0), "zeroed after reuse");
        }
        assert_eq!(class_of(4096), Some(0));
        assert_eq!(class_of(1 << 20), Some(8));
        assert_eq!(class_of(2 << 20), None);
        assert_eq!(class_of(12288), None);
        let mut b = AlignedBuf::zeroed(4096).expect("alloc");
        b.set_len(100).expect("shorter");
        assert_eq!(b.len(), 100);
        b.set_len(4096).expect("back to the capacity");
        assert!(b.set_len(b.capacity() + 1).is_err());
    }
}
