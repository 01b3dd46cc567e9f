/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * block/block-io.h: cancelling asynchronous requests (BlockAIOCB), as in QEMU 7.2.
 * Here the requests are thread-pool submissions and user-defined AIOCBs.
 */
#ifndef AIOCONTEXT_QEMU_BLOCK_BLOCK_IO_H
#define AIOCONTEXT_QEMU_BLOCK_BLOCK_IO_H

#include "block/aio.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Cancels acb and waits (polling its context, so call it from that context's home
 * thread) until its completion callback has run. A request that already started
 * completes normally; one still queued completes with -ECANCELED. */
void bdrv_aio_cancel(BlockAIOCB *acb);
/* Requests cancellation and returns at once; the completion callback still runs exactly
 * once, with -ECANCELED if the request never started. */
void bdrv_aio_cancel_async(BlockAIOCB *acb);

#ifdef __cplusplus
}
#endif

#endif /* AIOCONTEXT_QEMU_BLOCK_BLOCK_IO_H */
