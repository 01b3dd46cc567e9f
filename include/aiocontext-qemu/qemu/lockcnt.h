/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qemu/lockcnt.h: QemuLockCnt. QEMU 7.2 declares it in qemu/thread.h (later versions
 * moved it here); both spellings work.
 */
#ifndef AIOCONTEXT_QEMU_LOCKCNT_H
#define AIOCONTEXT_QEMU_LOCKCNT_H

#include "qemu/thread.h"

#endif /* AIOCONTEXT_QEMU_LOCKCNT_H */
