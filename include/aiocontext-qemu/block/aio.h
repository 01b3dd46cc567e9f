/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * block/aio.h: QEMU 7.2's AioContext API on top of aiocontext's aio::Context.
 *
 * An AioContext is a single-threaded event loop that is also a GLib GSource: drive it
 * with aio_poll() from its home thread, or attach aio_get_g_source() to a GMainContext.
 * Bottom halves, fd handlers, event notifiers and timers may be added, scheduled and
 * removed from any thread; their callbacks run in the home thread, in the order bottom
 * halves, fd handlers, timers. AioContext, QEMUBH and ThreadPool are opaque.
 */
#ifndef AIOCONTEXT_QEMU_BLOCK_AIO_H
#define AIOCONTEXT_QEMU_BLOCK_AIO_H

#include "qemu/osdep.h"
#include "qemu/typedefs.h"
#include "qapi/error.h"
#include "qemu/event_notifier.h"
#include "qemu/thread.h"
#include "qemu/timer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- asynchronous request control blocks (thread pool requests) ------------------- */

typedef struct BlockAIOCB BlockAIOCB;
typedef void BlockCompletionFunc(void *opaque, int ret);

typedef struct AIOCBInfo {
    void (*cancel_async)(BlockAIOCB *acb);
    AioContext *(*get_aio_context)(BlockAIOCB *acb);
    size_t aiocb_size;
} AIOCBInfo;

struct BlockAIOCB {
    const AIOCBInfo *aiocb_info;
    BlockDriverState *bs;      /* always NULL here: there is no block layer */
    BlockCompletionFunc *cb;
    void *opaque;
    int refcnt;
};

/* Allocates aiocb_info->aiocb_size bytes (zeroed) with the BlockAIOCB header filled in
 * and refcnt 1. */
void *qemu_aio_get(const AIOCBInfo *aiocb_info, BlockDriverState *bs,
                   BlockCompletionFunc *cb, void *opaque);
void qemu_aio_unref(void *p);
void qemu_aio_ref(void *p);

/* --- callbacks ------------------------------------------------------------------------ */

typedef void QEMUBHFunc(void *opaque);
typedef bool AioPollFn(void *opaque);
typedef void IOHandler(void *opaque);

struct ThreadPool;

/* --- lifecycle ------------------------------------------------------------------------ */

/* A new context with one reference, or NULL with *errp set. Any thread. */
AioContext *aio_context_new(Error **errp);
void aio_context_ref(AioContext *ctx);
/* Drops a reference; the last one destroys the context. A context destroyed with a
 * bottom half still scheduled (and not deleted) aborts, naming it. */
void aio_context_unref(AioContext *ctx);

/* A user-level recursive lock for code that wants exclusive ownership of the context.
 * aio_poll() never takes or drops it; bottom halves, timers and fd handlers never need
 * it. */
void aio_context_acquire(AioContext *ctx);
void aio_context_release(AioContext *ctx);

/* --- bottom halves -------------------------------------------------------------------- */

/* Runs cb(opaque) once, as soon as possible, in ctx's home thread; then forgets it.
 * name must be a string with static storage duration. Any thread. */
void aio_bh_schedule_oneshot_full(AioContext *ctx, QEMUBHFunc *cb, void *opaque,
                                  const char *name);
#define aio_bh_schedule_oneshot(ctx, cb, opaque) \
    aio_bh_schedule_oneshot_full((ctx), (cb), (opaque), (stringify(cb)))

/* A bottom half (not scheduled) named name (static storage). It does not keep ctx
 * alive: delete it with qemu_bh_delete() before the last aio_context_unref(). */
QEMUBH *aio_bh_new_full(AioContext *ctx, QEMUBHFunc *cb, void *opaque, const char *name);
#define aio_bh_new(ctx, cb, opaque) \
    aio_bh_new_full((ctx), (cb), (opaque), (stringify(cb)))

/* Runs the BH once in the next iteration; idempotent until it runs; a BH rescheduled
 * from its own callback runs in the next iteration. Any thread. */
void qemu_bh_schedule(QEMUBH *bh);
/* Like qemu_bh_schedule(), but the loop may wait up to 10 ms before running it, and
 * running it is not progress for aio_poll(). */
void qemu_bh_schedule_idle(QEMUBH *bh);
/* Unschedules (a dispatch already in progress may still run it). Any thread. */
void qemu_bh_cancel(QEMUBH *bh);
/* Deletes the BH: it never runs again, even if scheduled; its memory is freed by the
 * loop. Any thread, including the BH's own callback. */
void qemu_bh_delete(QEMUBH *bh);

/* --- driving the loop ----------------------------------------------------------------- */

/* Wakes the loop so it re-evaluates its sources. Not progress. Any thread. */
void aio_notify(AioContext *ctx);

/* Runs one iteration in the home thread (reentrant from callbacks). With blocking,
 * waits until something happens. Returns true iff progress was made: a non-idle bottom
 * half, an fd or event-notifier callback, or a timer ran; a wake-up by aio_notify()
 * alone returns false. */
bool aio_poll(AioContext *ctx, bool blocking);

/* The timeout in ns a blocking aio_poll() would use now: 0 if a bottom half is
 * scheduled, -1 for none. Home thread. */
int64_t aio_compute_timeout(AioContext *ctx);

/* The context's GSource, with a NEW reference: attach it to a GMainContext, then
 * g_source_unref() it. */
GSource *aio_get_g_source(AioContext *ctx);

/* --- fd handlers and event notifiers --------------------------------------------------- */

/* Installs, replaces or (all of io_read, io_write, io_poll NULL) removes the handlers
 * for fd. io_read runs on IN/HUP/ERR, io_write on OUT/ERR, read first. io_poll is a
 * cheap side-effect-free readiness check for busy polling and io_poll_ready does the
 * work; io_poll without io_poll_ready is ignored. is_external handlers are suspended by
 * aio_disable_external(). Any thread. A bad fd (closed, or one epoll refuses, such as a
 * regular file) is reported on stderr and nothing is registered. */
void aio_set_fd_handler(AioContext *ctx, int fd, bool is_external, IOHandler *io_read,
                        IOHandler *io_write, AioPollFn *io_poll,
                        IOHandler *io_poll_ready, void *opaque);

/* aio_set_fd_handler() on the notifier's fd, with the notifier as the opaque. */
void aio_set_event_notifier(AioContext *ctx, EventNotifier *notifier, bool is_external,
                            EventNotifierHandler *io_read, AioPollFn *io_poll,
                            EventNotifierHandler *io_poll_ready);

/* Suspends is_external handlers (nests). Any thread. */
void aio_disable_external(AioContext *ctx);
/* Undoes one aio_disable_external(); the last one wakes the loop. */
void aio_enable_external(AioContext *ctx);
bool aio_external_disabled(AioContext *ctx);

/* --- thread pool, parameters ------------------------------------------------------------ */

/* The context's worker pool, created on first use; lives as long as the context. */
struct ThreadPool *aio_get_thread_pool(AioContext *ctx);

/* Adaptive busy polling for aio_poll(): max_ns 0 disables it; grow 0 doubles, shrink 0
 * resets. Negative values set *errp. */
void aio_context_set_poll_params(AioContext *ctx, int64_t max_ns, int64_t grow,
                                 int64_t shrink, Error **errp);
/* Accepted for compatibility (there is no Linux AIO engine here). */
void aio_context_set_aio_params(AioContext *ctx, int64_t max_batch, Error **errp);
/* Thread pool limits: 0 <= min <= max, 0 < max <= INT_MAX, else *errp is set. */
void aio_context_set_thread_pool_params(AioContext *ctx, int64_t min, int64_t max,
                                        Error **errp);

/* --- timers on a context ------------------------------------------------------------------ */

void aio_timer_init_with_attrs(AioContext *ctx, QEMUTimer *ts, QEMUClockType type,
                               int scale, int attributes, QEMUTimerCB *cb, void *opaque);
void aio_timer_init(AioContext *ctx, QEMUTimer *ts, QEMUClockType type, int scale,
                    QEMUTimerCB *cb, void *opaque);
QEMUTimer *aio_timer_new_with_attrs(AioContext *ctx, QEMUClockType type, int scale,
                                    int attributes, QEMUTimerCB *cb, void *opaque);
QEMUTimer *aio_timer_new(AioContext *ctx, QEMUClockType type, int scale,
                         QEMUTimerCB *cb, void *opaque);

/* --- the current thread's context --------------------------------------------------------- */

/* The context the calling thread drives: set by qemu_init_main_loop() for the main
 * thread, in IOThreads, and for a thread iterating a GMainContext a context is attached
 * to; NULL otherwise (there is no BQL to fall back on). */
AioContext *qemu_get_current_aio_context(void);
/* Makes ctx the calling thread's context; aborts if it already has a different one. */
void qemu_set_current_aio_context(AioContext *ctx);

#ifdef __cplusplus
}
#endif

#endif /* AIOCONTEXT_QEMU_BLOCK_AIO_H */
