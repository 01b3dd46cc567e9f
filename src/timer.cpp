// SPDX-License-Identifier: LGPL-2.1-or-later
// Clocks, timer lists (binary heaps under a per-list mutex) and the Timer handle.
#include "context_impl.hpp"
#include "timer_list.hpp"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <stdexcept>

#include <sys/syscall.h>
#include <unistd.h>

namespace aio {

namespace {

std::int64_t read_clock(clockid_t id) noexcept
{
    timespec ts{};
    clock_gettime(id, &ts);  // vDSO
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int this_tid() noexcept
{
    [[gnu::tls_model("initial-exec")]] thread_local const int tid =
        static_cast<int>(syscall(SYS_gettid));
    return tid;
}

// The virtual clock: monotonic time minus the time spent disabled. While disabled it
// reads the value frozen at disable time.
struct VirtualClock {
    std::atomic<std::int64_t> frozen{-1};  // >= 0 while disabled
    std::atomic<std::int64_t> offset{0};
    std::mutex mutex;                       // serialises enable/disable and the registry
    std::vector<TimerList*> lists;          // guarded by mutex: lists on this clock
};

VirtualClock& vclock()
{
    static VirtualClock v;
    return v;
}

}  // namespace

std::int64_t monotonic_ns() noexcept { return read_clock(CLOCK_MONOTONIC); }

std::int64_t clock_ns(Clock clock) noexcept
{
    switch (clock) {
    case Clock::realtime:
    case Clock::virtual_rt:
        return read_clock(CLOCK_MONOTONIC);
    case Clock::host:
        return read_clock(CLOCK_REALTIME);
    case Clock::virtual_: {
        VirtualClock& v = vclock();
        // acquire pairs with the release in set_virtual_clock_enabled(true): seeing the
        // clock running implies seeing the offset that accounts for the pause.
        std::int64_t f = v.frozen.load(std::memory_order_acquire);
        if (f >= 0) {
            return f;
        }
        return read_clock(CLOCK_MONOTONIC) - v.offset.load(std::memory_order_relaxed);
    }
    }
    return 0;
}

bool virtual_clock_enabled() noexcept
{
    return vclock().frozen.load(std::memory_order_acquire) < 0;
}

void set_virtual_clock_enabled(bool enabled)
{
    VirtualClock& v = vclock();
    std::lock_guard lk(v.mutex);
    const bool was = v.frozen.load(std::memory_order_relaxed) < 0;
    if (enabled == was) {
        return;
    }
    if (!enabled) {
        v.frozen.store(clock_ns(Clock::virtual_), std::memory_order_release);
        // A pass that read `now` before the freeze may still be firing timers; wait so
        // the caller knows no virtual timer runs after this returns.
        for (TimerList* l : v.lists) {
            l->wait_idle();
        }
        return;
    }
    const std::int64_t frozen = v.frozen.load(std::memory_order_relaxed);
    v.offset.store(read_clock(CLOCK_MONOTONIC) - frozen, std::memory_order_relaxed);
    v.frozen.store(-1, std::memory_order_release);
    for (TimerList* l : v.lists) {
        if (l->earliest() >= 0) {
            l->context()->notify();  // recompute timeouts that were "infinite"
        }
    }
}

// --- TimerList -----------------------------------------------------------------------

TimerList::TimerList(ContextImpl* ctx, Clock clock) : ctx_(ctx), clock_(clock)
{
    if (clock_ == Clock::virtual_) {
        std::lock_guard lk(vclock().mutex);
        vclock().lists.push_back(this);
    }
}

TimerList::~TimerList()
{
    if (clock_ == Clock::virtual_) {
        VirtualClock& v = vclock();
        std::lock_guard lk(v.mutex);
        std::erase(v.lists, this);
    }
}

void TimerList::sift_up(std::size_t i) noexcept
{
    TimerNode* n = heap_[i];
    while (i > 0) {
        std::size_t parent = (i - 1) / 2;
        if (!less(n, heap_[parent])) {
            break;
        }
        place(i, heap_[parent]);
        i = parent;
    }
    place(i, n);
}

void TimerList::sift_down(std::size_t i) noexcept
{
    TimerNode* n = heap_[i];
    const std::size_t size = heap_.size();
    for (;;) {
        std::size_t child = 2 * i + 1;
        if (child >= size) {
            break;
        }
        if (child + 1 < size && less(heap_[child + 1], heap_[child])) {
            ++child;
        }
        if (!less(heap_[child], n)) {
            break;
        }
        place(i, heap_[child]);
        i = child;
    }
    place(i, n);
}

void TimerList::remove_locked(TimerNode* n) noexcept
{
    const std::size_t i = n->heap_index;
    TimerNode* last = heap_.back();
    heap_.pop_back();
    n->expire.store(-1, std::memory_order_relaxed);
    if (last != n) {
        place(i, last);
        sift_up(i);
        sift_down(last->heap_index);
    }
}

void TimerList::publish_head_locked() noexcept
{
    head_expire_.store(heap_.empty() ? -1 : heap_[0]->expire.load(std::memory_order_relaxed),
                       std::memory_order_release);
}

void TimerList::arm(TimerNode* n, std::int64_t expire_ns, bool anticipate) noexcept
{
    if (expire_ns < 0) {
        expire_ns = 0;  // the past: due now
    }
    bool became_head = false;
    {
        std::lock_guard lk(mutex_);
        const std::int64_t cur = n->expire.load(std::memory_order_relaxed);
        if (anticipate && cur >= 0 && cur <= expire_ns) {
            return;
        }
        if (cur >= 0) {
            remove_locked(n);
        }
        n->expire.store(expire_ns, std::memory_order_relaxed);
        n->seq = next_seq_++;
        heap_.push_back(n);
        n->heap_index = heap_.size() - 1;
        sift_up(n->heap_index);
        became_head = n->heap_index == 0;
        if (became_head) {
            publish_head_locked();
        }
    }
    // The loop may be sleeping towards a later deadline. Not if we are the loop: it
    // recomputes its timeout before it next waits, and a notify would only make that
    // wait return at once for nothing.
    if (became_head &&
        ctx_->home_tid_.load(std::memory_order_relaxed) != ContextImpl::current_tid()) {
        ctx_->notify();
    }
}

void TimerList::cancel(TimerNode* n) noexcept
{
    std::lock_guard lk(mutex_);
    if (n->expire.load(std::memory_order_relaxed) >= 0) {
        const bool was_head = n->heap_index == 0;
        remove_locked(n);
        if (was_head) {
            publish_head_locked();  // no notify: a later wake-up is harmless
        }
    }
}

void TimerList::destroy(TimerNode* n) noexcept
{
    {
        std::unique_lock lk(mutex_);
        if (n->running > 0 && n->running_tid == this_tid()) {
            // Destroyed from its own callback: run() frees it when the callback returns.
            if (n->expire.load(std::memory_order_relaxed) >= 0) {
                remove_locked(n);
                publish_head_locked();
            }
            n->destroy_after_run = true;
            return;
        }
        ++waiters_;
        idle_cv_.wait(lk, [n] { return n->running == 0; });
        --waiters_;
        if (n->expire.load(std::memory_order_relaxed) >= 0) {
            remove_locked(n);
            publish_head_locked();
        }
    }
    std::unique_ptr<TimerNode>{n};
}

std::int64_t TimerList::deadline_ns() const noexcept
{
    const std::int64_t head = head_expire_.load(std::memory_order_acquire);
    if (head < 0 || head == INT64_MAX) {
        return -1;  // empty, or armed for "never"
    }
    if (clock_ == Clock::virtual_ && !virtual_clock_enabled()) {
        return -1;  // a stopped clock never reaches any deadline
    }
    const std::int64_t now = clock_ns(clock_);
    return head <= now ? 0 : head - now;
}

bool TimerList::run() noexcept
{
    if (head_expire_.load(std::memory_order_acquire) < 0) {
        return false;
    }
    if (clock_ == Clock::virtual_ && !virtual_clock_enabled()) {
        return false;
    }
    bool ran = false;
    std::unique_lock lk(mutex_);
    ++passes_;
    pass_tid_ = this_tid();
    // One `now` per pass: a timer re-armed by its callback for a time <= now runs again
    // in this pass, one re-armed later waits, so a 0-delay re-arm cannot starve the loop.
    const std::int64_t now = clock_ns(clock_);
    while (!heap_.empty()) {
        TimerNode* n = heap_[0];
        if (n->expire.load(std::memory_order_relaxed) > now) {
            break;
        }
        remove_locked(n);
        publish_head_locked();
        ++n->running;
        n->running_tid = pass_tid_;
        lk.unlock();  // callbacks may arm, cancel or destroy timers on this list
        n->cb();
        lk.lock();
        --n->running;
        ran = true;
        // Freed by the outermost activation only: a nested poll inside the callback may
        // have re-run (and destroyed) this very timer while the outer call still runs.
        if (n->destroy_after_run && n->running == 0) {
            lk.unlock();
            std::unique_ptr<TimerNode>{n};
            lk.lock();
        }
        if (waiters_ > 0) {
            idle_cv_.notify_all();  // destroy() from another thread is waiting on n
        }
    }
    if (--passes_ == 0 && waiters_ > 0) {
        idle_cv_.notify_all();
    }
    return ran;
}

void TimerList::wait_idle() noexcept
{
    std::unique_lock lk(mutex_);
    if (passes_ > 0 && pass_tid_ == this_tid()) {
        lk.unlock();
        ctx_->fatal("set_virtual_clock_enabled(false) called from a virtual-clock timer "
                    "callback: it would wait for its own timer pass");
    }
    ++waiters_;
    idle_cv_.wait(lk, [this] { return passes_ == 0; });
    --waiters_;
}

// --- TimerListGroup ------------------------------------------------------------------

TimerListGroup::TimerListGroup(ContextImpl* ctx)
{
    for (int i = 0; i < kClockCount; ++i) {
        lists_[i] = std::make_unique<TimerList>(ctx, static_cast<Clock>(i));
    }
}

TimerListGroup::~TimerListGroup() = default;

std::int64_t TimerListGroup::deadline_ns() const noexcept
{
    std::int64_t d = -1;
    for (const auto& l : lists_) {
        d = soonest(d, l->deadline_ns());
        if (d == 0) {
            break;
        }
    }
    return d;
}

std::int64_t TimerListGroup::earliest_monotonic_ns() const noexcept
{
    std::int64_t best = -1;
    for (const auto& l : lists_) {
        const std::int64_t head = l->earliest();
        if (head < 0 || head == INT64_MAX) {
            continue;
        }
        std::int64_t mono = head;
        switch (l->clock()) {
        case Clock::realtime:
        case Clock::virtual_rt:
            break;  // already CLOCK_MONOTONIC
        case Clock::virtual_: {
            if (!virtual_clock_enabled()) {
                continue;
            }
            mono = saturating_add(head, vclock().offset.load(std::memory_order_relaxed));
            break;
        }
        case Clock::host:
            // Wall-clock jumps are caught by the next prepare; the ms fallback still holds.
            mono = saturating_add(monotonic_ns(), head - clock_ns(Clock::host));
            break;
        }
        best = soonest(best, mono);
    }
    return best;
}

bool TimerListGroup::run() noexcept
{
    bool ran = false;
    for (const auto& l : lists_) {  // realtime, virtual, host, virtual_rt
        ran |= l->run();
    }
    return ran;
}

// --- Timer handle --------------------------------------------------------------------

Timer::Timer(Context& ctx, Clock clock, UniqueFunction<void()> cb, Scale scale, const char* name)
{
    if (!cb) {
        throw std::invalid_argument("aio::Context '" + ctx.name() + "': timer '" +
                                    (name ? name : "?") + "' has an empty callback");
    }
    auto n = std::make_unique<TimerNode>();
    n->list = &ContextImpl::from(&ctx)->tlg_.list(clock);
    n->cb = std::move(cb);
    n->name = name ? name : "timer";
    n->scale = static_cast<std::int64_t>(scale);
    ctx.ref();  // dropped in reset()
    node_ = n.release();
}

Timer::Timer(Timer&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {}

Timer& Timer::operator=(Timer&& other) noexcept
{
    if (this != &other) {
        reset();
        node_ = std::exchange(other.node_, nullptr);
    }
    return *this;
}

Timer::~Timer() { reset(); }

void Timer::reset() noexcept
{
    if (node_ == nullptr) {
        return;
    }
    TimerNode* n = std::exchange(node_, nullptr);
    ContextImpl* ctx = n->list->context();
    n->list->destroy(n);
    ctx->unref();
}

void Timer::arm_at(std::int64_t t) noexcept
{
    node_->list->arm(node_, saturating_mul(t, node_->scale), false);
}

void Timer::arm_after(std::int64_t delta) noexcept
{
    const std::int64_t now = clock_ns(node_->list->clock());
    node_->list->arm(node_, saturating_add(now, saturating_mul(delta, node_->scale)), false);
}

void Timer::anticipate(std::int64_t t) noexcept
{
    node_->list->arm(node_, saturating_mul(t, node_->scale), true);
}

void Timer::cancel() noexcept { node_->list->cancel(node_); }

bool Timer::pending() const noexcept
{
    return node_ != nullptr && node_->expire.load(std::memory_order_relaxed) >= 0;
}

std::int64_t Timer::expire_time() const noexcept
{
    return node_ != nullptr ? node_->expire.load(std::memory_order_relaxed) : -1;
}

}  // namespace aio
