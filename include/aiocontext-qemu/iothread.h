/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iothread.h: the IOThread helper of QEMU's unit tests (tests/unit/iothread.h): a
 * thread with its own AioContext, running `while (running) aio_poll(ctx, true)`.
 */
#ifndef AIOCONTEXT_QEMU_IOTHREAD_H
#define AIOCONTEXT_QEMU_IOTHREAD_H

#include "block/aio.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct IOThread IOThread;

/* Starts the thread and returns once it runs; its context is its current context. */
IOThread *iothread_new(void);
/* Stops the thread through a one-shot bottom half (so everything scheduled before runs
 * first), joins it and frees the IOThread, dropping its context reference. */
void iothread_join(IOThread *iothread);
/* The thread's context (no new reference). */
AioContext *iothread_get_aio_context(IOThread *iothread);
/* The thread's private GMainContext, created on first call; from then on the thread
 * runs a GLib main loop on it (which keeps driving the AioContext through its GSource),
 * so GLib sources can live in the I/O thread. Owned by the IOThread. */
GMainContext *iothread_get_g_main_context(IOThread *iothread);

#ifdef __cplusplus
}
#endif

#endif /* AIOCONTEXT_QEMU_IOTHREAD_H */
