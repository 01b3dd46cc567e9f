/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qemu/typedefs.h: the type names the QEMU-compatible headers share, as in QEMU.
 * AioContext, QEMUBH, Error, IOThread, ThreadPool and BlockDriverState are opaque;
 * EventNotifier, QEMUTimer, QEMUTimerListGroup and QemuLockCnt are defined in their own
 * headers because QEMU code embeds them.
 */
#ifndef AIOCONTEXT_QEMU_TYPEDEFS_H
#define AIOCONTEXT_QEMU_TYPEDEFS_H

typedef struct AioContext AioContext;
typedef struct BlockDriverState BlockDriverState;
typedef struct Error Error;
typedef struct EventNotifier EventNotifier;
typedef struct IOThread IOThread;
typedef struct QEMUBH QEMUBH;
typedef struct QEMUTimer QEMUTimer;
typedef struct QEMUTimerList QEMUTimerList;
typedef struct QEMUTimerListGroup QEMUTimerListGroup;
typedef struct QemuLockCnt QemuLockCnt;

#endif /* AIOCONTEXT_QEMU_TYPEDEFS_H */
