/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * block/thread-pool.h: the per-AioContext worker pool, as in QEMU 7.2.
 *
 * func(arg) runs on a worker thread; cb(opaque, ret) runs afterwards in the context's
 * home thread with func's return value, or -ECANCELED if the request was cancelled
 * before it started. Workers start on demand (0..64 by default, see
 * aio_context_set_thread_pool_params) and exit after 10 s idle.
 */
#ifndef AIOCONTEXT_QEMU_BLOCK_THREAD_POOL_H
#define AIOCONTEXT_QEMU_BLOCK_THREAD_POOL_H

#include "block/block.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int ThreadPoolFunc(void *opaque);

typedef struct ThreadPool ThreadPool;

/* The context's pool (the same one aio_get_thread_pool() returns: there is one pool per
 * context, and it lives as long as the context). */
ThreadPool *thread_pool_new(struct AioContext *ctx);
/* Releases a pool from thread_pool_new(). The pool itself goes with its context. */
void thread_pool_free(ThreadPool *pool);

/* Submits func(arg); cb may be NULL. The returned AIOCB is valid until cb has run (keep
 * it with qemu_aio_ref() for longer). Call from the pool's context's home thread. */
BlockAIOCB *thread_pool_submit_aio(ThreadPool *pool, ThreadPoolFunc *func, void *arg,
                                   BlockCompletionFunc *cb, void *opaque);
/* Fire and forget. */
void thread_pool_submit(ThreadPool *pool, ThreadPoolFunc *func, void *arg);
/* Applies ctx's thread-pool limits (aio_context_set_thread_pool_params already did). */
void thread_pool_update_params(ThreadPool *pool, struct AioContext *ctx);

#ifdef __cplusplus
}
#endif

#endif /* AIOCONTEXT_QEMU_BLOCK_THREAD_POOL_H */
