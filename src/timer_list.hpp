// SPDX-License-Identifier: LGPL-2.1-or-later
// Private: a timer list (one clock, one context) as a binary min-heap ordered by
// (deadline, arming sequence) with each node's index stored in the node, so arm, move and
// cancel are O(log n) and ties fire in arming order.
#pragma once

#include <aio/timer.hpp>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <cstdint>
#include <mutex>
#include <vector>

namespace aio {

class ContextImpl;
class TimerList;

struct TimerNode {
    TimerList* list = nullptr;
    UniqueFunction<void()> cb;
    const char* name = "timer";
    std::int64_t scale = 1;
    // Deadline in ns, -1 when not armed. Written under the list mutex; read without it by
    // pending()/expire_time() as a snapshot.
    std::atomic<std::int64_t> expire{-1};
    std::uint64_t seq = 0;          // guarded by the list mutex: arming order for ties
    std::size_t heap_index = 0;     // guarded by the list mutex: valid while armed
    int running = 0;                // guarded by the list mutex: callback activations
                                    // in progress (a nested poll may re-run the timer)
    bool destroy_after_run = false; // guarded: the handle died inside the callback
    int running_tid = 0;            // guarded: the thread running the callback
};

class TimerList {
public:
    TimerList(ContextImpl* ctx, Clock clock);
    ~TimerList();
    TimerList(const TimerList&) = delete;
    TimerList& operator=(const TimerList&) = delete;

    // Arm or move (anticipate: only earlier). Returns nothing; wakes the context when the
    // node became the earliest.
    void arm(TimerNode* n, std::int64_t expire_ns, bool anticipate) noexcept;
    void cancel(TimerNode* n) noexcept;
    // Cancels n and frees it, now or (if its callback is running on this thread) when the
    // callback returns; waits if the callback runs on another thread.
    void destroy(TimerNode* n) noexcept;

    // ns until the earliest deadline: -1 none (or the clock is disabled), 0 if due.
    std::int64_t deadline_ns() const noexcept;
    // Absolute earliest deadline on this list's clock, or -1.
    std::int64_t earliest() const noexcept { return head_expire_.load(std::memory_order_acquire); }
    // Runs every timer due at one `now`. Returns whether a callback ran. Home thread.
    bool run() noexcept;
    // Waits until no run() pass is in progress; aborts if the caller is inside one.
    void wait_idle() noexcept;

    Clock clock() const noexcept { return clock_; }
    ContextImpl* context() const noexcept { return ctx_; }

private:
    bool less(const TimerNode* a, const TimerNode* b) const noexcept
    {
        std::int64_t ea = a->expire.load(std::memory_order_relaxed);
        std::int64_t eb = b->expire.load(std::memory_order_relaxed);
        return ea < eb || (ea == eb && a->seq < b->seq);
    }
    void place(std::size_t i, TimerNode* n) noexcept
    {
        heap_[i] = n;
        n->heap_index = i;
    }
    void sift_up(std::size_t i) noexcept;
    void sift_down(std::size_t i) noexcept;
    void remove_locked(TimerNode* n) noexcept;
    void publish_head_locked() noexcept;

    ContextImpl* const ctx_;
    const Clock clock_;
    mutable std::mutex mutex_;
    std::condition_variable idle_cv_;  // signalled when a pass or a callback ends
    std::vector<TimerNode*> heap_;     // guarded by mutex_
    std::uint64_t next_seq_ = 0;       // guarded by mutex_
    int passes_ = 0;                   // guarded by mutex_: run() passes in progress
    int pass_tid_ = 0;                 // guarded by mutex_: thread of the running pass
    int waiters_ = 0;                  // guarded by mutex_: threads blocked on idle_cv_
    // The heap top's deadline, or -1: a lock-free hint for deadline_ns() and run().
    std::atomic<std::int64_t> head_expire_{-1};
};

// One list per clock, as QEMU's QEMUTimerListGroup.
class TimerListGroup {
public:
    explicit TimerListGroup(ContextImpl* ctx);
    ~TimerListGroup();
    TimerList& list(Clock c) noexcept { return *lists_[static_cast<int>(c)]; }
    // Soonest deadline over all clocks, in ns from now; -1 none.
    std::int64_t deadline_ns() const noexcept;
    // The earliest deadline as absolute CLOCK_MONOTONIC ns (for a timerfd), or -1.
    // Realtime deadlines are returned exactly, so an unchanged head gives the same value.
    std::int64_t earliest_monotonic_ns() const noexcept;
    bool run() noexcept;

private:
    std::unique_ptr<TimerList> lists_[kClockCount];
};

// Monotonic ns, saturating helpers shared by the loop.
std::int64_t monotonic_ns() noexcept;
inline std::int64_t saturating_add(std::int64_t a, std::int64_t b) noexcept
{
    std::int64_t r;
    if (__builtin_add_overflow(a, b, &r)) {
        return b > 0 ? INT64_MAX : INT64_MIN;
    }
    return r;
}
inline std::int64_t saturating_mul(std::int64_t a, std::int64_t b) noexcept
{
    std::int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) {
        return (a > 0) == (b > 0) ? INT64_MAX : INT64_MIN;
    }
    return r;
}
// Soonest of two timeouts where -1 means infinite.
inline std::int64_t soonest(std::int64_t a, std::int64_t b) noexcept
{
    if (a < 0) {
        return b;
    }
    if (b < 0) {
        return a;
    }
    return a < b ? a : b;
}

}  // namespace aio
