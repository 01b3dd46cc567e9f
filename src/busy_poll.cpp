// SPDX-License-Identifier: LGPL-2.1-or-later
// Adaptive busy polling: before a blocking wait, spin on the handlers' poll callbacks
// (the context's own notifier reads `notified`) for up to a per-handler window, so a
// cross-thread wake-up costs a cache miss instead of a syscall and a sleeping CPU.
//
// A window starts at 4 us when an event arrives within max_ns (QEMU's rule) and stays
// while polling catches events. It drops when events are further apart than it can wait,
// and also when polling stops paying in a way QEMU's rule cannot see: on a CPU shared
// with the peer, the peer runs only once we stop spinning, so the event keeps arriving
// just after the window. Events further apart than max_ns trigger one try at the full
// window, because two loops ping-ponging across CPUs are slow only while neither spins
// (each waits for the other to wake up); a cool-down that doubles after every drop bounds
// what failed tries cost. An idle loop spins at most one window per wake-up.
#include "context_impl.hpp"

#include <algorithm>
#include <sched.h>
#include <stdexcept>
#include <string>

namespace aio {

namespace {

constexpr std::int64_t kInitialWindowNs = 4'000;
constexpr int kMaxCooldown = 64;

bool pollable(const FdNode* n) noexcept
{
    return n->h.poll && !n->in_poll_ready && !n->deleted.load(std::memory_order_acquire);
}

}  // namespace

bool ContextImpl::busy_poll(ReadyList& ready, std::int64_t timeout, std::int64_t t0) noexcept
{
    // Our wake-ups come from a thread on this very CPU: while we spin it cannot run, so
    // spinning only delays the event we wait for. Sleep at once instead.
    if (last_notify_cpu_.load(std::memory_order_relaxed) == sched_getcpu()) {
        return false;
    }
    std::int64_t window = 0;
    for (FdNode* n = handlers_.load(std::memory_order_acquire); n != nullptr;
         n = n->next.load(std::memory_order_acquire)) {
        if (pollable(n) && node_enabled(n)) {
            window = std::max(window, n->poll_ns.load(std::memory_order_relaxed));
        }
    }
    window = soonest(timeout, window);
    if (window <= 0) {
        return false;
    }
    bool found = false;
    std::int64_t now = t0;
    do {
        for (FdNode* n = handlers_.load(std::memory_order_acquire); n != nullptr;
             n = n->next.load(std::memory_order_acquire)) {
            if (pollable(n) && node_enabled(n) && n->h.poll()) {
                ready.add(n, kPolledReady);
                found = true;
            }
        }
        now = monotonic_ns();
    } while (!found && now - t0 < window);
    bump(stats_.busy_poll_ns, static_cast<std::uint64_t>(now - t0));
    if (found) {
        bump(stats_.busy_poll_hits);
    }
    return found;
}

void ContextImpl::adapt_poll_window(FdNode* n, bool found_by_polling, bool polled,
                                    std::int64_t block_ns) noexcept
{
    const std::int64_t max_ns = poll_max_ns_.load(std::memory_order_relaxed);
    std::int64_t w = n->poll_ns.load(std::memory_order_relaxed);
    if (found_by_polling) {
        n->late_streak = 0;
        n->poll_cooldown = 0;
        return;  // the sweet spot: polling caught it
    }
    const std::int64_t shrink = poll_shrink_.load(std::memory_order_relaxed);
    const std::int64_t grow = poll_grow_.load(std::memory_order_relaxed);
    auto drop = [&] {
        w = shrink > 0 ? w / shrink : 0;
        n->poll_cooldown = std::min(n->poll_cooldown * 2 + 1, kMaxCooldown);
        n->late_streak = 0;
    };
    if (polled && w > 0) {
        // We spun the window and still had to sleep.
        if (block_ns <= max_ns && block_ns - w < w / 2) {
            // The event came just after we stopped spinning. Once, the peer may simply
            // be a little slower than the window: grow, as QEMU does. Twice in a row, with
            // the window grown in between, it is waiting for our CPU (on a CPU shared
            // with the peer, the peer runs only once we stop spinning): drop.
            if (++n->late_streak >= 2) {
                drop();
            } else {
                w = std::min(w * (grow > 0 ? grow : 2), max_ns);
            }
        } else if (block_ns <= max_ns) {
            w = std::min(w * (grow > 0 ? grow : 2), max_ns);  // a longer spin would catch it
            n->late_streak = 0;
        } else {
            drop();  // events further apart than max_ns are not worth spinning for
        }
    } else if (n->poll_cooldown > 0) {
        --n->poll_cooldown;
    } else if (block_ns <= max_ns) {
        w = std::max(kInitialWindowNs, w);  // QEMU's start: a window would have caught it
    } else {
        // Events arrive further apart than max_ns, but maybe only because the peer sleeps
        // too: two loops ping-ponging across CPUs each wait for the other to wake up
        // (~50 us here), and become fast only if both spin. Try the full window once;
        // if that does not pay, the cool-down doubles before the next try.
        w = max_ns;
    }
    n->poll_ns.store(w, std::memory_order_relaxed);
}

void Context::set_poll_params(std::int64_t max_ns, std::int64_t grow, std::int64_t shrink)
{
    auto* c = ContextImpl::from(this);
    for (auto [what, v] : {std::pair{"max_ns", max_ns}, std::pair{"grow", grow},
                           std::pair{"shrink", shrink}}) {
        if (v < 0) {
            throw std::invalid_argument("aio::Context '" + name() + "': set_poll_params: " +
                                        what + "=" + std::to_string(v) +
                                        " must be in [0, INT64_MAX]");
        }
    }
    c->poll_max_ns_.store(max_ns, std::memory_order_relaxed);
    c->poll_grow_.store(grow, std::memory_order_relaxed);
    c->poll_shrink_.store(shrink, std::memory_order_relaxed);
    // Start every window afresh under the new limits.
    c->list_lock_.inc();
    for (FdNode* n = c->handlers_.load(std::memory_order_acquire); n != nullptr;
         n = n->next.load(std::memory_order_acquire)) {
        n->poll_ns.store(0, std::memory_order_relaxed);
    }
    c->list_lock_.dec();
    c->notify();
}

ContextStats Context::stats() const
{
    auto* c = ContextImpl::from(const_cast<Context*>(this));
    auto rd = [](const std::atomic<std::uint64_t>& v) { return v.load(std::memory_order_relaxed); };
    ContextStats s;
    s.iterations = rd(c->stats_.iterations);
    s.blocking_waits = rd(c->stats_.blocking_waits);
    s.wakeups_notify = rd(c->stats_.wakeups_notify);
    s.wakeups_fd = rd(c->stats_.wakeups_fd);
    s.wakeups_timer = rd(c->stats_.wakeups_timer);
    s.bh_runs = rd(c->stats_.bh_runs);
    s.fd_dispatches = rd(c->stats_.fd_dispatches);
    s.timer_runs = rd(c->stats_.timer_runs);
    s.eventfd_writes = rd(c->stats_.eventfd_writes);
    s.busy_poll_hits = rd(c->stats_.busy_poll_hits);
    s.busy_poll_ns = rd(c->stats_.busy_poll_ns);
    s.sleep_ns = rd(c->stats_.sleep_ns);
    s.dispatch_ns = rd(c->stats_.dispatch_ns);
    // A visit, not the lock: walking never blocks the loop or other walkers.
    struct Visit {
        LockCnt& l;
        explicit Visit(LockCnt& lc) : l(lc) { l.inc(); }
        ~Visit() { l.dec(); }
        Visit(const Visit&) = delete;
        Visit& operator=(const Visit&) = delete;
    } visit(c->list_lock_);
    for (FdNode* n = c->handlers_.load(std::memory_order_acquire); n != nullptr;
         n = n->next.load(std::memory_order_acquire)) {
        if (n->internal || n->deleted.load(std::memory_order_acquire)) {
            continue;
        }
        s.handlers.push_back(ContextStats::Handler{
            n->fd, n->name != nullptr ? n->name : "",
            n->dispatches.load(std::memory_order_relaxed),
            n->poll_ns.load(std::memory_order_relaxed)});
    }
    return s;
}

}  // namespace aio
