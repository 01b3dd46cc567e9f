// SPDX-License-Identifier: LGPL-2.1-or-later
// Private: the state behind aio::Context and the helpers the loop phases share.
#pragma once

#include <aio/context.hpp>
#include <aio/detail/co_core.hpp>
#include <aio/lock_cnt.hpp>

#include "thread_pool_impl.hpp"
#include "timer_list.hpp"

#include <glib.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <poll.h>
#include <ctime>

namespace aio {

class ContextImpl;

// BH flag bits. All transitions are atomic RMWs on BhNode::flags.
enum : unsigned {
    kBhPending = 1u << 0,    // linked in bh_list_ or a slice; guarantees a single link
    kBhScheduled = 1u << 1,  // the callback should run
    kBhDeleted = 1u << 2,    // free without running (beats kBhScheduled)
    kBhOneshot = 1u << 3,    // free right after running
    kBhIdle = 1u << 4,       // does not force a zero timeout; running it is not progress
};

struct BhNode {
    BhNode(ContextImpl* c, const char* n, UniqueFunction<void()> f, unsigned initial) noexcept
        : ctx(c), name(n), flags(initial), cb(std::move(f))
    {
    }

    ContextImpl* const ctx;
    const char* const name;
    std::atomic<unsigned> flags;
    // Link in bh_list_ or a slice. Written by the one thread that won the kBhPending bit,
    // before publication; read only by the home thread after taking the list.
    BhNode* next = nullptr;
    UniqueFunction<void()> cb;
};

// A batch of BHs taken from bh_list_ by one bh_poll() call. Lives on that call's stack;
// nested calls drain older slices first. Home thread only.
struct BhSlice {
    BhNode* first = nullptr;
    BhSlice* next = nullptr;
};

struct FdNode {
    int fd = -1;
    bool external = false;
    bool internal = false;  // the context's own notifier: never counts as progress
    short events = 0;       // poll(2) interest
    FdHandlers h;
    // Set under list_lock_'s lock; read by walkers without it.
    std::atomic<bool> deleted{false};
    // The handler list; a node is published with a release store of its predecessor's
    // link (or the head), walkers read with acquire.
    std::atomic<FdNode*> next{nullptr};
    FdNode* deleted_next = nullptr;  // guarded by list_lock_'s lock
    // Bumped (release) before every epoll_ctl that hands this node to the kernel; read
    // (acquire) when epoll_wait hands it back. See epoll_update().
    std::atomic<unsigned> epoll_publish{0};

    const char* name = nullptr;  // FdHandlers::name

    // Busy polling and stats. poll_ns is written by the home thread (and reset by
    // set_poll_params from any thread), read by stats() from any thread.
    std::atomic<std::int64_t> poll_ns{0};
    std::atomic<std::uint64_t> dispatches{0};  // written by the home thread only
    int poll_cooldown = 0;        // home thread: iterations before the window may regrow
    int late_streak = 0;          // home thread: events seen just after the window ended
    bool in_poll_ready = false;   // home thread: its poll_ready is running (no re-entry)
    std::uint64_t last_iter = 0;  // home thread: iteration of the last dispatch
    std::int64_t streak_start_ns = 0;  // home thread: first of consecutive dispatches
    bool warned_busy = false;     // home thread: "ready on every iteration" reported

    // Ready-list membership, home thread only. A nested poll may steal a node from an
    // outer call's list, so the link is doubly linked (prev points at the pointer to us).
    FdNode* ready_next = nullptr;
    FdNode** ready_prev = nullptr;
    short revents = 0;
};


// A non-negative ns timeout as ppoll's timespec.
inline timespec ns_to_timespec(std::int64_t ns) noexcept
{
    return timespec{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

// In FdNode::revents: found ready by busy polling (run poll_ready), not by the kernel.
constexpr short kPolledReady = 0x4000;

// Nodes reported ready by one wait, dispatched by the same poll call.
struct ReadyList {
    FdNode* head = nullptr;

    static void unlink(FdNode* n) noexcept
    {
        if (n->ready_prev != nullptr) {
            *n->ready_prev = n->ready_next;
            if (n->ready_next != nullptr) {
                n->ready_next->ready_prev = n->ready_prev;
            }
            n->ready_prev = nullptr;
            n->ready_next = nullptr;
        }
    }

    void add(FdNode* n, short revents) noexcept
    {
        // Busy polling found it before the kernel did: poll_ready still does the work.
        const short keep = n->ready_prev != nullptr ? (n->revents & kPolledReady) : 0;
        unlink(n);  // dispatched once, by the innermost poll that saw it
        n->revents = static_cast<short>(revents | keep);
        n->ready_next = head;
        n->ready_prev = &head;
        if (head != nullptr) {
            head->ready_prev = &n->ready_next;
        }
        head = n;
    }

    FdNode* pop() noexcept
    {
        FdNode* n = head;
        if (n != nullptr) {
            unlink(n);
        }
        return n;
    }
};

// The GSource that carries a context. GLib allocates it; impl is owned by it and
// destroyed in finalize.
struct ContextSource {
    GSource base;
    ContextImpl* impl;
};

// GLib's reference counting is invisible to ThreadSanitizer (GLib is not instrumented),
// so the edge "last use on one thread -> finalize on another" is annotated by hand.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AIO_CTX_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) && !defined(AIO_CTX_TSAN)
#define AIO_CTX_TSAN 1
#endif
#if defined(AIO_CTX_TSAN)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
inline void tsan_release(void* a) noexcept { __tsan_release(a); }
inline void tsan_acquire(void* a) noexcept { __tsan_acquire(a); }
#else
inline void tsan_release(void*) noexcept {}
inline void tsan_acquire(void*) noexcept {}
#endif

class ContextImpl final : public Context {
public:
    // Drops a GSource reference; the release pairs with the acquire in finalize.
    void unref_source() noexcept
    {
        GSource* s = source_;  // read before the release: after it we may be gone
        tsan_release(this);
        g_source_unref(s);
    }

    explicit ContextImpl(std::string_view name);
    ~ContextImpl();

    static ContextImpl* from(Context* c) noexcept { return static_cast<ContextImpl*>(c); }
    static ContextImpl* from(GSource* s) noexcept
    {
        return reinterpret_cast<ContextSource*>(s)->impl;
    }

    // --- notify protocol (notify.cpp) -----------------------------------------------
    void notify() noexcept;
    void notify_accept() noexcept;

    // --- bottom halves (bh.cpp) -----------------------------------------------------
    BhNode* new_bh(UniqueFunction<void()> fn, const char* name, unsigned flags);
    static void bh_enqueue(BhNode* bh, unsigned flags) noexcept;
    bool bh_poll() noexcept;
    bool bh_any_scheduled() const noexcept;
    std::int64_t bh_timeout() noexcept;
    // soonest(bh_timeout(), timer deadline): the wait a blocking iteration may use.
    std::int64_t compute_timeout() noexcept;
    void drain_bhs_at_finalize() noexcept;

    // --- fd handlers (fd_handlers.cpp) ----------------------------------------------
    void set_fd_handler(int fd, FdHandlers h, bool external, bool internal);
    void clear_fd_handler(int fd) noexcept;
    // What one poll() iteration knew about busy polling, for window adaptation.
    struct IterPoll {
        std::int64_t max_ns = 0;    // poll_max_ns_ for this iteration; 0 = off
        bool polled = false;        // a busy loop ran before the wait
        std::int64_t block_ns = 0;  // from entering poll() to the end of the wait
    };
    bool dispatch_ready(ReadyList& ready, const IterPoll* it = nullptr) noexcept;
    void note_dispatch(FdNode* n) noexcept;
    // Busy polls the poll callbacks for up to their windows (capped by timeout). Puts
    // what it finds on `ready` and returns whether it found anything. Home thread.
    bool busy_poll(ReadyList& ready, std::int64_t timeout, std::int64_t t0) noexcept;
    // Grows or shrinks the window of a dispatched handler (see set_poll_params).
    void adapt_poll_window(FdNode* n, bool found_by_polling, bool polled,
                           std::int64_t block_ns) noexcept;
    void reap_deleted_handlers() noexcept;
    // Marks n deleted; returns it if it can be freed now (after unlock), else defers it.
    FdNode* retire_locked(FdNode* n) noexcept;
    void set_external_disabled_locked(bool disabled) noexcept;
    bool node_enabled(const FdNode* n) const noexcept
    {
        return !n->external || external_disable_cnt_.load(std::memory_order_relaxed) == 0;
    }

    // --- fd monitors (fdmon/*.cpp) --------------------------------------------------
    // Wait up to timeout_ns (-1 forever, 0 not at all) and put ready nodes on `ready`.
    // Called with list_lock_ count held.
    void fdmon_wait(ReadyList& ready, std::int64_t timeout_ns) noexcept;
    void fdmon_poll_wait(ReadyList& ready, std::int64_t timeout_ns) noexcept;
    void fdmon_epoll_wait(ReadyList& ready, std::int64_t timeout_ns) noexcept;
    void fdmon_epoll_harvest(ReadyList& ready, int timeout_ms) noexcept;
    bool need_wait() const noexcept
    {
        return kernel_wait_cnt_.load(std::memory_order_relaxed) > 0;
    }

    // --- the loop (context.cpp) -----------------------------------------------------
    bool poll(bool blocking);
    void enter_driver(const char* what) noexcept;
    void leave_driver() noexcept;
    // --- fork() and finalization guards (context.cpp) ------------------------------
    // A context belongs to the process that created it: its epoll set and eventfd are
    // shared with a forked child, and the threads that drive it or run its pool exist only
    // in the parent. A pthread_atfork() child handler bumps the process-wide generation,
    // so the check on every entry point costs one relaxed load.
    static std::atomic<unsigned> fork_generation;
    bool forked() const noexcept
    {
        return fork_generation.load(std::memory_order_relaxed) != fork_gen_;
    }
    void check_not_forked(const char* what) const noexcept
    {
        if (forked()) [[unlikely]] {
            fork_fatal(what);
        }
    }
    [[noreturn]] void fork_fatal(const char* what) const noexcept;
    // Calls made while the context is being finalized (from callback captures that the
    // finalizer destroys, or from a pool job it waits for) must not touch the dying
    // lists: clearing is a no-op then, adding aborts.
    void check_not_finalizing(const char* what) const noexcept
    {
        if (finalizing_.load(std::memory_order_relaxed)) [[unlikely]] {
            fatal("%s() while the context is being finalized (from a callback's captured "
                  "state or a pool job), aborting", what);
        }
    }

    [[noreturn]] void fatal(const char* fmt, ...) const noexcept
        __attribute__((format(printf, 2, 3)));

    // The calling thread's current context (Context::current()).
    static void set_current(ContextImpl* c) noexcept;
    static ContextImpl* get_current() noexcept;

    // --- GSource (gsource.cpp) ------------------------------------------------------
    void ensure_glib_mode() noexcept;

    GSource* source_ = nullptr;

    unsigned fork_gen_ = 0;  // fork_generation at creation; immutable
    int creator_pid_ = 0;    // immutable
    std::atomic<bool> finalizing_{false};  // set once, when finalization begins

    mutable std::mutex name_mutex_;
    std::string name_;  // guarded by name_mutex_

    // Bottom halves scheduled since the last bh_poll: a lock-free LIFO stack. Any thread
    // pushes (CAS); only the home thread takes the whole list (exchange).
    std::atomic<BhNode*> bh_list_{nullptr};
    // Slices being drained, oldest first. Home thread only.
    BhSlice* slices_head_ = nullptr;
    BhSlice** slices_tail_ = &slices_head_;

    // The notify protocol (see notify.cpp for the fence pairs).
    // notify_me: bit 0 = GLib's prepare..check window, bits 1.. = 2 x poll() calls that
    // may sleep. Written only by the home thread; read by any thread.
    std::atomic<unsigned> notify_me_{0};
    // Set by notify() from any thread, cleared by the home thread before it looks at work.
    std::atomic<bool> notified_{false};
    EventNotifier notifier_;

    // The fd-handler list. Walkers (the home thread) hold a count; writers (any thread)
    // hold the lock. Nodes are freed only with the lock held and the count zero.
    LockCnt list_lock_;
    std::atomic<FdNode*> handlers_{nullptr};
    std::atomic<FdNode*> deleted_handlers_{nullptr};  // written under the lock; read as a hint
    std::unordered_map<int, FdNode*> by_fd_;           // guarded by list_lock_'s lock
    // Live handlers whose readiness only the kernel can report: non-zero means even a
    // zero-timeout iteration asks the kernel. Without busy polling that is every user
    // handler (QEMU counts only those lacking io_poll and so starves the others while BHs
    // keep the timeout at zero); the context's own notifier is exempt, it is read through
    // `notified`. Updated under the lock, read as a hint.
    std::atomic<int> kernel_wait_cnt_{0};
    std::atomic<int> live_handlers_{0};  // updated under the lock, read as a hint
    std::atomic<int> external_disable_cnt_{0};  // changed under the lock
    int epfd_ = -1;

    // The thread driving the context (a kernel tid, 0 if none) and its nesting depth.
    std::atomic<int> owner_tid_{0};
    // The last thread that drove it (0: never); a hint for wait_while().
    std::atomic<int> home_tid_{0};
    static int current_tid() noexcept;
    int depth_ = 0;  // owner thread only

    FdMonitor fdmon_ = FdMonitor::automatic;  // home thread
    std::atomic<bool> glib_mode_{false};
    std::once_flag glib_once_;
    gpointer epoll_tag_ = nullptr;  // set once under glib_once_
    std::vector<pollfd> pollfds_;   // poll(2) backend scratch, home thread
    std::vector<FdNode*> pollnodes_;

    std::recursive_mutex user_lock_;

    // The CPU the last cross-thread notify() ran on (-1: none yet); a hint, relaxed.
    std::atomic<int> last_notify_cpu_{-1};

    // Adaptive busy polling parameters (set from any thread; a stale read is harmless).
    std::atomic<std::int64_t> poll_max_ns_{0};
    std::atomic<std::int64_t> poll_grow_{0};
    std::atomic<std::int64_t> poll_shrink_{0};

    // Stats: written by the home thread (or by notifiers, for eventfd_writes) with relaxed
    // increments, read by stats() from any thread.
    struct Counters {
        std::atomic<std::uint64_t> iterations{0};
        std::atomic<std::uint64_t> blocking_waits{0};
        std::atomic<std::uint64_t> wakeups_notify{0};
        std::atomic<std::uint64_t> wakeups_fd{0};
        std::atomic<std::uint64_t> wakeups_timer{0};
        std::atomic<std::uint64_t> bh_runs{0};
        std::atomic<std::uint64_t> fd_dispatches{0};
        std::atomic<std::uint64_t> timer_runs{0};
        std::atomic<std::uint64_t> eventfd_writes{0};
        std::atomic<std::uint64_t> busy_poll_hits{0};
        std::atomic<std::uint64_t> busy_poll_ns{0};
        std::atomic<std::uint64_t> sleep_ns{0};
        std::atomic<std::uint64_t> dispatch_ns{0};
    } stats_;
    // Single-writer increment (no RMW): the home thread owns these counters.
    static void bump(std::atomic<std::uint64_t>& c, std::uint64_t by = 1) noexcept
    {
        c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
    }

    // Coroutines scheduled onto this context (any thread pushes, lock-free) and the BH
    // that runs them in FIFO order. The BH holds no context reference.
    std::atomic<detail::PromiseBase*> co_list_{nullptr};
    BhNode* co_bh_ = nullptr;
    void run_scheduled_coroutines() noexcept;

    // Created on first use; destroyed first at finalization (it deletes its BH).
    std::atomic<ThreadPoolImpl*> pool_{nullptr};
    std::mutex pool_mutex_;  // serialises creation

    // One timer list per clock; each locks itself.
    TimerListGroup tlg_{this};
    // GLib mode only: a timerfd in the epoll set, armed to the earliest deadline so GLib
    // (whose poll timeout is whole ms) wakes at the right ns. -1 if unavailable.
    int timerfd_ = -1;
    std::int64_t timerfd_armed_ = -1;  // absolute CLOCK_MONOTONIC ns; home thread
    void arm_glib_timerfd() noexcept;
};

// Holds a context reference across a call made from a thread that is not driving the
// context: what the call publishes (a one-shot BH, a handler) may run on the driving
// thread and drop the last reference, the caller's own included, before the call has
// finished notifying. The driving thread needs none: nothing it publishes runs before it
// returns to the loop.
class ForeignCallRef {
public:
    explicit ForeignCallRef(ContextImpl* c) noexcept
        : c_(c->source_ != nullptr &&
                     c->owner_tid_.load(std::memory_order_relaxed) != ContextImpl::current_tid()
                 ? c
                 : nullptr)
    {
        if (c_ != nullptr) {
            g_source_ref(c_->source_);
        }
    }
    ~ForeignCallRef()
    {
        if (c_ != nullptr) {
            c_->unref_source();
        }
    }
    ForeignCallRef(const ForeignCallRef&) = delete;
    ForeignCallRef& operator=(const ForeignCallRef&) = delete;

private:
    ContextImpl* c_;
};

// RAII for enter_driver/leave_driver plus a reference that keeps the context alive
// while callbacks run (a callback may drop the last outside reference).
class DriverScope {
public:
    DriverScope(ContextImpl* c, const char* what) noexcept : c_(c)
    {
        c_->enter_driver(what);
        g_source_ref(c_->source_);
    }
    ~DriverScope()
    {
        c_->leave_driver();
        c_->unref_source();
    }
    DriverScope(const DriverScope&) = delete;
    DriverScope& operator=(const DriverScope&) = delete;

private:
    ContextImpl* c_;
};

}  // namespace aio
