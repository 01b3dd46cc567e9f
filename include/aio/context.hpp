// SPDX-License-Identifier: LGPL-2.1-or-later
// aio::Context: QEMU's AioContext as a GLib GSource.
//
// A Context owns bottom halves, fd handlers and a wake-up notifier. It is driven in one of
// two ways, never both at the same instant:
//   - poll(blocking) from its home thread (an I/O thread's loop), or
//   - a GMainContext it is attached to (gsource() / attach()), iterated by the thread
//     that owns that GMainContext (a GTK application's main loop).
// Callbacks always run in the thread that drives the context. poll() may be called
// recursively from a callback.
//
// One poll iteration runs these phases, in this order (docs/loop.md repeats them):
//   1. compute timeout   0 if a bottom half is scheduled, 10 ms if only idle ones are,
//                        else the earliest timer deadline
//   2. busy poll         spin on poll callbacks for the adaptive window (if enabled)
//   3. announce sleep    notify_me += 2, full fence, re-check `notified`
//   4. wait              poll(2) or epoll on the handler fds and the notifier
//   5. accept notify     notify_me -= 2; notified = false, full fence
//   6. bottom halves
//   7. ready fd handlers (read before write; poll_ready for busy-polled ones)
//   8. reap deleted handlers (outermost walker only)
//   9. timers
//
// Thread safety: every member marked "Any thread" may be called from any thread
// concurrently with the loop and with each other; they do their own locking. Members
// marked "Home thread" must be called by the thread that drives the context. A caller
// must hold a reference (ContextPtr) for as long as it uses the context.
//
// fork(): a context belongs to the process that created it (a child shares its epoll set
// and eventfd with the parent, and has none of its threads). In a forked child, driving
// it, changing its handlers, scheduling on it or using its pool aborts with a message
// that says so; dropping the last reference there only closes the child's copies of the
// fds. Create a new context in the child instead.
#pragma once

#include <aio/bottom_half.hpp>
#include <aio/event_notifier.hpp>
#include <aio/export.hpp>
#include <aio/function.hpp>
#include <aio/thread_pool.hpp>
#include <aio/timer.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

typedef struct _GSource GSource;            // NOLINT: GLib's own spelling
typedef struct _GMainContext GMainContext;  // NOLINT

namespace aio {

class Context;

// A counted reference to a Context (the count is the GSource's own). Copying takes a
// reference, destruction drops one; the last one finalizes the context.
// Thread safety: distinct ContextPtr objects may be used from any thread; one object is
// not itself synchronised.
class AIO_EXPORT ContextPtr {
public:
    ContextPtr() noexcept = default;
    ContextPtr(std::nullptr_t) noexcept {}
    // Takes a new reference to ctx (may be null).
    explicit ContextPtr(Context* ctx) noexcept;
    ContextPtr(const ContextPtr& other) noexcept : ContextPtr(other.ctx_) {}
    ContextPtr(ContextPtr&& other) noexcept : ctx_(std::exchange(other.ctx_, nullptr)) {}
    ContextPtr& operator=(ContextPtr other) noexcept
    {
        std::swap(ctx_, other.ctx_);
        return *this;
    }
    ~ContextPtr();

    Context* get() const noexcept { return ctx_; }
    Context* operator->() const noexcept { return ctx_; }
    Context& operator*() const noexcept { return *ctx_; }
    explicit operator bool() const noexcept { return ctx_ != nullptr; }
    void reset() noexcept { ContextPtr().swap(*this); }
    void swap(ContextPtr& other) noexcept { std::swap(ctx_, other.ctx_); }
    friend bool operator==(const ContextPtr& a, const ContextPtr& b) noexcept
    {
        return a.ctx_ == b.ctx_;
    }

private:
    Context* ctx_ = nullptr;
};

// Callbacks for one fd. read runs when the fd reports IN, HUP or ERR; write when it
// reports OUT or ERR; read before write. `poll` is an optional cheap, side-effect-free
// readiness check used by busy polling; `poll_ready` does the work when `poll` said
// ready. `poll` requires `poll_ready`. All run in the context's home thread.
struct FdHandlers {
    UniqueFunction<void()> read{};
    UniqueFunction<void()> write{};
    UniqueFunction<bool()> poll{};
    UniqueFunction<void()> poll_ready{};
    // Names the handler in stats() and in the "ready on every iteration" warning. Must
    // have static storage duration (it is kept, not copied).
    const char* name = nullptr;
};

// Which fd monitor poll() uses. `automatic` picks poll(2) below 64 handlers and epoll
// above (and always epoll while a GMainContext drives the context).
enum class FdMonitor { automatic, poll, epoll };

// Counters describing why a loop is awake (see Context::stats()). Relaxed snapshots:
// each value is exact, the set is not one atomic picture.
struct ContextStats {
    std::uint64_t iterations = 0;       // poll() calls and GLib dispatches
    std::uint64_t blocking_waits = 0;   // iterations that asked the kernel to wait
    std::uint64_t wakeups_notify = 0;   // waits ended by notify() (a BH or a kick)
    std::uint64_t wakeups_fd = 0;       // waits ended by a user fd
    std::uint64_t wakeups_timer = 0;    // waits that ended with a timer due
    std::uint64_t bh_runs = 0;          // bottom-half callbacks run
    std::uint64_t fd_dispatches = 0;    // user fd callbacks run (read, write, poll_ready)
    std::uint64_t timer_runs = 0;       // iterations in which a timer ran
    std::uint64_t eventfd_writes = 0;   // notify() calls that had to write the eventfd
    std::uint64_t busy_poll_hits = 0;   // events found by busy polling (no syscall)
    std::uint64_t busy_poll_ns = 0;     // time spent busy polling
    std::uint64_t sleep_ns = 0;         // time spent in the kernel waiting
    std::uint64_t dispatch_ns = 0;      // time spent running callbacks after a wait
    struct Handler {
        int fd = -1;
        std::string name;               // FdHandlers::name, or "" if none was given
        std::uint64_t dispatches = 0;
        std::int64_t poll_window_ns = 0;  // current busy-poll window (0: not polled)
    };
    std::vector<Handler> handlers;      // user handlers only, in no particular order
};

class AIO_EXPORT Context {
public:
    // Creates a context. Throws std::system_error if the notifier or epoll fd cannot be
    // created; nothing leaks. Any thread.
    static ContextPtr create(std::string_view name = "aio-context");

    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    // --- identity and GLib glue ---------------------------------------------------------

    // The GSource this context is (no new reference). Attach it with g_source_attach, or
    // use attach(). Marks the context as GLib-driven: fds are then watched through one
    // epoll fd handed to GLib. Any thread.
    GSource* gsource() noexcept;
    // g_source_attach(gsource(), main_context); returns the source id. Aborts, naming
    // both GMainContexts, if the context is already attached (GLib would only log a
    // CRITICAL and return 0). Any thread.
    unsigned attach(GMainContext* main_context) noexcept;
    // Debug name, used in diagnostics and as the GSource name. Any thread.
    void set_name(std::string_view name);
    std::string name() const;
    void ref() noexcept;
    void unref() noexcept;

    // --- driving the loop ---------------------------------------------------------------

    // Runs one iteration. With blocking, waits until there is something to do (a
    // scheduled bottom half means no wait at all). Returns true iff progress was made: a
    // non-idle bottom half, an fd callback other than the context's own notifier, or a
    // timer ran.
    // A wake-up by notify() alone returns false. Home thread; reentrant from callbacks.
    // Calling it while another thread drives the context aborts with a message.
    bool poll(bool blocking);

    // Wakes the loop so it re-evaluates its sources. Does not count as progress; does
    // nothing costly unless the loop is about to sleep. Any thread; wait-free.
    void notify() noexcept;

    // Timeout in ns a blocking wait would use now: 0 if a non-idle bottom half is
    // scheduled, 10 ms if only idle ones are, else the earliest timer deadline, or -1
    // (infinite). Home thread.
    std::int64_t compute_timeout() noexcept;

    // User-level recursive lock for code that wants exclusive ownership of the context.
    // poll() never takes or drops it; bottom halves and handlers never need it.
    // Any thread.
    void acquire();
    void release();

    // --- bottom halves ------------------------------------------------------------------

    // Creates a persistent bottom half (not scheduled). `name` must be a string with static
    // storage duration (it is kept, not copied) and names the BH in diagnostics.
    // Any thread.
    BottomHalf make_bh(UniqueFunction<void()> fn, const char* name = "bh");

    // Schedules a one-shot bottom half: fn runs once, in the home thread, and is then
    // freed. A context finalized with one still pending aborts, naming it. Any thread;
    // one allocation, no syscall unless the loop is asleep.
    void schedule(UniqueFunction<void()> fn, const char* name = "oneshot");

    // --- fd handlers --------------------------------------------------------------------

    // Installs or replaces the handlers for fd. Replacing swaps in a new node: after the
    // call returns on the home thread the old callbacks never run (from another thread, a
    // dispatch already in progress may still finish). All-empty handlers remove the fd.
    // `external` handlers are suspended by disable_external().
    // Throws std::system_error naming the fd and errno for fd < 0, a closed fd, or an fd
    // that epoll refuses (a regular file: EPERM); std::invalid_argument for `poll`
    // without `poll_ready`. On error nothing is registered and an existing registration
    // for fd is left untouched. Any thread.
    void set_fd_handler(int fd, FdHandlers handlers, bool external = false);
    // Removes fd's handlers (no-op if none). Never throws. Any thread.
    void clear_fd_handler(int fd) noexcept;

    // set_fd_handler() on the notifier's fd. Handlers usually call test_and_clear().
    void set_event_notifier(EventNotifier& notifier, FdHandlers handlers, bool external = false);
    void clear_event_notifier(EventNotifier& notifier) noexcept;

    // Suspends external handlers (nests). Any thread.
    void disable_external() noexcept;
    // Undoes one disable_external(); the last one wakes the loop. Any thread.
    void enable_external() noexcept;
    bool external_disabled() const noexcept;

    // --- thread pool ----------------------------------------------------------------------

    // The context's worker pool, created on first use (no thread starts until work is
    // submitted or min is raised). Lives as long as the context. Any thread.
    ThreadPool& thread_pool();

    // --- busy polling, introspection ----------------------------------------------------

    // Adaptive busy polling for poll(): before sleeping, each handler with a poll callback
    // (and the context's own notifier) is checked in a busy loop for up to its window.
    // A window starts at 4 µs, grows by `grow` (0: x2) up to max_ns while events arrive
    // soon enough, and drops (divided by `shrink`; 0: to zero) when polling stops paying
    // (an event arrived only after the window was spent). max_ns = 0 disables it (the
    // default; IOThreads use 32768). GLib-driven iterations never busy-poll.
    // Throws std::invalid_argument naming the value if any is negative. Any thread.
    void set_poll_params(std::int64_t max_ns, std::int64_t grow = 0, std::int64_t shrink = 0);

    // Counters describing the loop's activity. Any thread.
    ContextStats stats() const;

    // The context the calling thread drives: set for IOThreads and for a thread that
    // iterates a GMainContext this context is attached to; nullptr otherwise.
    // Valid while that context lives. Any thread (answers for the caller).
    static Context* current() noexcept;

    // Chooses the fd monitor (see FdMonitor). Home thread, between iterations.
    void set_fd_monitor(FdMonitor monitor) noexcept;

protected:
    Context() = default;
    ~Context() = default;
};

}  // namespace aio
