// SPDX-License-Identifier: LGPL-2.1-or-later
// Private to the QEMU-compatible C shim (src/qemu/): the C headers with their functions
// exported, and the casts between the C handles and the C++ objects behind them.
//
// The shim translates only: every behaviour lives in the C++ core. Mapping:
//   AioContext*    = aio::Context* (its GSource's reference count is the context's)
//   QEMUBH*        = aio::BhNode* (no context reference, as in QEMU)
//   ThreadPool*    = aio::ThreadPool* (the context's one pool)
//   QEMUTimerList* = aio::TimerList* (one per clock per context)
//   EventNotifier, QemuLockCnt, QEMUTimer: the C++ objects kept in place in the C struct.
#pragma once

#include "../context_impl.hpp"
#include "../timer_list.hpp"

#include <aio/context.hpp>

#include <cstdarg>

// The library is built with hidden visibility; the C API is its other public face.
#pragma GCC visibility push(default)
#include "block/aio-wait.h"
#include "block/aio.h"
#include "block/block.h"
#include "block/thread-pool.h"
#include "iothread.h"
#include "qapi/error.h"
#include "qemu/event_notifier.h"
#include "qemu/main-loop.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#pragma GCC visibility pop

namespace aio::qemu {

inline Context* cxx(AioContext* ctx) noexcept { return reinterpret_cast<Context*>(ctx); }
inline ContextImpl* impl(AioContext* ctx) noexcept { return ContextImpl::from(cxx(ctx)); }
inline AioContext* c_ctx(Context* ctx) noexcept { return reinterpret_cast<AioContext*>(ctx); }

// Prints "<func>: <message>" on stderr and aborts.
[[noreturn]] void fatal(const char* func, const char* fmt, ...) noexcept
    __attribute__((format(printf, 2, 3)));

// For catch blocks: names the exception being handled, then aborts. The C API has no
// way to report it (QEMU's functions of the same name cannot fail).
[[noreturn]] void fatal_exception(const char* func) noexcept;

}  // namespace aio::qemu
