// SPDX-License-Identifier: LGPL-2.1-or-later
// aio::CoMutex and aio::CoQueue: coroutine locks and condition queues (QEMU's CoMutex and
// CoQueue) that work across contexts and threads.
//
// CoMutex is fair: waiters get the lock in arrival order, and a contended unlock hands
// ownership straight to the next waiter (which is then resumed in its own context), so
// no newcomer can barge in between.
//
// Thread safety: every member may be called from any thread; waiting requires a task.
#pragma once

#include <aio/export.hpp>
#include <aio/task.hpp>

#include <coroutine>
#include <mutex>

namespace aio {

class AIO_EXPORT CoMutex {
public:
    CoMutex() = default;
    CoMutex(const CoMutex&) = delete;
    CoMutex& operator=(const CoMutex&) = delete;

    struct LockAwaiter {
        CoMutex& m;
        bool await_ready() const noexcept { return false; }
        template <detail::AioPromise P>
        bool await_suspend(std::coroutine_handle<P> h) noexcept
        {
            return m.lock_or_enqueue(&h.promise());
        }
        void await_resume() const noexcept {}
    };
    // co_await m.lock(): returns once the task owns the mutex.
    LockAwaiter lock() noexcept { return LockAwaiter{*this}; }
    bool try_lock() noexcept;
    // Hands the mutex to the oldest waiter, if any.
    void unlock() noexcept;

private:
    // Takes the lock (returns false: do not suspend) or queues p (returns true).
    bool lock_or_enqueue(detail::PromiseBase* p) noexcept;

    std::mutex mutex_;
    bool locked_ = false;                     // guarded by mutex_
    detail::PromiseBase* head_ = nullptr;     // guarded by mutex_: FIFO of waiters
    detail::PromiseBase* tail_ = nullptr;
};

class AIO_EXPORT CoQueue {
public:
    CoQueue() = default;
    CoQueue(const CoQueue&) = delete;
    CoQueue& operator=(const CoQueue&) = delete;

    struct WaitAwaiter {
        CoQueue& q;
        CoMutex* m;  // released once queued, if not null
        bool await_ready() const noexcept { return false; }
        template <detail::AioPromise P>
        void await_suspend(std::coroutine_handle<P> h) noexcept
        {
            q.enqueue(&h.promise(), m);  // queued before m is released: no lost wake-up
        }
        void await_resume() const noexcept {}
    };
    // co_await q.wait(): suspends until wake_one()/wake_all() picks this task.
    WaitAwaiter wait() noexcept { return WaitAwaiter{*this, nullptr}; }
    // co_await q.wait(m): releases m, waits, and re-acquires m before returning.
    Task<void> wait(CoMutex& m);

    // Wakes the oldest waiter; returns whether there was one.
    bool wake_one() noexcept;
    void wake_all() noexcept;
    bool empty() noexcept;

private:
    void enqueue(detail::PromiseBase* p, CoMutex* unlock_after) noexcept;

    std::mutex mutex_;
    detail::PromiseBase* head_ = nullptr;  // guarded by mutex_
    detail::PromiseBase* tail_ = nullptr;
};

}  // namespace aio
