// SPDX-License-Identifier: LGPL-2.1-or-later
// The Context object, its lifecycle and poll(): the loop as a short list of phases.
#include "context_impl.hpp"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <system_error>

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace aio {

namespace {

[[gnu::tls_model("initial-exec")]] thread_local ContextImpl* tl_current = nullptr;

}  // namespace

int ContextImpl::current_tid() noexcept
{
    // initial-exec: read on every poll/prepare/dispatch; the default model for a shared
    // library costs a __tls_get_addr call each time.
    [[gnu::tls_model("initial-exec")]] thread_local const int tid =
        static_cast<int>(syscall(SYS_gettid));
    return tid;
}

std::atomic<unsigned> ContextImpl::fork_generation{0};

namespace {

void on_fork_child() noexcept
{
    ContextImpl::fork_generation.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

void ContextImpl::fork_fatal(const char* what) const noexcept
{
    fatal("%s() in process %d, a child forked from process %d that created the context: "
          "fork() detected; a context cannot be used across fork() (create a new one in "
          "the child), aborting",
          what, static_cast<int>(getpid()), creator_pid_);
}

ContextImpl::ContextImpl(std::string_view name) : name_(name)
{
    // Registered once per process (and inherited by children, which keep counting).
    static const int atfork = pthread_atfork(nullptr, nullptr, on_fork_child);
    if (atfork != 0) {
        throw std::system_error(atfork, std::generic_category(),
                                "aio::Context '" + name_ + "': pthread_atfork");
    }
    fork_gen_ = fork_generation.load(std::memory_order_relaxed);
    creator_pid_ = static_cast<int>(getpid());
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
        throw std::system_error(errno, std::generic_category(),
                                "aio::Context '" + name_ + "': epoll_create1");
    }
    try {
        // The wake-up notifier is an ordinary handler whose poll callback reads `notified`
        // (so busy polling sees a notify without a syscall). It never counts as progress,
        // and its read handler is the only place the eventfd is drained.
        set_fd_handler(
            notifier_.fd(),
            FdHandlers{
                .read = [this] { notifier_.test_and_clear(); },
                .write = {},
                .poll = [this] { return notified_.load(std::memory_order_relaxed); },
                .poll_ready = [] {},
            },
            false, true);
        co_bh_ = new_bh([this] { run_scheduled_coroutines(); }, "co-schedule", 0);
    } catch (...) {
        close(epfd_);
        throw;
    }
}

void ContextImpl::set_current(ContextImpl* c) noexcept { tl_current = c; }
ContextImpl* ContextImpl::get_current() noexcept { return tl_current; }

Context* Context::current() noexcept { return tl_current; }

ContextImpl::~ContextImpl()
{
    if (tl_current == this) {
        tl_current = nullptr;
    }
    finalizing_.store(true, std::memory_order_relaxed);
    if (forked()) {
        // In a forked child (a context held in a static, say, dropped at exit): the pool's
        // workers and any driving thread exist only in the parent, so nothing here may
        // wait for them or judge their state. Close our copies of the fds (the parent's
        // registrations are unaffected) and leave the memory to the exiting process.
        (void)pool_.exchange(nullptr, std::memory_order_relaxed);  // its workers are gone
        if (timerfd_ >= 0) {
            close(timerfd_);
        }
        close(epfd_);
        return;
    }
    // Queued work is dropped, running work is waited for, no completion runs from here.
    std::unique_ptr<ThreadPoolImpl>{pool_.exchange(nullptr, std::memory_order_acquire)};
    if (timerfd_ >= 0) {
        close(timerfd_);
    }
    if (owner_tid_.load(std::memory_order_relaxed) != 0) {
        fatal("finalized while being driven by thread %d", owner_tid_.load());
    }
    if (co_list_.load(std::memory_order_acquire) != nullptr) {
        fatal("finalized with a coroutine still scheduled on it (by '%s'), aborting",
              co_list_.load()->scheduled.load());
    }
    bh_enqueue(co_bh_, kBhDeleted);
    drain_bhs_at_finalize();
    // Handlers still registered are dropped silently (as GLib drops attached sources).
    // Their captures may clear other handlers while being destroyed: finalizing_ makes
    // that a no-op instead of a walk over the nodes freed here.
    FdNode* n = handlers_.exchange(nullptr, std::memory_order_relaxed);
    while (n != nullptr) {
        FdNode* next = n->next.load(std::memory_order_relaxed);
        std::unique_ptr<FdNode>{n};
        n = next;
    }
    close(epfd_);
}

void ContextImpl::fatal(const char* fmt, ...) const noexcept
{
    std::string nm;
    {
        std::lock_guard lk(name_mutex_);
        nm = name_;
    }
    std::fprintf(stderr, "aio::Context '%s': ", nm.c_str());
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fputc('\n', stderr);
    std::abort();
}

void ContextImpl::enter_driver(const char* what) noexcept
{
    check_not_forked(what);
    const int self = current_tid();
    int owner = owner_tid_.load(std::memory_order_relaxed);
    if (owner == self) {
        ++depth_;  // nested poll() or a GLib callback's nested iteration
        return;
    }
    if (owner != 0 ||
        !owner_tid_.compare_exchange_strong(owner, self, std::memory_order_acquire,
                                            std::memory_order_relaxed)) {
        fatal("%s() called from thread %d while thread %d is driving the context "
              "(only one thread may poll or dispatch a context at a time)",
              what, self, owner);
    }
    depth_ = 1;
    if (home_tid_.load(std::memory_order_relaxed) != self) {
        home_tid_.store(self, std::memory_order_relaxed);
    }
}

void ContextImpl::leave_driver() noexcept
{
    if (--depth_ == 0) {
        owner_tid_.store(0, std::memory_order_release);
    }
}

// One iteration. Phases (docs/loop.md describes them in the same order):
bool ContextImpl::poll(bool blocking)
{
    DriverScope scope(this, "poll");
    bump(stats_.iterations);
    list_lock_.inc();

    // 1. compute timeout: never sleep with a BH scheduled, nor past a timer deadline.
    std::int64_t timeout = blocking ? compute_timeout() : 0;

    // 2. busy poll (IOThreads): spin on the poll callbacks before paying for a sleep.
    IterPoll ip;
    ip.max_ns = poll_max_ns_.load(std::memory_order_relaxed);
    ReadyList ready;
    std::int64_t t0 = 0;
    if (ip.max_ns > 0) {
        t0 = monotonic_ns();
        if (timeout != 0) {
            ip.polled = true;
            if (busy_poll(ready, timeout, t0)) {
                timeout = 0;
            }
        }
    }

    // 3. announce sleep. Only a poll that may block raises notify_me; a non-blocking one
    //    re-examines everything anyway, so producers need not write the eventfd for it.
    const bool use_notify_me = timeout != 0;
    if (use_notify_me) {
        notify_me_.store(notify_me_.load(std::memory_order_relaxed) + 2,
                         std::memory_order_relaxed);
        // fence(B): notify_me before `notified`; pairs with fence(A) in notify().
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (notified_.load(std::memory_order_relaxed)) {
            timeout = 0;
        }
    }

    // 4. wait. With a zero timeout the kernel is asked only if a user fd handler exists.
    std::int64_t t_wait = 0;
    if (timeout != 0) {
        bump(stats_.blocking_waits);
        t_wait = monotonic_ns();
        fdmon_wait(ready, timeout);
    } else if (need_wait()) {
        fdmon_wait(ready, 0);
    }

    // 5. accept the notification: finish the wait before dropping notify_me, then clear
    //    `notified` before looking at any work.
    if (use_notify_me) {
        notify_me_.store(notify_me_.load(std::memory_order_relaxed) - 2,
                         std::memory_order_release);
    }
    const bool was_notified = t_wait != 0 && notified_.load(std::memory_order_relaxed);
    notify_accept();
    std::int64_t t_woke = 0;
    if (t_wait != 0 || ip.max_ns > 0) {
        t_woke = monotonic_ns();
        ip.block_ns = t_woke - t0;
    }
    if (t_wait != 0) {
        bump(stats_.sleep_ns, static_cast<std::uint64_t>(t_woke - t_wait));
        if (was_notified) {
            bump(stats_.wakeups_notify);
        } else if (ready.head != nullptr) {
            bump(stats_.wakeups_fd);
        } else {
            bump(stats_.wakeups_timer);
        }
    }

    // 6. bottom halves, 7. ready fd handlers (adapting busy-poll windows).
    bool progress = bh_poll();
    progress |= dispatch_ready(ready, &ip);

    // 8. reap handlers deleted during this walk (only at the outermost level).
    reap_deleted_handlers();
    list_lock_.dec();

    // 9. timers: each list reads `now` once and drops its lock around each callback.
    if (tlg_.run()) {
        bump(stats_.timer_runs);
        progress = true;
    }
    if (t_wait != 0) {
        bump(stats_.dispatch_ns, static_cast<std::uint64_t>(monotonic_ns() - t_woke));
    }
    return progress;
}

std::int64_t ContextImpl::compute_timeout() noexcept
{
    const std::int64_t bh = bh_timeout();
    return bh == 0 ? 0 : soonest(bh, tlg_.deadline_ns());
}

// --- ContextPtr ---------------------------------------------------------------------

ContextPtr::ContextPtr(Context* ctx) noexcept : ctx_(ctx)
{
    if (ctx_ != nullptr) {
        ctx_->ref();
    }
}

ContextPtr::~ContextPtr()
{
    if (ctx_ != nullptr) {
        ctx_->unref();
    }
}

// --- Context face -----------------------------------------------------------------

void Context::ref() noexcept { g_source_ref(ContextImpl::from(this)->source_); }
void Context::unref() noexcept { ContextImpl::from(this)->unref_source(); }

bool Context::poll(bool blocking) { return ContextImpl::from(this)->poll(blocking); }
void Context::notify() noexcept { ContextImpl::from(this)->notify(); }

std::int64_t Context::compute_timeout() noexcept
{
    return ContextImpl::from(this)->compute_timeout();
}

void Context::acquire() { ContextImpl::from(this)->user_lock_.lock(); }
void Context::release() { ContextImpl::from(this)->user_lock_.unlock(); }

BottomHalf Context::make_bh(UniqueFunction<void()> fn, const char* name)
{
    auto* c = ContextImpl::from(this);
    BhNode* node = c->new_bh(std::move(fn), name, 0);
    ref();  // dropped by BottomHalf::reset()
    return BottomHalf(node);
}

void Context::schedule(UniqueFunction<void()> fn, const char* name)
{
    auto* c = ContextImpl::from(this);
    BhNode* bh = c->new_bh(std::move(fn), name, kBhOneshot);
    // Found by valgrind (IOThread.LastReferenceDroppedInsideTheThreadDoesNotSelfJoin): the
    // one-shot ran and dropped the last reference while this thread was still notifying.
    ForeignCallRef hold(c);
    ContextImpl::bh_enqueue(bh, kBhScheduled);
}

void Context::set_name(std::string_view name)
{
    auto* c = ContextImpl::from(this);
    {
        std::lock_guard lk(c->name_mutex_);
        c->name_ = name;
    }
    g_source_set_name(c->source_, std::string(name).c_str());
}

std::string Context::name() const
{
    auto* c = ContextImpl::from(const_cast<Context*>(this));
    std::lock_guard lk(c->name_mutex_);
    return c->name_;
}

ThreadPool& Context::thread_pool()
{
    auto* c = ContextImpl::from(this);
    c->check_not_forked("thread_pool");
    // acquire pairs with the release below: a pool seen is a pool fully built.
    if (ThreadPoolImpl* p = c->pool_.load(std::memory_order_acquire)) {
        return *p;
    }
    std::lock_guard lk(c->pool_mutex_);
    if (ThreadPoolImpl* p = c->pool_.load(std::memory_order_relaxed)) {
        return *p;
    }
    c->check_not_finalizing("thread_pool");  // a new pool would outlive the context
    auto p = std::make_unique<ThreadPoolImpl>(c);
    c->pool_.store(p.get(), std::memory_order_release);
    return *p.release();
}

void Context::set_fd_monitor(FdMonitor monitor) noexcept
{
    ContextImpl::from(this)->fdmon_ = monitor;
}

}  // namespace aio
