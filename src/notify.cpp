// SPDX-License-Identifier: LGPL-2.1-or-later
// The notify protocol: how a producer on any thread wakes the home thread without a
// syscall unless the home thread may be asleep.
//
// Two Dekker pairs, each "write my flag, full fence, read yours":
//   producer (notify):      notified = true ; fence(A) ; read notify_me
//   poll() about to sleep:  notify_me += 2  ; fence(B) ; read notified
//   GLib prepare:           notify_me |= 1  ; fence(C) ; read the BH list (compute_timeout)
// Whatever the interleaving, either the consumer sees the producer's flag (and does not
// sleep) or the producer sees notify_me != 0 (and writes the eventfd the sleeper waits on).
// The work itself (a BH link) is published before `notified` by fence(R), and the home
// thread clears `notified` and then fences (D) before it examines work, so a notify that
// lands after the clear stays visible for the next iteration instead of being lost.
#include "context_impl.hpp"

#include <sched.h>

namespace aio {

void ContextImpl::notify() noexcept
{
    // The eventfd is shared with the parent: a child's write would wake it for nothing.
    check_not_forked("notify");
    // Remember where cross-thread notifies come from: a busy poller sharing that CPU
    // would only keep its peer from running (see busy_poll()).
    const int home = home_tid_.load(std::memory_order_relaxed);
    if (home != 0 && home != current_tid()) {
        const int cpu = sched_getcpu();  // vDSO
        if (last_notify_cpu_.load(std::memory_order_relaxed) != cpu) {
            last_notify_cpu_.store(cpu, std::memory_order_relaxed);
        }
    }
    // fence(R): everything the caller published (BH link, handler node) is visible before
    // `notified`; paired with fence(D) in notify_accept().
    std::atomic_thread_fence(std::memory_order_release);
    notified_.store(true, std::memory_order_relaxed);
    // fence(A): order the store above before the load below; pairs with fence(B) in
    // poll() and fence(C) in gsource_prepare().
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (notify_me_.load(std::memory_order_relaxed) != 0) {
        // Never skipped because `notified` was already true: that optimisation loses
        // wake-ups (the consumer may have cleared it and be about to sleep).
        notifier_.set();
        stats_.eventfd_writes.fetch_add(1, std::memory_order_relaxed);
    }
}

void ContextImpl::notify_accept() noexcept
{
    notified_.store(false, std::memory_order_relaxed);
    // fence(D): clear before examining BHs and fds; pairs with fence(R) in notify().
    std::atomic_thread_fence(std::memory_order_seq_cst);
}

}  // namespace aio
