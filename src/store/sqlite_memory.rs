//! How the embedded SQLite takes memory, set once for the process before its first connection.
//!
//! - No allocation statistics: SQLite counts them by default under one process-wide mutex
//!   taken on every allocation and free; with a worker thread per pooled connection it was the
//!   most contended lock of a search. Nothing here reads those counts.
//! - The process's allocator, mimalloc, in place of the C library's malloc: SQLite allocates
//!   for every row it reads or writes, and glibc's malloc, with its arena locks and
//!   consolidation, took several percent of a search and of the audit writer.

use std::ffi::{c_int, c_void};

use libsqlite3_sys::sqlite3_mem_methods;
use libsqlite3_sys::{SQLITE_CONFIG_MALLOC, SQLITE_CONFIG_MEMSTATUS, sqlite3_config};

// mimalloc's size queries, part of its C API (the `libmimalloc-sys` crate declares them only
// behind a feature that needs another crate).
#[allow(unsafe_code)]
unsafe extern "C" {
    fn mi_usable_size(p: *const c_void) -> usize;
    fn mi_good_size(size: usize) -> usize;
}

/// Applies both settings, once; every other caller waits until they are applied.
#[allow(unsafe_code)]
pub(super) fn configure_sqlite_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let methods = sqlite3_mem_methods {
            xMalloc: Some(sqlite_malloc),
            xFree: Some(sqlite_free),
            xRealloc: Some(sqlite_realloc),
            xSize: Some(sqlite_size),
            xRoundup: Some(sqlite_roundup),
            xInit: Some(sqlite_init),
            xShutdown: Some(sqlite_shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: sqlite3_config must come before SQLite initialises and while no other thread
        // uses it: every connection of the service is opened by `Store::connect`, after this
        // call (which the Once makes every other caller wait for). Called after initialisation
        // anyway (a test that opened SQLite first), it returns SQLITE_MISUSE and changes
        // nothing, which is harmless. SQLITE_CONFIG_MEMSTATUS takes one int, as passed;
        // SQLITE_CONFIG_MALLOC takes a pointer to the methods, which SQLite copies before it
        // returns. The methods honour SQLite's contract (see each).
        unsafe {
            let _ = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, c_int::from(0_u8));
            let _ = sqlite3_config(SQLITE_CONFIG_MALLOC, &raw const methods);
        }
    });
}

/// At least `size` bytes, aligned for any type (mimalloc aligns to 16; SQLite needs 8).
#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_malloc(size: c_int) -> *mut c_void {
    match usize::try_from(size) {
        // SAFETY: mi_malloc takes any size and returns null when it cannot allocate, which
        // SQLite reports as SQLITE_NOMEM.
        Ok(size) => unsafe { libmimalloc_sys::mi_malloc(size) },
        Err(_) => std::ptr::null_mut(),
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_free(p: *mut c_void) {
    // SAFETY: SQLite frees only what these methods allocated (or null, which mi_free ignores).
    unsafe { libmimalloc_sys::mi_free(p) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_realloc(p: *mut c_void, size: c_int) -> *mut c_void {
    match usize::try_from(size) {
        // SAFETY: `p` came from these methods; on failure mi_realloc returns null and leaves
        // `p` allocated, as SQLite expects.
        Ok(size) => unsafe { libmimalloc_sys::mi_realloc(p, size) },
        Err(_) => std::ptr::null_mut(),
    }
}

/// The usable size of an allocation: at least what was asked.
#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_size(p: *mut c_void) -> c_int {
    // SAFETY: SQLite asks only about allocations these methods made.
    let size = unsafe { mi_usable_size(p) };
    c_int::try_from(size).unwrap_or(c_int::MAX)
}

/// What an allocation of `size` will really hold, so that SQLite can use all of it.
#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_roundup(size: c_int) -> c_int {
    match usize::try_from(size) {
        // SAFETY: a pure function of its argument.
        Ok(n) => c_int::try_from(unsafe { mi_good_size(n) }).unwrap_or(size),
        Err(_) => size,
    }
}

extern "C" fn sqlite_init(_: *mut c_void) -> c_int {
    libsqlite3_sys::SQLITE_OK
}

extern "C" fn sqlite_shutdown(_: *mut c_void) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn sqlite_gets_what_it_asks_for_from_mimalloc() {
        // SAFETY: the methods are called as SQLite would: sizes from roundup, pointers freed
        // once.
        unsafe {
            let asked = sqlite_roundup(100);
            assert!(asked >= 100);
            let p = sqlite_malloc(asked);
            assert!(!p.is_null());
            assert_eq!(p as usize % 8, 0);
            assert!(sqlite_size(p) >= asked);
            std::ptr::write_bytes(p.cast::<u8>(), 7, asked as usize);
            let q = sqlite_realloc(p, 10_000);
            assert!(!q.is_null());
            assert!(sqlite_size(q) >= 10_000);
            assert_eq!(*q.cast::<u8>().add(99), 7);
            sqlite_free(q);
            assert!(sqlite_malloc(-1).is_null());
        }
    }
}
