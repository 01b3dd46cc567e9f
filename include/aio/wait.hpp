// SPDX-License-Identifier: LGPL-2.1-or-later
// Cross-thread waiting: QEMU's AIO_WAIT_WHILE / aio_wait_kick and aio_wait_bh_oneshot.
//
// A waiter polls its own context (so it keeps serving its own callbacks) while a
// predicate holds; whoever changes what the predicate reads calls kick() afterwards. The
// waiter counts itself before reading the predicate and kick() reads that count after the
// change, with a full fence on each side, so either the waiter sees the change or kick()
// sees the waiter and wakes it.
//
// Thread safety: every function may be called from any thread.
#pragma once

#include <aio/context.hpp>
#include <aio/export.hpp>
#include <aio/function.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace aio {

namespace detail {
// Registers the calling thread's waiting context for kick(); RAII.
class AIO_EXPORT WaitScope {
public:
    explicit WaitScope(Context& poll_ctx) noexcept;
    ~WaitScope();
    WaitScope(const WaitScope&) = delete;
    WaitScope& operator=(const WaitScope&) = delete;

private:
    Context* ctx_;
    WaitScope* prev_ = nullptr;
    WaitScope* next_ = nullptr;
    friend void kick_all() noexcept;
};
// The context the calling thread polls while it waits: its current context, or a
// private per-thread one for threads that have none.
AIO_EXPORT Context& waiting_context(Context& target);
AIO_EXPORT void kick_all() noexcept;
}  // namespace detail

// Wakes every thread blocked in wait_while() so it re-evaluates its predicate. Call it
// after changing anything a predicate reads. Cheap when nobody waits. Any thread.
inline void kick() noexcept { detail::kick_all(); }

// Polls until pred() is false or timeout_ns (on the realtime clock; -1 = none) expired.
// `ctx` is the context the condition concerns: the waiter polls it if the caller is its
// home thread, else the caller's own context (Context::current(), or a private one).
// Returns false on timeout. Any thread that may block.
template <class Pred>
bool wait_while(Context& ctx, Pred&& pred, std::int64_t timeout_ns = -1)
{
    Context& poll_ctx = detail::waiting_context(ctx);
    detail::WaitScope scope(poll_ctx);
    if (timeout_ns < 0) {
        while (pred()) {
            poll_ctx.poll(true);
        }
        return true;
    }
    bool expired = false;
    Timer t(poll_ctx, Clock::realtime, [&expired] { expired = true; });
    t.arm_after(timeout_ns);
    while (pred()) {
        if (expired) {
            return false;
        }
        poll_ctx.poll(true);
    }
    return true;
}

// Runs fn in ctx's home thread and returns its result (or rethrows its exception).
// Runs fn directly if the caller already is that thread; otherwise schedules a one-shot
// BH and waits (polling the caller's own context meanwhile). Any thread.
template <class Fn>
std::invoke_result_t<Fn&> run_in(Context& ctx, Fn&& fn)
{
    using R = std::invoke_result_t<Fn&>;
    if (Context::current() == &ctx) {
        return fn();
    }
    struct Slot {
        std::optional<std::conditional_t<std::is_void_v<R>, bool, R>> value;
        std::exception_ptr error;
        std::atomic<bool> done{false};
    } slot;
    ctx.schedule(
        [&slot, &fn] {
            try {
                if constexpr (std::is_void_v<R>) {
                    fn();
                    slot.value.emplace(true);
                } else {
                    slot.value.emplace(fn());
                }
            } catch (...) {
                slot.error = std::current_exception();
            }
            // release: the result is visible to the waiter that reads done (acquire).
            slot.done.store(true, std::memory_order_release);
            kick();
        },
        "run_in");
    wait_while(ctx, [&slot] { return !slot.done.load(std::memory_order_acquire); });
    if (slot.error) {
        std::rethrow_exception(slot.error);
    }
    if constexpr (!std::is_void_v<R>) {
        return std::move(*slot.value);
    }
}

}  // namespace aio
