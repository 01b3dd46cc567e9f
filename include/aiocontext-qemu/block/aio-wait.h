/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * block/aio-wait.h: waiting for a condition while keeping the event loop running, as in
 * QEMU 7.2.
 *
 * AIO_WAIT_WHILE(ctx, cond) polls while cond is true and returns whether it waited.
 * ctx is the context the condition concerns: in its home thread the macro polls ctx;
 * elsewhere it polls the calling thread's own context (the main context in the main
 * thread). Whoever changes what cond reads must call aio_wait_kick() afterwards.
 * Unlike QEMU 7.2, the macro never releases or re-acquires ctx's aio_context_acquire()
 * lock around its polls (the library needs no lock to make progress).
 */
#ifndef AIOCONTEXT_QEMU_BLOCK_AIO_WAIT_H
#define AIOCONTEXT_QEMU_BLOCK_AIO_WAIT_H

#include "block/aio.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Private: the waiter registration AIO_WAIT_WHILE keeps on its stack. */
typedef struct AioWaitScope_ {
    union {
        void *ptr_;
        uint64_t align_;
        unsigned char bytes_[32];
    } impl_;
} AioWaitScope_;

/* Private helpers of AIO_WAIT_WHILE: register the waiter (before cond is first read)
 * and return the context to poll; unregister. */
AioContext *aio_wait_scope_begin_(AioWaitScope_ *scope, AioContext *ctx);
void aio_wait_scope_end_(AioWaitScope_ *scope);

#define AIO_WAIT_WHILE(ctx, cond)                                             \
    __extension__({                                                           \
        bool aio_wait_waited_ = false;                                        \
        AioWaitScope_ aio_wait_scope_;                                        \
        AioContext *aio_wait_ctx_ = aio_wait_scope_begin_(&aio_wait_scope_, (ctx)); \
        while ((cond)) {                                                      \
            aio_poll(aio_wait_ctx_, true);                                    \
            aio_wait_waited_ = true;                                          \
        }                                                                     \
        aio_wait_scope_end_(&aio_wait_scope_);                                \
        aio_wait_waited_;                                                     \
    })

/* Wakes every thread in AIO_WAIT_WHILE so it re-evaluates its condition. Cheap when
 * nobody waits. Any thread. */
void aio_wait_kick(void);

/* Runs cb(opaque) in ctx's home thread and waits for it to finish (directly if the
 * caller is that thread). */
void aio_wait_bh_oneshot(AioContext *ctx, QEMUBHFunc *cb, void *opaque);

/* Whether the calling thread is ctx's home thread. */
static inline bool in_aio_context_home_thread(AioContext *ctx)
{
    return ctx == qemu_get_current_aio_context();
}

#ifdef __cplusplus
}
#endif

#endif /* AIOCONTEXT_QEMU_BLOCK_AIO_WAIT_H */
