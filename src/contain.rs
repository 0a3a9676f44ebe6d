//! Containment of user code that panics where nobody can be told: in the `Drop` of a closure
//! the runtime abandons, of an output nobody joined, of a panic payload. The panic hook has
//! already reported such a panic when it is caught here; what matters is that the thread
//! running the runtime's code (often a worker) goes on, its token comes home and every handle
//! resolves.
//!
//! Not under loom: loom reports what it finds by panicking, and a model must fail wherever the
//! panic comes from.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Drops `value`, containing a panic of its `Drop` (and of the panic's payload's `Drop`).
#[inline]
pub(crate) fn drop_contained<T>(value: T) {
    if cfg!(loom) {
        drop(value);
        return;
    }
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
        forget_payload(payload);
    }
}

/// Drops the value at `place` in place, catching a panic of its `Drop` (not under loom) and
/// returning it: the caller decides whether to contain it or pass it on. Either way the value
/// is gone (the drop glue drops the remaining fields while unwinding), so the caller must
/// overwrite or forget `place` without dropping it again.
///
/// # Safety
///
/// As [`std::ptr::drop_in_place`]: `place` holds a live value that nobody else touches, and it
/// is not dropped again.
#[inline]
pub(crate) unsafe fn drop_in_place_caught<T: ?Sized>(place: *mut T) -> std::thread::Result<()> {
    if cfg!(loom) {
        // SAFETY: forwarded from the caller.
        unsafe { std::ptr::drop_in_place(place) };
        return Ok(());
    }
    // SAFETY: forwarded from the caller.
    catch_unwind(AssertUnwindSafe(|| unsafe {
        std::ptr::drop_in_place(place)
    }))
}

/// Drops a caught panic's payload; a payload whose own `Drop` panics is caught once more and
/// then leaked rather than dropped again (an endless chain of such payloads is leaked whole).
#[cold]
pub(crate) fn forget_payload(payload: Box<dyn std::any::Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}
