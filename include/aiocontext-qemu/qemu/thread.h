/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qemu/thread.h: QemuLockCnt, a mutex fused with a counter of concurrent visits (QEMU
 * 7.2 declares it here). Only the lock counter is provided; use GLib (GThread, GMutex,
 * GCond) for threads and plain locks.
 *
 * Rules: protected data may be freed only while the count is zero and the lock is held;
 * a visit cannot start while the count is zero and the lock is held. Readers do
 * inc ... dec, writers lock ... unlock, the outermost reader reaps with
 * `if (qemu_lockcnt_dec_if_lock(l)) { reap; qemu_lockcnt_inc_and_unlock(l); }`.
 * Every function may be called from any thread; never inc while holding the lock.
 */
#ifndef AIOCONTEXT_QEMU_THREAD_H
#define AIOCONTEXT_QEMU_THREAD_H

#include "qemu/osdep.h"
#include "qemu/typedefs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Embeddable; the library keeps its lock counter in place. Initialise with
 * qemu_lockcnt_init() before use. */
struct QemuLockCnt {
#if defined(__linux__)
    unsigned int impl_;  /* one futex word: lock state and count */
#else
    union {
        void *ptr_;
        uint64_t align_;
        unsigned char bytes_[64];
    } impl_;
#endif
};

void qemu_lockcnt_init(QemuLockCnt *lockcnt);
void qemu_lockcnt_destroy(QemuLockCnt *lockcnt);
/* Starts a visit; waits only while the count is zero and the lock is held. */
void qemu_lockcnt_inc(QemuLockCnt *lockcnt);
/* Ends a visit. */
void qemu_lockcnt_dec(QemuLockCnt *lockcnt);
/* Ends a visit; if it was the last, returns true with the lock held. */
bool qemu_lockcnt_dec_and_lock(QemuLockCnt *lockcnt);
/* If the count is 1, drops it to 0 and returns true with the lock held; else nothing. */
bool qemu_lockcnt_dec_if_lock(QemuLockCnt *lockcnt);
void qemu_lockcnt_lock(QemuLockCnt *lockcnt);
void qemu_lockcnt_unlock(QemuLockCnt *lockcnt);
/* Atomically count += 1 and unlock. */
void qemu_lockcnt_inc_and_unlock(QemuLockCnt *lockcnt);
/* The current count (a snapshot unless the lock is held). */
unsigned qemu_lockcnt_count(QemuLockCnt *lockcnt);

#ifdef __cplusplus
}
#endif

#endif /* AIOCONTEXT_QEMU_THREAD_H */
