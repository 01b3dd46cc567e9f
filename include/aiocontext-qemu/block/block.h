/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * block/block.h: the block-layer umbrella header. Only the request-cancellation part
 * (block/block-io.h) exists here.
 */
#ifndef AIOCONTEXT_QEMU_BLOCK_BLOCK_H
#define AIOCONTEXT_QEMU_BLOCK_BLOCK_H

#include "block/aio.h"
#include "block/block-io.h"

#endif /* AIOCONTEXT_QEMU_BLOCK_BLOCK_H */
