/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qemu/osdep.h for aiocontext's QEMU-compatible C API: what QEMU code expects to get
 * from its first include. The standard C and POSIX headers QEMU's osdep.h pulls in,
 * GLib, and a handful of QEMU's utility macros; nothing more.
 */
#ifndef AIOCONTEXT_QEMU_OSDEP_H
#define AIOCONTEXT_QEMU_OSDEP_H

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <glib-unix.h>

/* Turns a macro argument into a string literal (after expanding it). */
#ifndef stringify
#define tostring(s) #s
#define stringify(s) tostring(s)
#endif

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

/* GLib's MIN/MAX (glib.h) are the plain ternary forms; QEMU code uses them as such. */
#ifndef MIN
#define MIN(a, b) (((a) < (b)) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) (((a) > (b)) ? (a) : (b))
#endif

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(x) (sizeof(x) / sizeof((x)[0]))
#endif

/* The enclosing object of a member, type-checked like QEMU's (GNU C). */
#ifndef container_of
#define container_of(ptr, type, member)                                  \
    __extension__({                                                      \
        const __typeof__(((type *)0)->member) *container_of_mptr_ = (ptr); \
        (type *)((char *)container_of_mptr_ - offsetof(type, member));   \
    })
#endif

/* Round number n down/up to a multiple of m. */
#define QEMU_ALIGN_DOWN(n, m) ((n) / (m) * (m))
#define QEMU_ALIGN_UP(n, m) QEMU_ALIGN_DOWN((n) + (m) - 1, (m))
#define QEMU_IS_ALIGNED(n, m) (((n) % (m)) == 0)
/* The same for pointers (m a power of two). */
#define QEMU_ALIGN_PTR_DOWN(p, n) ((__typeof__(p))QEMU_ALIGN_DOWN((uintptr_t)(p), (n)))
#define QEMU_ALIGN_PTR_UP(p, n) ((__typeof__(p))QEMU_ALIGN_UP((uintptr_t)(p), (n)))
#define QEMU_PTR_IS_ALIGNED(p, n) QEMU_IS_ALIGNED((uintptr_t)(p), (n))

#endif /* AIOCONTEXT_QEMU_OSDEP_H */
