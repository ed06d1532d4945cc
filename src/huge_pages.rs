//! The memory allocator of faultline's binaries: the system's, with large
//! blocks served by huge pages.
//!
//! A check of a large history holds its operations in one vector (168 MB
//! for a million operations). Fresh memory is given page by page as it is
//! first written: 43,000 faults of 4 KiB for that vector, about 80 ms of
//! kernel time on this machine, against 20 ms in 2 MiB pages. So blocks of
//! at least [`HUGE_FROM`] bytes are marked `MADV_HUGEPAGE`, which asks for
//! huge pages where the kernel's transparent huge pages are in `madvise`
//! mode (Debian's default); elsewhere the advice changes nothing. The
//! allocation itself is the system allocator's, unchanged.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks from this size on are given huge pages.
pub const HUGE_FROM: usize = 32 << 20;

/// The size of a huge page (x86-64 and aarch64 with 4 KiB pages).
const HUGE_PAGE: usize = 2 << 20;

/// The system allocator, advising huge pages for large blocks.
pub struct HugePages;

/// Asks for huge pages for the whole huge pages inside the block of
/// `size` bytes at `ptr` (a null `ptr`, a failed allocation, is left).
fn advise(ptr: *mut u8, size: usize) {
    if size < HUGE_FROM || ptr.is_null() {
        return;
    }
    let start = (ptr as usize).next_multiple_of(HUGE_PAGE);
    let end = (ptr as usize + size) / HUGE_PAGE * HUGE_PAGE;
    if end > start {
        // SAFETY: [start, end) lies inside the block just allocated, which
        // this process owns; MADV_HUGEPAGE changes how it is backed, never
        // its contents. A failure (no transparent huge pages) is harmless.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

// SAFETY: every call is passed to `System` with the same arguments; the
// advice only changes how the memory it returns is backed.
unsafe impl GlobalAlloc for HugePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let ptr = unsafe { System.alloc(layout) };
        advise(ptr, layout.size());
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        advise(ptr, layout.size());
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let ptr = unsafe { System.realloc(ptr, layout, new_size) };
        advise(ptr, new_size);
        ptr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Large blocks come back usable, written and read through, grown and
    /// shrunk, with their contents kept (the advice never touches them).
    #[test]
    fn large_blocks_keep_their_contents() {
        let a = HugePages;
        let size = HUGE_FROM + 3 * HUGE_PAGE + 17;
        let layout = Layout::from_size_align(size, 16).expect("layout");
        // SAFETY: a non-zero layout; every pointer is checked and freed
        // with the layout it was allocated with.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            for i in (0..size).step_by(4096) {
                *p.add(i) = (i / 4096) as u8;
            }
            let q = a.realloc(p, layout, 2 * size);
            assert!(!q.is_null());
            for i in (0..size).step_by(4096) {
                assert_eq!(*q.add(i), (i / 4096) as u8);
            }
            let big = Layout::from_size_align(2 * size, 16).expect("layout");
            let r = a.realloc(q, big, 100);
            assert!(!r.is_null());
            assert_eq!(*r, 0);
            a.dealloc(r, Layout::from_size_align(100, 16).expect("layout"));
            let z = a.alloc_zeroed(layout);
            assert!(!z.is_null());
            assert!((0..size).step_by(4096).all(|i| *z.add(i) == 0));
            a.dealloc(z, layout);
        }
    }
}
