/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qemu/main-loop.h: the main AioContext, as in QEMU 7.2 (without the BQL and the
 * iohandler context).
 */
#ifndef AIOCONTEXT_QEMU_MAIN_LOOP_H
#define AIOCONTEXT_QEMU_MAIN_LOOP_H

#include "block/aio.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Creates the main AioContext, makes it the calling thread's current context, and
 * attaches its GSource (named "aio-context") to GLib's default main context, so both
 * aio_poll(qemu_get_aio_context(), ...) and g_main_context_iteration(NULL, ...) drive
 * it. Fills in main_loop_tlg. Returns 0, or a negative errno with *errp set. A second
 * call does nothing. */
int qemu_init_main_loop(Error **errp);

/* The main AioContext (NULL before qemu_init_main_loop). Any thread. */
AioContext *qemu_get_aio_context(void);

/* aio_notify() on the main context. */
void qemu_notify_event(void);

/* A bottom half on the main context (see aio_bh_new). */
QEMUBH *qemu_bh_new_full(QEMUBHFunc *cb, void *opaque, const char *name);
#define qemu_bh_new(cb, opaque) qemu_bh_new_full((cb), (opaque), (stringify(cb)))

#ifdef __cplusplus
}
#endif

#endif /* AIOCONTEXT_QEMU_MAIN_LOOP_H */
