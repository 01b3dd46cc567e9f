// SPDX-License-Identifier: LGPL-2.1-or-later
// Bottom halves: a lock-free LIFO of scheduled nodes, drained in slices so that nested
// polls finish the outer batch first. Enqueue is O(1) and wait-free except the CAS retry;
// nothing is walked for BHs that are not scheduled.
#include "context_impl.hpp"

#include <algorithm>
#include <stdexcept>

namespace aio {

BhNode* ContextImpl::new_bh(UniqueFunction<void()> fn, const char* name, unsigned flags)
{
    check_not_forked("schedule");
    check_not_finalizing(flags & kBhOneshot ? "schedule" : "make_bh");
    if (!fn) {
        throw std::invalid_argument(std::string("aio::Context '") + this->name() +
                                    "': bottom half '" + (name ? name : "?") +
                                    "' has an empty callback");
    }
    return std::make_unique<BhNode>(this, name ? name : "bh", std::move(fn), flags).release();
}

void ContextImpl::bh_enqueue(BhNode* bh, unsigned flags) noexcept
{
    // Read ctx first: once the node is linked the home thread may run and free it.
    ContextImpl* ctx = bh->ctx;
    // seq_cst RMW: the winner of kBhPending links the node exactly once. Its ordering with
    // the dequeue's fetch_and makes a schedule during the callback re-link the node.
    unsigned old = bh->flags.fetch_or(kBhPending | flags, std::memory_order_seq_cst);
    if ((old & kBhPending) != 0) {
        // Already linked. If it was also scheduled, whoever scheduled it notified after
        // linking (or the home thread is dequeuing it now and will see our flags), so a
        // burst of schedules from many threads costs a sleeping loop one wake-up. A
        // linked but cancelled BH is different: the loop may be asleep having seen it
        // unscheduled, so that schedule must notify.
        if ((old & kBhScheduled) == 0) {
            ctx->notify();
        }
        return;
    }
    BhNode* head = ctx->bh_list_.load(std::memory_order_relaxed);
    do {
        bh->next = head;
    } while (!ctx->bh_list_.compare_exchange_weak(head, bh, std::memory_order_release,
                                                  std::memory_order_relaxed));
    ctx->notify();
}

bool ContextImpl::bh_poll() noexcept
{
    // Take everything scheduled so far; BHs scheduled from here on (including by the
    // callbacks below) wait for the next call. acquire pairs with the push's release.
    BhSlice slice;
    slice.first = bh_list_.exchange(nullptr, std::memory_order_acquire);
    *slices_tail_ = &slice;
    slices_tail_ = &slice.next;

    bool progress = false;
    // Drain from the oldest slice: a nested call first finishes what its callers took.
    while (BhSlice* s = slices_head_) {
        BhNode* bh = s->first;
        if (bh == nullptr) {
            slices_head_ = s->next;
            if (slices_head_ == nullptr) {
                slices_tail_ = &slices_head_;
            }
            continue;
        }
        s->first = bh->next;
        // Clear PENDING before the callback so a schedule during it re-links the node.
        // seq_cst: the callback must see what the scheduler published, and a scheduler
        // that sees PENDING clear must link again.
        unsigned f = bh->flags.fetch_and(~(kBhPending | kBhScheduled | kBhIdle),
                                         std::memory_order_seq_cst);
        if ((f & (kBhScheduled | kBhDeleted)) == kBhScheduled) {
            if ((f & kBhIdle) == 0) {
                progress = true;
            }
            bump(stats_.bh_runs);
            bh->cb();
        }
        if ((f & (kBhDeleted | kBhOneshot)) != 0) {
            std::unique_ptr<BhNode>{bh};
        }
    }
    return progress;
}

namespace {

// What one chain holds: kNone, kIdleOnly, or kRunnable (a non-idle BH to run).
enum Pending { kNone = 0, kIdleOnly = 1, kRunnable = 2 };

Pending scan_chain(const BhNode* bh) noexcept
{
    Pending r = kNone;
    for (; bh != nullptr; bh = bh->next) {
        // acquire: other threads write the flags concurrently.
        unsigned f = bh->flags.load(std::memory_order_acquire);
        if ((f & (kBhScheduled | kBhDeleted)) == kBhScheduled) {
            if ((f & kBhIdle) == 0) {
                return kRunnable;
            }
            r = kIdleOnly;
        }
    }
    return r;
}

Pending scan_all(const std::atomic<BhNode*>& list, const BhSlice* slices) noexcept
{
    Pending r = scan_chain(list.load(std::memory_order_acquire));
    for (const BhSlice* s = slices; s != nullptr && r != kRunnable; s = s->next) {
        r = std::max(r, scan_chain(s->first));
    }
    return r;
}

}  // namespace

bool ContextImpl::bh_any_scheduled() const noexcept
{
    return scan_all(bh_list_, slices_head_) != kNone;
}

std::int64_t ContextImpl::bh_timeout() noexcept
{
    constexpr std::int64_t kIdleCapNs = 10'000'000;  // idle BHs are polled every 10 ms
    switch (scan_all(bh_list_, slices_head_)) {
    case kRunnable:
        return 0;
    case kIdleOnly:
        return kIdleCapNs;
    case kNone:
        break;
    }
    return -1;
}

void ContextImpl::drain_bhs_at_finalize() noexcept
{
    BhNode* bh = bh_list_.exchange(nullptr, std::memory_order_acquire);
    while (bh != nullptr) {
        BhNode* next = bh->next;
        unsigned f = bh->flags.load(std::memory_order_acquire);
        if ((f & kBhDeleted) == 0) {
            fatal("BH '%s' leaked (still scheduled when the context was finalized), aborting",
                  bh->name);
        }
        std::unique_ptr<BhNode>{bh};
        bh = next;
    }
}

// --- the public handle --------------------------------------------------------------

BottomHalf::BottomHalf(BottomHalf&& other) noexcept : node_(std::exchange(other.node_, nullptr))
{
}

BottomHalf& BottomHalf::operator=(BottomHalf&& other) noexcept
{
    if (this != &other) {
        reset();
        node_ = std::exchange(other.node_, nullptr);
    }
    return *this;
}

BottomHalf::~BottomHalf() { reset(); }

void BottomHalf::schedule() noexcept
{
    ContextImpl::bh_enqueue(node_, kBhScheduled);
}

void BottomHalf::schedule_idle() noexcept
{
    ContextImpl::bh_enqueue(node_, kBhScheduled | kBhIdle);
}

void BottomHalf::cancel() noexcept
{
    // A full RMW: a consumer that cancels and then re-reads shared state must not have
    // that read hoisted above the cancel.
    node_->flags.fetch_and(~kBhScheduled, std::memory_order_seq_cst);
}

void BottomHalf::reset() noexcept
{
    if (node_ == nullptr) {
        return;
    }
    BhNode* bh = std::exchange(node_, nullptr);
    ContextImpl* ctx = bh->ctx;  // bh may be freed once enqueued
    ContextImpl::bh_enqueue(bh, kBhDeleted);
    ctx->unref_source();  // the reference make_bh() took
}

Context* BottomHalf::context() const noexcept
{
    return node_ != nullptr ? node_->ctx : nullptr;
}

}  // namespace aio
