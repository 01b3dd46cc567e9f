// SPDX-License-Identifier: LGPL-2.1-or-later
// qemu/timer.h: QEMUTimer on aio::Timer.
//
// A QEMUTimer keeps, in place, a mutex and an aio::Timer that is non-empty only while
// the timer is armed. The aio::Timer (one heap node and a context reference) is created
// by timer_mod and released by timer_del or when the timer fires, just before its
// callback runs. So, as QEMU code expects, an embedded timer that is not pending holds
// nothing: it may be freed without timer_deinit(), and it does not keep its context
// alive. Re-arming an armed timer reuses its node.
#include "shim.hpp"

#include <aio/timer.hpp>

#include <atomic>
#include <climits>
#include <cstdio>
#include <mutex>
#include <new>

using aio::qemu::cxx;
using aio::qemu::fatal;
using aio::qemu::fatal_exception;
using aio::qemu::impl;

QEMUTimerListGroup main_loop_tlg;

namespace {

static_assert(static_cast<int>(aio::Clock::realtime) == QEMU_CLOCK_REALTIME);
static_assert(static_cast<int>(aio::Clock::virtual_) == QEMU_CLOCK_VIRTUAL);
static_assert(static_cast<int>(aio::Clock::host) == QEMU_CLOCK_HOST);
static_assert(static_cast<int>(aio::Clock::virtual_rt) == QEMU_CLOCK_VIRTUAL_RT);
static_assert(aio::kClockCount == QEMU_CLOCK_MAX);

struct TimerState {
    std::mutex mutex;
    aio::Timer timer;       // guarded by mutex: the armed timer, empty when not pending
    std::uint64_t gen = 0;  // guarded by mutex: bumped for every new aio::Timer
};
static_assert(sizeof(TimerState) <= sizeof(QEMUTimer::impl_));
static_assert(alignof(TimerState) <= alignof(QEMUTimer));

TimerState& state(QEMUTimer* ts) noexcept
{
    return *std::launder(reinterpret_cast<TimerState*>(ts->impl_.bytes_));
}

aio::TimerList* timer_list(QEMUTimerList* tl) noexcept
{
    return reinterpret_cast<aio::TimerList*>(tl);
}

// expire_time mirrors the deadline for code that reads the field (as QEMU code may, from
// any thread). Written under the timer's mutex.
void set_expire(QEMUTimer* ts, std::int64_t ns) noexcept
{
    std::atomic_ref<std::int64_t>(ts->expire_time).store(ns, std::memory_order_relaxed);
}

// The aio::Timer's callback. `gen` identifies the aio::Timer it belongs to.
void fire(QEMUTimer* ts, std::uint64_t gen) noexcept
{
    TimerState& st = state(ts);
    aio::Timer mine;
    QEMUTimerCB* cb;
    void* opaque;
    {
        std::lock_guard lk(st.mutex);
        // Release our aio::Timer unless timer_del took it (it then waits for us) or
        // another thread re-armed it after it fired (it stays armed).
        if (st.gen == gen && st.timer && !st.timer.pending()) {
            mine = std::move(st.timer);
            set_expire(ts, -1);
        }
        cb = ts->cb;
        opaque = ts->opaque;
    }
    // Destroyed from inside its own callback: the core frees it when the callback returns.
    mine.reset();
    // From here on only cb touches ts: it may re-arm, delete or free the timer.
    cb(opaque);
}

void arm(QEMUTimer* ts, std::int64_t ns, bool anticipate) noexcept
{
    TimerState& st = state(ts);
    std::lock_guard lk(st.mutex);
    if (!st.timer) {
        aio::TimerList* tl = timer_list(ts->timer_list);
        if (tl == nullptr) {
            fatal("timer_mod", "timer not initialised (timer_init_full/aio_timer_init)");
        }
        const std::uint64_t gen = ++st.gen;
        try {
            st.timer = aio::Timer(*tl->context(), tl->clock(), [ts, gen] { fire(ts, gen); },
                                  aio::Scale::ns, "qemu-timer");
        } catch (...) {
            fatal_exception("timer_mod");
        }
    }
    if (anticipate) {
        st.timer.anticipate(ns);
    } else {
        st.timer.arm_at(ns);
    }
    set_expire(ts, st.timer.expire_time());
}

std::int64_t scaled(std::int64_t t, int scale) noexcept
{
    std::int64_t r;
    if (__builtin_mul_overflow(t, static_cast<std::int64_t>(scale), &r)) {
        return (t > 0) == (scale > 0) ? INT64_MAX : INT64_MIN;
    }
    return r;
}

void init(QEMUTimer* ts, aio::TimerList* tl, int scale, int attributes, QEMUTimerCB* cb,
          void* opaque) noexcept
{
    if (cb == nullptr) {
        fatal("timer_init_full", "NULL callback");
    }
    ts->expire_time = -1;
    ts->timer_list = reinterpret_cast<QEMUTimerList*>(tl);
    ts->cb = cb;
    ts->opaque = opaque;
    ts->attributes = attributes;
    ts->scale = scale;
    new (static_cast<void*>(ts->impl_.bytes_)) TimerState();
}

}  // namespace

// --- clocks ----------------------------------------------------------------------------

int64_t qemu_clock_get_ns(QEMUClockType type)
{
    return aio::clock_ns(static_cast<aio::Clock>(type));
}

void qemu_clock_enable(QEMUClockType type, bool enabled)
{
    if (type == QEMU_CLOCK_VIRTUAL) {
        try {
            aio::set_virtual_clock_enabled(enabled);
        } catch (...) {
            fatal_exception(__func__);
        }
    } else if (!enabled) {
        std::fprintf(stderr, "qemu_clock_enable: only QEMU_CLOCK_VIRTUAL can be stopped; "
                             "clock %d keeps running\n", static_cast<int>(type));
    }
}

// --- timer lists -------------------------------------------------------------------------

int64_t timerlist_deadline_ns(QEMUTimerList* tl) { return timer_list(tl)->deadline_ns(); }

QEMUClockType timerlist_get_clock(QEMUTimerList* tl)
{
    return static_cast<QEMUClockType>(timer_list(tl)->clock());
}

int64_t timerlistgroup_deadline_ns(QEMUTimerListGroup* tlg)
{
    std::int64_t d = -1;
    for (QEMUTimerList* tl : tlg->tl) {
        if (tl != nullptr) {
            d = qemu_soonest_timeout(d, timer_list(tl)->deadline_ns());
        }
    }
    return d;
}

// --- timers --------------------------------------------------------------------------------

void timer_init_full(QEMUTimer* ts, QEMUTimerListGroup* timer_list_group, QEMUClockType type,
                     int scale, int attributes, QEMUTimerCB* cb, void* opaque)
{
    QEMUTimerListGroup* tlg = timer_list_group != nullptr ? timer_list_group : &main_loop_tlg;
    if (type < 0 || type >= QEMU_CLOCK_MAX || tlg->tl[type] == nullptr) {
        fatal(__func__, "no timer list for clock %d%s", static_cast<int>(type),
              timer_list_group == nullptr ? " (call qemu_init_main_loop() first)" : "");
    }
    init(ts, timer_list(tlg->tl[type]), scale, attributes, cb, opaque);
}

void aio_timer_init_with_attrs(AioContext* ctx, QEMUTimer* ts, QEMUClockType type, int scale,
                               int attributes, QEMUTimerCB* cb, void* opaque)
{
    if (type < 0 || type >= QEMU_CLOCK_MAX) {
        fatal(__func__, "bad clock type %d", static_cast<int>(type));
    }
    init(ts, &impl(ctx)->tlg_.list(static_cast<aio::Clock>(type)), scale, attributes, cb,
         opaque);
}

void aio_timer_init(AioContext* ctx, QEMUTimer* ts, QEMUClockType type, int scale,
                    QEMUTimerCB* cb, void* opaque)
{
    aio_timer_init_with_attrs(ctx, ts, type, scale, 0, cb, opaque);
}

QEMUTimer* aio_timer_new_with_attrs(AioContext* ctx, QEMUClockType type, int scale,
                                    int attributes, QEMUTimerCB* cb, void* opaque)
{
    QEMUTimer* ts = g_new0(QEMUTimer, 1);
    aio_timer_init_with_attrs(ctx, ts, type, scale, attributes, cb, opaque);
    return ts;
}

QEMUTimer* aio_timer_new(AioContext* ctx, QEMUClockType type, int scale, QEMUTimerCB* cb,
                         void* opaque)
{
    return aio_timer_new_with_attrs(ctx, type, scale, 0, cb, opaque);
}

void timer_del(QEMUTimer* ts)
{
    TimerState& st = state(ts);
    aio::Timer victim;
    {
        std::lock_guard lk(st.mutex);
        victim = std::move(st.timer);
        set_expire(ts, -1);
    }
    // Outside the lock: if the callback is running on another thread this waits for it,
    // and the callback's trampoline takes the lock.
    victim.reset();
}

void timer_deinit(QEMUTimer* ts)
{
    timer_del(ts);
    state(ts).~TimerState();
    ts->timer_list = nullptr;
}

void timer_free(QEMUTimer* ts)
{
    if (ts != nullptr) {
        timer_deinit(ts);
        g_free(ts);
    }
}

void timer_mod_ns(QEMUTimer* ts, int64_t expire_time) { arm(ts, expire_time, false); }

void timer_mod_anticipate_ns(QEMUTimer* ts, int64_t expire_time)
{
    arm(ts, expire_time, true);
}

void timer_mod(QEMUTimer* ts, int64_t expire_time)
{
    arm(ts, scaled(expire_time, ts->scale), false);
}

void timer_mod_anticipate(QEMUTimer* ts, int64_t expire_time)
{
    arm(ts, scaled(expire_time, ts->scale), true);
}

bool timer_pending(QEMUTimer* ts)
{
    TimerState& st = state(ts);
    std::lock_guard lk(st.mutex);
    return st.timer.pending();
}

uint64_t timer_expire_time_ns(QEMUTimer* ts)
{
    TimerState& st = state(ts);
    std::lock_guard lk(st.mutex);
    return static_cast<uint64_t>(st.timer.pending() ? st.timer.expire_time() : -1);
}

bool timer_expired(QEMUTimer* timer_head, int64_t current_time)
{
    const auto expire = static_cast<std::int64_t>(timer_expire_time_ns(timer_head));
    return expire >= 0 && expire <= scaled(current_time, timer_head->scale);
}

// --- helpers -----------------------------------------------------------------------------------

int qemu_timeout_ns_to_ms(int64_t ns)
{
    if (ns < 0) {
        return -1;
    }
    if (ns == 0) {
        return 0;
    }
    const std::int64_t ms = ns / SCALE_MS + (ns % SCALE_MS != 0 ? 1 : 0);  // round up
    return ms > INT32_MAX ? INT32_MAX : static_cast<int>(ms);
}
