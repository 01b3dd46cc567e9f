// SPDX-License-Identifier: LGPL-2.1-or-later
// Coroutine scheduling: a lock-free per-context queue drained by one BH, a per-thread
// wake-up queue that turns nested resumption into chaining, CoMutex and CoQueue.
#include <aio/co_mutex.hpp>

#include "context_impl.hpp"

#include <glib.h>

namespace aio {

namespace detail {

namespace {

// The thread's wake-up queue: coroutines entered while another coroutine runs on this
// thread wait here until it suspends, then run one after the other from co_enter's loop.
struct WakeQueue {
    bool running = false;
    PromiseBase* head = nullptr;
    PromiseBase* tail = nullptr;
};
thread_local WakeQueue tl_wake;

bool drives(Context* ctx) noexcept
{
    auto* c = ContextImpl::from(ctx);
    return c->owner_tid_.load(std::memory_order_relaxed) == ContextImpl::current_tid() ||
           Context::current() == ctx;
}

}  // namespace

void co_enter(PromiseBase* p) noexcept
{
    WakeQueue& q = tl_wake;
    if (q.running) {
        p->co_next = nullptr;
        (q.tail != nullptr ? q.tail->co_next : q.head) = p;
        q.tail = p;
        return;
    }
    q.running = true;
    p->self.resume();
    while (PromiseBase* next = q.head) {
        q.head = next->co_next;
        if (q.head == nullptr) {
            q.tail = nullptr;
        }
        next->co_next = nullptr;
        next->self.resume();
    }
    q.running = false;
}

void co_wake(PromiseBase* p) noexcept
{
    if (drives(p->home)) {
        co_enter(p);
    } else {
        co_schedule(*p->home, p, "wake");
    }
}

void co_schedule(Context& ctx, PromiseBase* p, const char* tag) noexcept
{
    auto* c = ContextImpl::from(&ctx);
    const char* prev = nullptr;
    if (!p->scheduled.compare_exchange_strong(prev, tag, std::memory_order_acq_rel)) {
        c->fatal("coroutine already scheduled (by '%s'; now '%s'), aborting", prev, tag);
    }
    // Once p is queued it may run on ctx's thread and drop the last reference to ctx
    // (or end the IOThread) before this function is done notifying: hold one (from
    // another thread; on the driving thread p cannot run before this returns).
    ForeignCallRef hold(c);
    PromiseBase* head = c->co_list_.load(std::memory_order_relaxed);
    do {
        p->co_next = head;
    } while (!c->co_list_.compare_exchange_weak(head, p, std::memory_order_release,
                                                std::memory_order_relaxed));
    ContextImpl::bh_enqueue(c->co_bh_, kBhScheduled);
}

void report_detached_task_exception(std::exception_ptr e) noexcept
{
    try {
        std::rethrow_exception(std::move(e));
    } catch (const std::exception& ex) {
        g_warning("aio: a spawned task ended with an exception: %s", ex.what());
    } catch (...) {
        g_warning("aio: a spawned task ended with a non-std exception");
    }
}

}  // namespace detail

// The BH that drains a context's coroutine queue, in scheduling order.
void ContextImpl::run_scheduled_coroutines() noexcept
{
    detail::PromiseBase* lifo = co_list_.exchange(nullptr, std::memory_order_acquire);
    detail::PromiseBase* fifo = nullptr;
    while (lifo != nullptr) {
        detail::PromiseBase* next = lifo->co_next;
        lifo->co_next = fifo;
        fifo = lifo;
        lifo = next;
    }
    while (fifo != nullptr) {
        detail::PromiseBase* p = fifo;
        fifo = p->co_next;
        p->co_next = nullptr;
        // Clear before entering, so the coroutine may schedule itself again.
        p->scheduled.store(nullptr, std::memory_order_release);
        detail::co_enter(p);
    }
}

// --- CoMutex / CoQueue ------------------------------------------------------------------

namespace {

void push(detail::PromiseBase*& head, detail::PromiseBase*& tail, detail::PromiseBase* p) noexcept
{
    p->co_next = nullptr;
    (tail != nullptr ? tail->co_next : head) = p;
    tail = p;
}

detail::PromiseBase* pop(detail::PromiseBase*& head, detail::PromiseBase*& tail) noexcept
{
    detail::PromiseBase* p = head;
    if (p != nullptr) {
        head = p->co_next;
        if (head == nullptr) {
            tail = nullptr;
        }
        p->co_next = nullptr;
    }
    return p;
}

}  // namespace

bool CoMutex::lock_or_enqueue(detail::PromiseBase* p) noexcept
{
    std::lock_guard lk(mutex_);
    if (!locked_) {
        locked_ = true;
        return false;
    }
    push(head_, tail_, p);
    return true;
}

bool CoMutex::try_lock() noexcept
{
    std::lock_guard lk(mutex_);
    if (locked_) {
        return false;
    }
    locked_ = true;
    return true;
}

void CoMutex::unlock() noexcept
{
    detail::PromiseBase* next;
    {
        std::lock_guard lk(mutex_);
        next = pop(head_, tail_);
        if (next == nullptr) {
            locked_ = false;
            return;
        }
        // Hand-off: locked_ stays true; `next` owns the mutex from here on.
    }
    detail::co_wake(next);
}

void CoQueue::enqueue(detail::PromiseBase* p, CoMutex* unlock_after) noexcept
{
    {
        std::lock_guard lk(mutex_);
        push(head_, tail_, p);
    }
    if (unlock_after != nullptr) {
        unlock_after->unlock();
    }
}

Task<void> CoQueue::wait(CoMutex& m)
{
    co_await WaitAwaiter{*this, &m};
    co_await m.lock();
}

bool CoQueue::wake_one() noexcept
{
    detail::PromiseBase* p;
    {
        std::lock_guard lk(mutex_);
        p = pop(head_, tail_);
    }
    if (p != nullptr) {
        detail::co_wake(p);
    }
    return p != nullptr;
}

void CoQueue::wake_all() noexcept
{
    while (wake_one()) {
    }
}

bool CoQueue::empty() noexcept
{
    std::lock_guard lk(mutex_);
    return head_ == nullptr;
}

}  // namespace aio
