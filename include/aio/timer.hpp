// SPDX-License-Identifier: LGPL-2.1-or-later
// Clocks and timers (QEMU's QEMUClockType / QEMUTimer, with O(log n) timer lists).
//
// Every context owns one timer list per clock, each with its own mutex, so timers can be
// armed, moved and cancelled from any thread without acquire(). Timers run in the
// context's home thread, after bottom halves and fd handlers, never before their
// deadline. Equal deadlines fire in arming order.
//
// Thread safety: Timer members may be called from any thread, concurrently with the loop
// and with each other, except move-assignment and destruction, which need exclusive
// access to the handle. Destroying a Timer (even from inside its own callback) cancels
// it; destroying it from another thread while its callback runs waits for the callback.
#pragma once

#include <aio/export.hpp>
#include <aio/function.hpp>

#include <cstdint>

namespace aio {

class Context;
struct TimerNode;

enum class Clock {
    realtime,    // CLOCK_MONOTONIC; runs always
    virtual_,    // monotonic, but stands still while disabled (set_virtual_clock_enabled)
    host,        // CLOCK_REALTIME: wall clock, may jump (settime, NTP)
    virtual_rt,  // CLOCK_MONOTONIC; QEMU's clock for icount warping
};
inline constexpr int kClockCount = 4;

// Units a Timer's arm_at()/arm_after() arguments are expressed in.
enum class Scale : std::int64_t { ns = 1, us = 1'000, ms = 1'000'000 };

// The clock's current time in ns. Any thread; a vDSO read, no syscall.
AIO_EXPORT std::int64_t clock_ns(Clock clock) noexcept;
inline std::int64_t clock_get(Clock clock, Scale scale) noexcept
{
    return clock_ns(clock) / static_cast<std::int64_t>(scale);
}

// Pauses or resumes the virtual clock for the whole process. Disabling waits until no
// timer pass of a virtual-clock list is running (in any context), so calling it from a
// virtual-clock timer's callback aborts with a message. Enabling wakes every context
// with virtual timers. Any thread.
AIO_EXPORT void set_virtual_clock_enabled(bool enabled);
AIO_EXPORT bool virtual_clock_enabled() noexcept;

class AIO_EXPORT Timer {
public:
    Timer() noexcept = default;
    // A timer on `ctx`'s list for `clock`; not armed. `name` must be a static string.
    // Keeps the context alive. Throws std::invalid_argument for an empty callback.
    Timer(Context& ctx, Clock clock, UniqueFunction<void()> cb, Scale scale = Scale::ns,
          const char* name = "timer");
    Timer(Timer&& other) noexcept;
    Timer& operator=(Timer&& other) noexcept;
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;
    ~Timer();

    // Arms (or moves) the timer to fire at absolute time t (in the timer's scale, on its
    // clock). A time in the past fires on the next iteration (or, when a timer re-arms
    // itself from its callback for a time <= that pass's `now`, again in the same pass,
    // as in QEMU: a callback that always does so never lets the pass end; use
    // arm_after(0) to run once per iteration). INT64_MAX never fires. Wakes the loop if
    // this became the list's earliest deadline and the caller is not the loop itself.
    // Any thread.
    void arm_at(std::int64_t t) noexcept;
    // arm_at(now + delta), saturating. Any thread.
    void arm_after(std::int64_t delta) noexcept;
    // Like arm_at, but only ever moves an armed timer earlier. Any thread.
    void anticipate(std::int64_t t) noexcept;
    // Disarms; never wakes the loop. A no-op if not armed. Any thread.
    void cancel() noexcept;
    // Whether armed. Any thread (a snapshot).
    [[nodiscard]] bool pending() const noexcept;
    // Deadline in ns on the timer's clock, or -1 if not armed. Any thread (a snapshot).
    [[nodiscard]] std::int64_t expire_time() const noexcept;
    // Destroys the timer now (what the destructor does); the handle becomes empty.
    void reset() noexcept;

    explicit operator bool() const noexcept { return node_ != nullptr; }

private:
    TimerNode* node_ = nullptr;
};

}  // namespace aio
