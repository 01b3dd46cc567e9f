// SPDX-License-Identifier: LGPL-2.1-or-later
// wait_while()/kick(): the waiter registry and the Dekker pair that keeps kicks from
// being lost.
#include <aio/wait.hpp>

#include "context_impl.hpp"

#include <mutex>

namespace aio::detail {

namespace {

std::atomic<unsigned> g_num_waiters{0};
std::mutex g_waiters_mutex;
WaitScope* g_waiters = nullptr;  // guarded by g_waiters_mutex

}  // namespace

WaitScope::WaitScope(Context& poll_ctx) noexcept : ctx_(&poll_ctx)
{
    {
        std::lock_guard lk(g_waiters_mutex);
        next_ = g_waiters;
        if (next_ != nullptr) {
            next_->prev_ = this;
        }
        g_waiters = this;
        g_num_waiters.fetch_add(1, std::memory_order_relaxed);
    }
    // Full fence: the waiter count before the caller reads the predicate; pairs with the
    // fence in kick_all() (change, fence, read the count).
    std::atomic_thread_fence(std::memory_order_seq_cst);
}

WaitScope::~WaitScope()
{
    std::lock_guard lk(g_waiters_mutex);
    (prev_ != nullptr ? prev_->next_ : g_waiters) = next_;
    if (next_ != nullptr) {
        next_->prev_ = prev_;
    }
    g_num_waiters.fetch_sub(1, std::memory_order_relaxed);
}

void kick_all() noexcept
{
    // Full fence: the caller's change before reading the count; pairs with WaitScope.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (g_num_waiters.load(std::memory_order_relaxed) == 0) {
        return;
    }
    std::lock_guard lk(g_waiters_mutex);
    for (WaitScope* w = g_waiters; w != nullptr; w = w->next_) {
        w->ctx_->notify();  // a poll(true) woken by notify returns and re-checks
    }
}

Context& waiting_context(Context& target)
{
    Context* cur = Context::current();
    if (cur != nullptr) {
        return *cur;  // keep serving our own context while we wait
    }
    // No context of our own. If we are the thread that drives `target` (or nobody ever
    // has), polling it is right: its callbacks may be what the predicate waits for.
    // Otherwise a private per-thread context gives us something to sleep in that kick()
    // can wake.
    const int home = ContextImpl::from(&target)->home_tid_.load(std::memory_order_relaxed);
    if (home == 0 || home == ContextImpl::current_tid()) {
        return target;
    }
    thread_local ContextPtr private_ctx;
    if (!private_ctx) {
        private_ctx = Context::create("wait-while");
    }
    return *private_ctx;
}

}  // namespace aio::detail
