// SPDX-License-Identifier: LGPL-2.1-or-later
// Private to the coroutine headers: what every aiocontext coroutine promise carries, and
// the two ways to get a suspended coroutine running again.
#pragma once

#include <aio/export.hpp>

#include <atomic>
#include <coroutine>
#include <exception>

namespace aio {

class Context;

namespace detail {

struct AIO_EXPORT PromiseBase {
    std::coroutine_handle<> self;
    // The context whose home thread runs this coroutine. Set when it is spawned or
    // scheduled, inherited by tasks it awaits, changed by switch_to().
    Context* home = nullptr;
    // Non-null while the coroutine sits in a context's schedule queue: the tag of the
    // scheduler, for the "already scheduled" diagnostic.
    std::atomic<const char*> scheduled{nullptr};
    // Link in a schedule queue or in a thread's wake-up queue (never both at once).
    PromiseBase* co_next = nullptr;
};

// Queues p on ctx from any thread: a lock-free LIFO drained (in FIFO order) by one BH
// per context. Aborts, naming both schedulers' tags, if p is already scheduled.
AIO_EXPORT void co_schedule(Context& ctx, PromiseBase* p, const char* tag) noexcept;

// Runs p now in this thread, or, if the caller is itself running a coroutine, after it
// suspends (chaining instead of nesting, so coroutines that wake each other never grow
// the stack). Requires the caller to be p->home's thread.
AIO_EXPORT void co_enter(PromiseBase* p) noexcept;

// co_enter() if the caller drives p->home, else co_schedule() onto it.
AIO_EXPORT void co_wake(PromiseBase* p) noexcept;

// Reports an exception that escaped a detached task (g_warning), and returns.
AIO_EXPORT void report_detached_task_exception(std::exception_ptr e) noexcept;

}  // namespace detail
}  // namespace aio
