// SPDX-License-Identifier: LGPL-2.1-or-later
// API-sequence fuzzer (libFuzzer) with a sequential reference model.
//
// The input decodes to operations on one aio::Context (driven by poll() with the automatic,
// poll(2) or epoll monitor, busy polling on or off, or by g_main_context_iteration on a
// private GMainContext) and its thread pool: bottom halves (create/schedule/schedule_idle/
// cancel/delete), one-shots, timers on all four clocks and three scales with deadlines from
// the extremes list, fd handlers on eventfds, pipes and EventNotifiers (set/replace/clear,
// external, write and poll/poll_ready callbacks, -1, INT_MIN, INT_MAX, 2^20, closed and
// reused numbers, close while registered, hang-up), pool submit/cancel/throw/set_limits,
// disable/enable_external, the virtual clock stopped and restarted, notify(), blocking and
// non-blocking iterations; callbacks act in turn: reschedule or delete themselves,
// cancel/delete/schedule a sibling, nest poll() or a GLib iteration (depth <= 4),
// arm/cancel/delete timers, clear fds, disable/enable external clients.
// Teardown drains, then destroys the handles and the context in an input-chosen order,
// sometimes dropping the last context reference from inside a callback.
//
// The model predicts, from the contract in include/aio/*.hpp and docs/loop.md:
//   - a BH runs only while scheduled, never after delete or a home-thread cancel, at most
//     once per poll frame; every BH scheduled when a top-level iteration starts (and not
//     touched by a callback meanwhile) runs in that iteration; one-shots run exactly once,
//     in the first iteration after they were scheduled;
//   - a timer fires only while armed, never before its deadline (read on its own clock at
//     the callback), once per arm; one armed in the past fires in the next iteration
//     (virtual-clock timers only while that clock runs);
//   - an fd callback is the current registration's (never a replaced or cleared one's,
//     except for a number that was closed while registered: documented as stale), an
//     external one never runs while external clients are disabled, and a readable
//     registered fd is dispatched in the next iteration; set_fd_handler throws
//     std::system_error for every bad fd;
//   - poll() returns true whenever a user BH, fd or timer callback ran in that frame (and,
//     without a pool or idle BHs, only then); compute_timeout() is 0 with a BH scheduled;
//   - every pool job's completion runs exactly once, in the home thread, with the result
//     cancel_async() promised (cancelled iff it returned true) or the job's value/exception;
//     nothing is left pending after the drain.
// A mismatch prints what was expected and traps (__builtin_trap), so libFuzzer saves it.
// AIO_FUZZ_TRACE=1 prints the decoded operations. The harness steers around nothing: the
// sequences of findings F-4 and F-5 (docs/reliability.md) are generated like any other and
// their reproducers are part of the corpus.
#include <aio/bottom_half.hpp>
#include <aio/context.hpp>
#include <aio/event_notifier.hpp>
#include <aio/thread_pool.hpp>
#include <aio/timer.hpp>

#include <fuzzer/FuzzedDataProvider.h>
#include <glib.h>

#include <array>
#include <cerrno>
#include <cstdarg>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace {

using aio::BottomHalf;
using aio::Clock;
using aio::Context;
using aio::ContextPtr;
using aio::FdHandlers;
using aio::JobHandle;
using aio::Result;
using aio::Timer;

[[noreturn]] void model_failure(const char* file, int line, const char* cond, const char* what)
{
    std::fprintf(stderr, "fuzz-api: %s:%d: model mismatch: %s (%s)\n", file, line, what, cond);
    std::fflush(stderr);
    __builtin_trap();
}

// AIO_FUZZ_TRACE=1 prints every operation and callback (to debug a saved crash).
bool tracing()
{
    static const bool on = std::getenv("AIO_FUZZ_TRACE") != nullptr;
    return on;
}

[[gnu::format(printf, 1, 2)]] void trace(const char* fmt, ...)
{
    if (!tracing()) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fputc('\n', stderr);
}

#define EXPECT_MODEL(cond, what)                                                          \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            model_failure(__FILE__, __LINE__, #cond, what);                               \
        }                                                                                 \
    } while (0)

constexpr int kBhs = 6;
constexpr int kTimers = 4;
constexpr int kFds = 3;
constexpr int kMaxJobs = 8;
constexpr int kMaxOneShots = 32;
constexpr int kMaxDepth = 4;
constexpr int kBudget = 24;  // callback actions per top-level operation

enum Action : std::uint8_t {
    kNone,
    kRescheduleSelf,   // BH: schedule itself; timer: re-arm itself in the past; fd: nothing
    kDeleteSelf,
    kScheduleBh,       // arg: which BH
    kCancelBh,
    kDeleteBh,
    kNestedPoll,
    kNestedGLib,
    kOneShot,
    kArmTimerPast,     // arg: which timer
    kCancelTimer,
    kDeleteTimer,
    kClearFd,          // arg: which fd slot
    kNotify,
    kDisableExternal,
    kEnableExternal,
    kActionCount,
};

struct Acts {
    Action a1 = kNone;
    Action a2 = kNone;
    std::uint8_t arg = 0;
};

struct Frame {
    std::uint64_t serial;
    bool user_progress = false;
    bool uncertain = false;  // a callback ran that may or may not count as progress
};

struct Harness;

struct BhSlot {
    BottomHalf h;
    bool alive = false;
    bool pending = false;     // scheduled and not cancelled since it last ran
    // schedule_idle() since it last ran: the IDLE flag sticks until the BH is dequeued (a
    // later schedule() keeps it idle, as in QEMU), so its run may not count as progress.
    bool idle = false;
    bool touched = false;     // a callback changed it during this top-level operation
    int runs_top = 0;         // runs during this top-level operation
    std::uint64_t last_frame = 0;
    Acts acts;
};

struct TimerSlot {
    Timer t;
    Clock clock = Clock::realtime;
    bool alive = false;
    bool armed = false;
    std::int64_t deadline = -1;  // ns on the timer's clock (expire_time())
    bool touched = false;
    int fired_top = 0;
    int active = 0;          // its callback's invocations on the stack
    bool reentered = false;  // a nested poll ran it again while it was running
    Acts acts;
};

// eventfd/pipe: raw fds with set_fd_handler; notifier/notifier_pipe: an aio::EventNotifier
// (eventfd, or its pipe fallback) with set_event_notifier.
enum class FdKind { eventfd, pipe, notifier, notifier_pipe };

struct FdSlot {
    int rfd = -1;
    int wfd = -1;
    FdKind kind = FdKind::eventfd;
    bool registered = false;
    unsigned gen = 0;          // generation of the current registration
    bool readable = false;     // the model's view: written (or hung up) and not drained
    bool hup = false;          // the pipe's writer is closed
    bool external = false;     // registered as external (suspended by disable_external)
    bool touched = false;
    int reads_top = 0;
    Acts acts;
    std::unique_ptr<aio::EventNotifier> notifier;  // the notifier kinds
    bool is_notifier() const { return notifier != nullptr; }
};

struct OneShot {
    bool pending = false;
    int runs = 0;
};

struct Job {
    JobHandle h;
    bool completed = false;
    bool throws = false;
    int value = 0;
    std::optional<bool> cancel_result;  // what cancel_async() returned, if called
    bool delivered_cancelled = false;
    Acts acts;
};

std::int64_t sat_add(std::int64_t a, std::int64_t b)
{
    std::int64_t r;
    if (__builtin_add_overflow(a, b, &r)) {
        return b > 0 ? INT64_MAX : INT64_MIN;
    }
    return r;
}

struct Harness {
    explicit Harness(FuzzedDataProvider& in) : fdp(in) {}

    FuzzedDataProvider& fdp;
    ContextPtr ctx;
    Context* raw = nullptr;
    GMainContext* mc = nullptr;
    bool glib = false;
    bool pool_used = false;
    int budget = 0;
    int external_disabled = 0;    // disable_external() nesting
    bool vclock_enabled = true;   // aio::set_virtual_clock_enabled (process-wide)
    std::optional<Timer> guard;   // bounds blocking iterations
    bool draining = false;  // teardown: callbacks act no more
    std::vector<Frame> frames;
    std::uint64_t next_frame = 1;
    std::thread::id home = std::this_thread::get_id();

    std::array<BhSlot, kBhs> bhs;
    std::array<TimerSlot, kTimers> timers;
    std::array<FdSlot, kFds> fds;
    std::array<OneShot, kMaxOneShots> oneshots;
    int n_oneshots = 0;
    std::vector<std::unique_ptr<Job>> jobs;
    // Generations whose fd was closed while registered, by fd number: their callbacks
    // may still run (documented: clear the handler before closing) until the number is
    // cleared or registered again.
    std::map<unsigned, int> stale_gens;
    unsigned next_gen = 1;

    int depth() const { return static_cast<int>(frames.size()); }

    // --- driving ------------------------------------------------------------------------

    bool iterate_poll(bool blocking = false)
    {
        trace("%*spoll(%s) depth %d", depth() * 2, "", blocking ? "true" : "false", depth() + 1);
        frames.push_back(Frame{next_frame++});
        const bool r = raw->poll(blocking);
        const Frame f = frames.back();
        frames.pop_back();
        trace("%*s-> %d (user callbacks ran: %d)", depth() * 2, "", r, f.user_progress);
        if (f.user_progress) {
            EXPECT_MODEL(r, "poll() returned false although a user callback ran");
        }
        if (r && !pool_used && !f.uncertain) {
            EXPECT_MODEL(f.user_progress, "poll() returned true but no user callback ran");
        }
        return r;
    }

    void iterate_glib(bool blocking = false)
    {
        trace("%*sg_main_context_iteration(%s) depth %d", depth() * 2, "", blocking ? "TRUE" : "FALSE", depth() + 1);
        frames.push_back(Frame{next_frame++});
        g_main_context_iteration(mc, blocking ? TRUE : FALSE);
        frames.pop_back();
    }

    void in_iteration()
    {
        EXPECT_MODEL(!frames.empty(), "a callback ran outside any iteration");
        EXPECT_MODEL(std::this_thread::get_id() == home, "a callback ran off the home thread");
    }

    void mark_progress()
    {
        in_iteration();
        frames.back().user_progress = true;
    }

    // One top-level iteration, with the liveness checks around it.
    void top_iteration(bool blocking = false)
    {
        struct Snap {
            std::array<bool, kBhs> bh{};
            std::array<bool, kTimers> tm{};
            std::array<bool, kFds> fd{};
            std::vector<int> oneshots;
        } s;
        for (auto& b : bhs) {
            b.touched = false;
            b.runs_top = 0;
        }
        for (auto& t : timers) {
            t.touched = false;
            t.fired_top = 0;
        }
        for (auto& f : fds) {
            f.touched = false;
            f.reads_top = 0;
        }
        for (int i = 0; i < kBhs; ++i) {
            s.bh[static_cast<std::size_t>(i)] = bhs[static_cast<std::size_t>(i)].alive &&
                                                bhs[static_cast<std::size_t>(i)].pending;
        }
        for (int i = 0; i < kTimers; ++i) {
            TimerSlot& t = timers[static_cast<std::size_t>(i)];
            s.tm[static_cast<std::size_t>(i)] =
                t.alive && t.armed && t.deadline <= aio::clock_ns(t.clock) &&
                (t.clock != Clock::virtual_ || vclock_enabled);
        }
        for (int i = 0; i < kFds; ++i) {
            FdSlot& f = fds[static_cast<std::size_t>(i)];
            s.fd[static_cast<std::size_t>(i)] = f.rfd >= 0 && f.registered && f.readable &&
                                                (!f.external || external_disabled == 0);
        }
        for (int i = 0; i < n_oneshots; ++i) {
            if (oneshots[static_cast<std::size_t>(i)].pending) {
                s.oneshots.push_back(i);
            }
        }
        budget = draining ? 0 : kBudget;
        if (blocking) {
            guard->arm_after(50'000);  // a blocking iteration returns within 50 us
        }
        if (glib && !fdp.ConsumeBool()) {
            iterate_glib(blocking);
        } else {
            iterate_poll(blocking);
        }
        if (blocking) {
            guard->cancel();
        }
        budget = 0;
        for (int i = 0; i < kBhs; ++i) {
            const BhSlot& b = bhs[static_cast<std::size_t>(i)];
            if (s.bh[static_cast<std::size_t>(i)] && !b.touched) {
                EXPECT_MODEL(b.runs_top >= 1, "a scheduled BH did not run in the next iteration");
            }
        }
        for (int i = 0; i < kTimers; ++i) {
            const TimerSlot& t = timers[static_cast<std::size_t>(i)];
            if (s.tm[static_cast<std::size_t>(i)] && !t.touched) {
                EXPECT_MODEL(t.fired_top >= 1, "a timer due before the iteration did not fire");
            }
        }
        for (int i = 0; i < kFds; ++i) {
            const FdSlot& f = fds[static_cast<std::size_t>(i)];
            if (s.fd[static_cast<std::size_t>(i)] && !f.touched) {
                EXPECT_MODEL(f.reads_top >= 1, "a readable fd was not dispatched");
            }
        }
        for (int i : s.oneshots) {
            EXPECT_MODEL(!oneshots[static_cast<std::size_t>(i)].pending,
                         "a one-shot did not run in the next iteration");
        }
    }

    // --- callback actions ---------------------------------------------------------------

    void act(const Acts& a, int self_kind, int self)
    {
        for (Action x : {a.a1, a.a2}) {
            if (x == kNone || budget <= 0) {
                continue;
            }
            --budget;
            do_action(x, a.arg, self_kind, self);
        }
    }

    void do_action(Action x, std::uint8_t arg, int self_kind, int self)
    {
        trace("%*s  action %d arg %d (self kind %d #%d)", depth() * 2, "", x, arg, self_kind, self);
        switch (x) {
        case kNone:
        case kActionCount:
            break;
        case kRescheduleSelf:
            if (self_kind == 0) {
                bh_schedule(self, true);
            } else if (self_kind == 1) {
                timer_arm(self, INT64_MIN, true);  // runs again in this pass (budgeted)
            }
            break;
        case kDeleteSelf:
            if (self_kind == 0) {
                bh_delete(self, true);
            } else if (self_kind == 1) {
                timer_delete(self, true);
            } else if (self_kind == 2) {
                fd_clear(self, true);
            }
            break;
        case kScheduleBh:
            bh_schedule(arg % kBhs, true);
            break;
        case kCancelBh:
            bh_cancel(arg % kBhs, true);
            break;
        case kDeleteBh:
            bh_delete(arg % kBhs, true);
            break;
        case kNestedPoll:
            if (depth() < kMaxDepth) {
                iterate_poll();
            }
            break;
        case kNestedGLib:
            if (glib && depth() < kMaxDepth) {
                iterate_glib();
            }
            break;
        case kOneShot:
            oneshot(Acts{});
            break;
        case kArmTimerPast:
            timer_arm(arg % kTimers, -1, true);
            break;
        case kCancelTimer:
            timer_cancel(arg % kTimers, true);
            break;
        case kDeleteTimer:
            timer_delete(arg % kTimers, true);
            break;
        case kClearFd:
            fd_clear(arg % kFds, true);
            break;
        case kNotify:
            raw->notify();
            break;
        case kDisableExternal:
            external_disable();
            break;
        case kEnableExternal:
            external_enable();
            break;
        }
    }

    void external_disable()
    {
        if (external_disabled >= 3) {
            return;
        }
        raw->disable_external();
        ++external_disabled;
        EXPECT_MODEL(raw->external_disabled(), "external_disabled() is false after disable");
        for (auto& f : fds) {
            f.touched |= f.external;
        }
    }

    void external_enable()
    {
        if (external_disabled == 0) {
            return;
        }
        raw->enable_external();
        --external_disabled;
        EXPECT_MODEL(raw->external_disabled() == (external_disabled > 0),
                     "external_disabled() disagrees with the nesting count");
        for (auto& f : fds) {
            f.touched |= f.external;
        }
    }

    void introspect()
    {
        const aio::ContextStats st = raw->stats();
        EXPECT_MODEL(st.handlers.size() <= kFds + stale_gens.size(), "stats lists unknown handlers");
        bool runnable = false;
        for (const auto& b : bhs) {
            runnable |= b.alive && b.pending && !b.idle;  // idle (maybe): capped at 10 ms
            if (b.alive) {
                EXPECT_MODEL(b.h.context() == raw, "BottomHalf::context() is wrong");
            }
        }
        for (int k = 0; k < n_oneshots; ++k) {
            runnable |= oneshots[static_cast<std::size_t>(k)].pending;
        }
        if (runnable) {
            EXPECT_MODEL(raw->compute_timeout() == 0,
                         "compute_timeout() is not 0 with a bottom half scheduled");
        } else {
            (void)raw->compute_timeout();
        }
        raw->acquire();
        raw->acquire();  // recursive
        raw->release();
        raw->release();
        raw->set_name(fdp.ConsumeBool() ? "fuzz-ctx" : "renamed-ctx");
        EXPECT_MODEL(!raw->name().empty(), "empty context name");
        (void)Context::current();
        (void)raw->thread_pool().thread_count();  // surplus workers exit asynchronously
    }

    void pool_limits(int min, int max)
    {
        bool threw = false;
        try {
            raw->thread_pool().set_limits(min, max);
        } catch (const std::invalid_argument&) {
            threw = true;
        }
        const bool valid = min >= 0 && max > 0 && min <= max;
        EXPECT_MODEL(threw == !valid, "set_limits() accepted bad limits or refused good ones");
        if (valid) {
            EXPECT_MODEL(raw->thread_pool().min_threads() == min &&
                             raw->thread_pool().max_threads() == max,
                         "set_limits() did not stick");
        }
    }

    Acts read_acts()
    {
        Acts a;
        a.a1 = static_cast<Action>(fdp.ConsumeIntegralInRange<int>(0, kActionCount - 1));
        a.a2 = fdp.ConsumeBool()
                   ? static_cast<Action>(fdp.ConsumeIntegralInRange<int>(0, kActionCount - 1))
                   : kNone;
        a.arg = fdp.ConsumeIntegral<std::uint8_t>();
        return a;
    }

    // --- bottom halves ------------------------------------------------------------------

    void bh_create(int i, Acts acts)
    {
        trace("bh_create %d acts %d,%d,%d", i, acts.a1, acts.a2, acts.arg);
        BhSlot& b = bhs[static_cast<std::size_t>(i)];
        b.h = raw->make_bh([this, i] { bh_ran(i); }, "fuzz-bh");  // replaces (deletes) the old
        b.alive = true;
        b.pending = false;
        b.touched = true;
        b.acts = acts;
    }

    void bh_ran(int i)
    {
        trace("%*sbh %d runs", depth() * 2, "", i);
        BhSlot& b = bhs[static_cast<std::size_t>(i)];
        EXPECT_MODEL(!frames.empty(), "a BH ran outside any iteration");
        EXPECT_MODEL(b.alive, "a deleted BH ran");
        EXPECT_MODEL(b.pending, "a BH ran that was not scheduled (or was cancelled)");
        EXPECT_MODEL(b.last_frame != frames.back().serial, "a BH ran twice in one poll frame");
        b.pending = false;
        b.last_frame = frames.back().serial;
        ++b.runs_top;
        if (b.idle) {
            in_iteration();  // maybe idle: maybe no progress
            frames.back().uncertain = true;
            b.idle = false;
        } else {
            mark_progress();
        }
        act(b.acts, 0, i);
    }

    void bh_schedule(int i, bool from_cb, bool idle = false)
    {
        trace("bh_schedule %d", i);
        BhSlot& b = bhs[static_cast<std::size_t>(i)];
        if (!b.alive) {
            return;
        }
        if (idle) {
            b.h.schedule_idle();
            b.idle = true;
        } else {
            b.h.schedule();
        }
        b.pending = true;
        b.touched |= from_cb;
    }

    void bh_cancel(int i, bool from_cb)
    {
        trace("bh_cancel %d", i);
        BhSlot& b = bhs[static_cast<std::size_t>(i)];
        if (!b.alive) {
            return;
        }
        b.h.cancel();
        b.pending = false;
        b.touched |= from_cb;
    }

    void bh_delete(int i, bool from_cb)
    {
        trace("bh_delete %d", i);
        BhSlot& b = bhs[static_cast<std::size_t>(i)];
        if (!b.alive) {
            return;
        }
        b.alive = false;
        b.pending = false;
        b.touched |= from_cb;
        b.h.reset();  // may be the running callback's own BH
    }

    void oneshot(Acts acts)
    {
        trace("oneshot #%d acts %d,%d,%d", n_oneshots, acts.a1, acts.a2, acts.arg);
        if (n_oneshots >= kMaxOneShots) {
            return;
        }
        const int i = n_oneshots++;
        oneshots[static_cast<std::size_t>(i)].pending = true;
        raw->schedule(
            [this, i, acts] {
                OneShot& o = oneshots[static_cast<std::size_t>(i)];
                EXPECT_MODEL(o.pending && o.runs == 0, "a one-shot ran twice");
                o.pending = false;
                ++o.runs;
                mark_progress();
                act(acts, 3, i);
            },
            "fuzz-oneshot");
    }

    // --- timers -------------------------------------------------------------------------

    void timer_create(int i, Clock clock, aio::Scale scale, Acts acts)
    {
        trace("timer_create %d clock %d scale %lld acts %d,%d,%d", i, static_cast<int>(clock), static_cast<long long>(scale), acts.a1, acts.a2, acts.arg);
        TimerSlot& t = timers[static_cast<std::size_t>(i)];
        t.t = Timer(*raw, clock, [this, i] { timer_fired(i); }, scale, "fuzz-timer");
        t.clock = clock;
        t.alive = true;
        t.armed = false;
        t.deadline = -1;
        t.touched = true;
        t.acts = acts;
    }

    void timer_fired(int i)
    {
        trace("%*stimer %d fires", depth() * 2, "", i);
        TimerSlot& t = timers[static_cast<std::size_t>(i)];
        EXPECT_MODEL(t.alive, "a deleted timer fired");
        EXPECT_MODEL(t.armed, "a timer fired that was not armed");
        EXPECT_MODEL(t.clock != Clock::virtual_ || vclock_enabled,
                     "a virtual-clock timer fired while the virtual clock is stopped");
        EXPECT_MODEL(aio::clock_ns(t.clock) >= t.deadline, "a timer fired before its deadline");
        t.armed = false;
        ++t.fired_top;
        mark_progress();
        t.reentered |= t.active > 0;
        ++t.active;
        act(t.acts, 1, i);
        // The slot may have been deleted and re-created meanwhile only at top level, so
        // it is still this timer's slot.
        if (--t.active == 0) {
            t.reentered = false;
        }
    }

    void refresh_timer(TimerSlot& t)
    {
        t.armed = t.t.pending();
        t.deadline = t.t.expire_time();
    }

    // mode: 0 arm_at, 1 arm_after, 2 anticipate
    void timer_arm(int i, std::int64_t v, bool from_cb, int mode = 0)
    {
        trace("timer_arm %d v %lld mode %d", i, static_cast<long long>(v), mode);
        TimerSlot& t = timers[static_cast<std::size_t>(i)];
        if (!t.alive) {
            return;
        }
        const std::int64_t old = t.armed ? t.deadline : -1;
        switch (mode) {
        case 0:
            t.t.arm_at(v);
            break;
        case 1:
            t.t.arm_after(v);
            break;
        default:
            t.t.anticipate(v);
            break;
        }
        refresh_timer(t);
        if (mode == 2 && old >= 0) {
            EXPECT_MODEL(t.armed && t.deadline <= old, "anticipate() moved a timer later");
        }
        if (v == INT64_MAX && mode != 2) {
            EXPECT_MODEL(!t.armed || t.deadline == INT64_MAX || t.deadline > (INT64_MAX >> 1),
                         "an INT64_MAX deadline became a finite one");
        }
        t.touched |= from_cb;
    }

    void timer_cancel(int i, bool from_cb)
    {
        trace("timer_cancel %d", i);
        TimerSlot& t = timers[static_cast<std::size_t>(i)];
        if (!t.alive) {
            return;
        }
        t.t.cancel();
        refresh_timer(t);
        EXPECT_MODEL(!t.armed, "a cancelled timer is still armed");
        t.touched |= from_cb;
    }

    void timer_delete(int i, bool from_cb)
    {
        trace("timer_delete %d", i);
        TimerSlot& t = timers[static_cast<std::size_t>(i)];
        if (!t.alive) {
            return;
        }
        t.alive = false;
        t.armed = false;
        t.touched |= from_cb;
        t.t.reset();  // may be the running callback's own timer
    }

    // --- fd handlers --------------------------------------------------------------------

    void fd_open(int i, FdKind kind)
    {
        trace("fd_open %d kind %d", i, static_cast<int>(kind));
        FdSlot& f = fds[static_cast<std::size_t>(i)];
        if (f.rfd >= 0) {
            return;
        }
        if (kind == FdKind::notifier || kind == FdKind::notifier_pipe) {
            f.notifier = kind == FdKind::notifier
                             ? std::make_unique<aio::EventNotifier>()
                             : std::make_unique<aio::EventNotifier>(aio::EventNotifier::UsePipe{});
            f.rfd = f.notifier->fd();
            f.wfd = f.notifier->write_fd();
        } else if (kind == FdKind::eventfd) {
            f.rfd = f.wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        } else {
            int p[2];
            if (pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0) {
                f.rfd = p[0];
                f.wfd = p[1];
            }
        }
        f.kind = kind;
        f.registered = false;
        f.readable = false;
        f.hup = false;
    }

    void drain(FdSlot& f)
    {
        if (f.is_notifier()) {
            f.notifier->test_and_clear();
            f.readable = false;
            return;
        }
        char buf[256];
        while (read(f.rfd, buf, sizeof buf) > 0) {
        }
        f.readable = f.hup;  // a hung-up pipe stays readable (EOF)
    }

    // what: 0 read, 1 write, 2 poll_ready
    void fd_ran(int i, unsigned gen, int what = 0)
    {
        trace("%*sfd %d (gen %u) %s runs", depth() * 2, "", i, gen,
              what == 0 ? "read" : what == 1 ? "write" : "poll_ready");
        FdSlot& f = fds[static_cast<std::size_t>(i)];
        const bool current = f.registered && f.gen == gen && f.rfd >= 0;
        mark_progress();
        // Finding F-5 (docs/reliability.md, fixed): the write callback is checked again
        // after a read callback that disabled external clients.
        if (current && f.external) {
            EXPECT_MODEL(external_disabled == 0,
                         "an external handler was dispatched while external clients are "
                         "disabled");
        }
        if (!current) {
            EXPECT_MODEL(stale_gens.count(gen) != 0,
                         "a replaced or cleared fd handler ran after the call returned");
            return;  // a stale registration on a closed (maybe reused) number: allowed
        }
        if (what == 1) {
            return;  // a write callback: writable every iteration, nothing to drain
        }
        ++f.reads_top;
        drain(f);
        act(f.acts, 2, i);
    }

    void forget_stale(int number)
    {
        for (auto it = stale_gens.begin(); it != stale_gens.end();) {
            it = it->second == number ? stale_gens.erase(it) : std::next(it);
        }
    }

    // opts bit 0: external; bit 1: a write callback (raw eventfds only); bit 2: poll and
    // poll_ready callbacks (busy polling)
    void fd_set(int i, Acts acts, int opts = 0)
    {
        trace("fd_set %d (fd %d) acts %d,%d,%d opts %d", i, fds[static_cast<std::size_t>(i)].rfd, acts.a1, acts.a2, acts.arg, opts);
        FdSlot& f = fds[static_cast<std::size_t>(i)];
        if (f.rfd < 0) {
            return;
        }
        const unsigned gen = next_gen++;
        FdHandlers h{.read = [this, i, gen] { fd_ran(i, gen); }, .name = "fuzz-fd"};
        if ((opts & 2) != 0 && f.kind == FdKind::eventfd) {
            h.write = [this, i, gen] { fd_ran(i, gen, 1); };
        }
        if ((opts & 4) != 0) {
            h.poll = [this, i, gen] {
                const FdSlot& s = fds[static_cast<std::size_t>(i)];
                EXPECT_MODEL(s.gen == gen || stale_gens.count(gen) != 0,
                             "a replaced handler's poll callback ran");
                return s.gen == gen && s.readable;
            };
            h.poll_ready = [this, i, gen] { fd_ran(i, gen, 2); };
        }
        const bool external = (opts & 1) != 0;
        try {
            if (f.is_notifier()) {
                raw->set_event_notifier(*f.notifier, std::move(h), external);
            } else {
                raw->set_fd_handler(f.rfd, std::move(h), external);
            }
        } catch (const std::exception& e) {
            std::fprintf(stderr, "set_fd_handler(%d): %s\n", f.rfd, e.what());
            EXPECT_MODEL(false, "set_fd_handler failed for an open eventfd/pipe");
        }
        forget_stale(f.rfd);  // the number's old registration was replaced
        f.registered = true;
        f.external = external;
        f.gen = gen;
        f.acts = acts;
        f.touched = true;
    }

    void fd_clear(int i, bool from_cb)
    {
        trace("fd_clear %d", i);
        FdSlot& f = fds[static_cast<std::size_t>(i)];
        if (f.rfd < 0) {
            return;
        }
        if (f.is_notifier() && fdp.ConsumeBool()) {
            raw->clear_event_notifier(*f.notifier);
        } else {
            raw->clear_fd_handler(f.rfd);
        }
        forget_stale(f.rfd);
        f.registered = false;
        f.touched |= from_cb;
    }

    void fd_write(int i)
    {
        trace("fd_write %d", i);
        FdSlot& f = fds[static_cast<std::size_t>(i)];
        if (f.wfd < 0) {
            return;
        }
        if (f.is_notifier()) {
            EXPECT_MODEL(f.notifier->set() == 0, "EventNotifier::set() failed");
            f.readable = true;
            return;
        }
        const std::uint64_t one = 1;
        if (write(f.wfd, &one, sizeof one) == static_cast<ssize_t>(sizeof one)) {
            f.readable = true;
        }
    }

    void fd_close(int i)
    {
        trace("fd_close %d (fd %d)", i, fds[static_cast<std::size_t>(i)].rfd);
        FdSlot& f = fds[static_cast<std::size_t>(i)];
        if (f.rfd < 0) {
            return;
        }
        if (f.registered) {
            stale_gens[f.gen] = f.rfd;  // closed while registered
        }
        if (f.is_notifier()) {
            f.notifier.reset();
            f.rfd = f.wfd = -1;
            f.registered = false;
            f.readable = false;
            f.touched = true;
            return;
        }
        if (f.wfd != f.rfd && f.wfd >= 0) {
            close(f.wfd);
        }
        close(f.rfd);
        f.rfd = f.wfd = -1;
        f.registered = false;
        f.readable = false;
        f.touched = true;
    }

    void fd_hangup(int i)
    {
        trace("fd_hangup %d", i);
        FdSlot& f = fds[static_cast<std::size_t>(i)];
        if (f.kind != FdKind::pipe || f.rfd < 0 || f.wfd < 0) {  // notifiers keep both ends
            return;
        }
        close(f.wfd);
        f.wfd = -1;
        f.hup = true;
        f.readable = true;
    }

    void fd_bad(int which)
    {
        trace("fd_bad %d", which);
        int fd = -1;
        switch (which) {
        case 0:
            fd = -1;
            break;
        case 1:
            fd = INT_MIN;
            break;
        case 2:
            fd = INT_MAX;
            break;
        case 3:
            fd = 1 << 20;  // far above any rlimit
            break;
        default: {
            // A number that was just closed (and is not reused by anything of ours).
            int tmp = open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (tmp < 0) {
                return;
            }
            close(tmp);
            fd = tmp;
            break;
        }
        }
        bool threw = false;
        try {
            raw->set_fd_handler(fd, FdHandlers{.read = [] {
                                    EXPECT_MODEL(false, "a rejected fd handler ran");
                                }});
        } catch (const std::system_error&) {
            threw = true;
        }
        EXPECT_MODEL(threw, "set_fd_handler accepted a bad fd");
        raw->clear_fd_handler(fd);  // never throws; removes a stale registration on fd
        forget_stale(fd);
    }

    // --- thread pool --------------------------------------------------------------------

    void pool_submit(int value, bool throws, Acts acts)
    {
        trace("pool_submit %d throws %d acts %d,%d,%d", value, throws, acts.a1, acts.a2, acts.arg);
        if (static_cast<int>(jobs.size()) >= kMaxJobs) {
            return;
        }
        pool_used = true;
        auto j = std::make_unique<Job>();
        Job* jp = j.get();
        jp->throws = throws;
        jp->value = value;
        jp->acts = acts;
        jp->h = raw->thread_pool().submit(
            [value, throws]() -> int {
                if (throws) {
                    throw std::runtime_error("fuzz job");
                }
                return value;
            },
            [this, jp](Result<int> r) {
                trace("%*sjob completion (value %d, cancelled %d)", depth() * 2, "", jp->value, r.cancelled());
                EXPECT_MODEL(!jp->completed, "a pool completion ran twice");
                EXPECT_MODEL(std::this_thread::get_id() == home,
                             "a pool completion ran off the home thread");
                EXPECT_MODEL(!frames.empty(), "a pool completion ran outside an iteration");
                jp->completed = true;
                jp->delivered_cancelled = r.cancelled();
                if (jp->cancel_result.has_value() && *jp->cancel_result) {
                    EXPECT_MODEL(r.cancelled(), "cancel_async() succeeded but the job ran");
                } else if (jp->cancel_result.has_value() || !r.cancelled()) {
                    EXPECT_MODEL(!r.cancelled(), "a job was cancelled though cancel failed");
                    if (jp->throws) {
                        EXPECT_MODEL(r.exception() != nullptr, "the job's exception was lost");
                    } else {
                        EXPECT_MODEL(r.ok() && r.value() == jp->value, "wrong job result");
                    }
                }
                act(jp->acts, 4, 0);
            });
        jobs.push_back(std::move(j));
    }

    void pool_cancel(int idx, bool sync)
    {
        trace("pool_cancel %d sync %d", idx, sync);
        if (jobs.empty()) {
            return;
        }
        Job& j = *jobs[static_cast<std::size_t>(idx) % jobs.size()];
        if (sync) {
            if (depth() > 0) {
                return;
            }
            frames.push_back(Frame{next_frame++});  // cancel() polls: callbacks may run
            j.h.cancel();
            frames.pop_back();
            EXPECT_MODEL(j.completed, "JobHandle::cancel() returned before the completion");
        } else {
            const bool r = j.h.cancel_async();
            if (!j.cancel_result.has_value() || !*j.cancel_result) {
                if (r) {
                    EXPECT_MODEL(!j.completed, "cancel_async() succeeded on a completed job");
                }
                j.cancel_result = r;
            } else {
                EXPECT_MODEL(!r, "cancel_async() succeeded twice");
            }
        }
    }

    bool jobs_done() const
    {
        for (const auto& j : jobs) {
            if (!j->completed) {
                return false;
            }
        }
        return true;
    }

    // --- the run ------------------------------------------------------------------------

    void run()
    {
        const int mode = fdp.ConsumeIntegralInRange<int>(0, 3);
        ctx = Context::create("fuzz-ctx");
        raw = ctx.get();
        if (mode == 3) {
            glib = true;
            mc = g_main_context_new();
            ctx->attach(mc);
        } else {
            raw->set_fd_monitor(mode == 0   ? aio::FdMonitor::automatic
                                : mode == 1 ? aio::FdMonitor::poll
                                            : aio::FdMonitor::epoll);
        }
        raw->thread_pool().set_limits(0, 2);
        if (!glib && fdp.ConsumeBool()) {
            raw->set_poll_params(32768);  // adaptive busy polling, as in IOThreads
        }
        guard.emplace(*raw, Clock::realtime, [this] { mark_progress(); }, aio::Scale::ns,
                      "fuzz-guard");

        static constexpr std::int64_t kExtremes[] = {
            INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX, 3'600'000'000'000,
        };
        int ops = 0;
        while (fdp.remaining_bytes() > 0 && ops++ < 256) {
            const int op = fdp.ConsumeIntegralInRange<int>(0, 29);
            switch (op) {
            case 0: {
                const int i = fdp.ConsumeIntegralInRange<int>(0, kBhs - 1);
                bh_create(i, read_acts());
                break;
            }
            case 1:
            case 2:
                bh_schedule(fdp.ConsumeIntegralInRange<int>(0, kBhs - 1), false);
                break;
            case 3:
                bh_cancel(fdp.ConsumeIntegralInRange<int>(0, kBhs - 1), false);
                break;
            case 4:
                bh_delete(fdp.ConsumeIntegralInRange<int>(0, kBhs - 1), false);
                break;
            case 5:
                oneshot(read_acts());
                break;
            case 6: {
                const int i = fdp.ConsumeIntegralInRange<int>(0, kTimers - 1);
                const auto clock = static_cast<Clock>(fdp.ConsumeIntegralInRange<int>(0, 3));
                static constexpr aio::Scale kScales[] = {aio::Scale::ns, aio::Scale::us,
                                                         aio::Scale::ms};
                const aio::Scale scale = kScales[fdp.ConsumeIntegralInRange<int>(0, 2)];
                timer_create(i, clock, scale, read_acts());
                break;
            }
            case 7: {
                const int i = fdp.ConsumeIntegralInRange<int>(0, kTimers - 1);
                const int m = fdp.ConsumeIntegralInRange<int>(0, 2);
                std::int64_t v = kExtremes[fdp.ConsumeIntegralInRange<int>(0, 7)];
                if (m == 0 && fdp.ConsumeBool() && timers[static_cast<std::size_t>(i)].alive) {
                    // now - 1 / now / now + 1 in ns on the timer's clock (scale ns only
                    // matters for the model via expire_time())
                    v = sat_add(aio::clock_ns(timers[static_cast<std::size_t>(i)].clock),
                                fdp.ConsumeIntegralInRange<int>(-1, 0));
                }
                timer_arm(i, v, false, m);
                break;
            }
            case 8:
                timer_cancel(fdp.ConsumeIntegralInRange<int>(0, kTimers - 1), false);
                break;
            case 9:
                timer_delete(fdp.ConsumeIntegralInRange<int>(0, kTimers - 1), false);
                break;
            case 10: {
                const int i = fdp.ConsumeIntegralInRange<int>(0, kFds - 1);
                fd_open(i, static_cast<FdKind>(fdp.ConsumeIntegralInRange<int>(0, 3)));
                break;
            }
            case 11: {
                const int i = fdp.ConsumeIntegralInRange<int>(0, kFds - 1);
                const Acts acts = read_acts();
                fd_set(i, acts, fdp.ConsumeIntegralInRange<int>(0, 7));
                break;
            }
            case 12:
                fd_clear(fdp.ConsumeIntegralInRange<int>(0, kFds - 1), false);
                break;
            case 13:
                fd_write(fdp.ConsumeIntegralInRange<int>(0, kFds - 1));
                break;
            case 14:
                fd_close(fdp.ConsumeIntegralInRange<int>(0, kFds - 1));
                break;
            case 15:
                fd_hangup(fdp.ConsumeIntegralInRange<int>(0, kFds - 1));
                break;
            case 16:
                fd_bad(fdp.ConsumeIntegralInRange<int>(0, 4));
                break;
            case 17: {
                const int v = fdp.ConsumeIntegral<std::uint8_t>();
                const bool t = fdp.ConsumeBool();
                pool_submit(v, t, read_acts());
                break;
            }
            case 18:
                pool_cancel(fdp.ConsumeIntegral<std::uint8_t>(), fdp.ConsumeIntegralInRange<int>(0, 3) == 0);
                break;
            case 19:
                raw->notify();
                break;
            case 21:
                top_iteration(true);
                break;
            case 22:
                bh_schedule(fdp.ConsumeIntegralInRange<int>(0, kBhs - 1), false, true);
                break;
            case 23:
                external_disable();
                break;
            case 24:
                external_enable();
                break;
            case 25:
                introspect();
                break;
            case 26:
                vclock_enabled = !vclock_enabled;
                aio::set_virtual_clock_enabled(vclock_enabled);
                for (auto& t : timers) {
                    t.touched |= t.clock == Clock::virtual_;
                }
                break;
            case 27:
                pool_limits(fdp.ConsumeIntegralInRange<int>(-1, 3),
                            fdp.ConsumeIntegralInRange<int>(-1, 3));
                break;
            default:
                top_iteration();
                break;
            }
        }
        teardown();
    }

    void teardown()
    {
        // Drain: callbacks act no more (budget 0); every scheduled BH, one-shot, due timer
        // and pool completion must run within a bounded number of iterations.
        draining = true;
        while (external_disabled > 0) {
            external_enable();
        }
        if (!vclock_enabled) {
            vclock_enabled = true;
            aio::set_virtual_clock_enabled(true);
        }
        if (raw->thread_pool().max_threads() < 1 || raw->thread_pool().min_threads() > 2) {
            raw->thread_pool().set_limits(0, 2);
        }
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        for (int i = 0;; ++i) {
            top_iteration();
            bool pending = !jobs_done();
            for (const auto& b : bhs) {
                pending |= b.alive && b.pending;
            }
            for (int k = 0; k < n_oneshots; ++k) {
                pending |= oneshots[static_cast<std::size_t>(k)].pending;
            }
            if (!pending) {
                break;
            }
            if (!(i < 16 || std::chrono::steady_clock::now() < end)) {
                for (int k = 0; k < kBhs; ++k) {
                    std::fprintf(stderr, "bh %d alive %d pending %d\n", k,
                                 bhs[static_cast<std::size_t>(k)].alive,
                                 bhs[static_cast<std::size_t>(k)].pending);
                }
                for (int k = 0; k < n_oneshots; ++k) {
                    std::fprintf(stderr, "oneshot %d pending %d\n", k,
                                 oneshots[static_cast<std::size_t>(k)].pending);
                }
                std::fprintf(stderr, "jobs done %d\n", jobs_done());
            }
            EXPECT_MODEL(i < 16 || std::chrono::steady_clock::now() < end,
                         "work still pending after draining (lost wake-up or lost completion)");
            if (i >= 16) {
                std::this_thread::sleep_for(std::chrono::microseconds(100));  // pool workers
            }
        }
        for (int k = 0; k < n_oneshots; ++k) {
            EXPECT_MODEL(oneshots[static_cast<std::size_t>(k)].runs == 1,
                         "a one-shot did not run exactly once");
        }
        // fds first, while the context surely lives: clear, close, forget stale numbers.
        for (int i = 0; i < kFds; ++i) {
            fd_clear(i, false);
            FdSlot& f = fds[static_cast<std::size_t>(i)];
            if (f.is_notifier()) {
                f.notifier.reset();
            } else {
                if (f.wfd >= 0 && f.wfd != f.rfd) {
                    close(f.wfd);
                }
                if (f.rfd >= 0) {
                    close(f.rfd);
                }
            }
            f.rfd = f.wfd = -1;
        }
        guard.reset();
        for (const auto& [gen, number] : stale_gens) {
            raw->clear_fd_handler(number);
        }
        stale_gens.clear();
        // Destruction order from the input; sometimes the last reference goes from inside
        // a callback (the loop must hold its own reference across dispatch).
        const int order = fdp.ConsumeIntegralInRange<int>(0, 2);
        if (order == 1) {
            ctx.reset();  // BHs, timers (and an attached GMainContext) keep it alive
        }
        if (order == 2 && !glib) {
            // The last live BH becomes the only owner and deletes itself while dispatched.
            int last = -1;
            for (int i = 0; i < kBhs; ++i) {
                if (bhs[static_cast<std::size_t>(i)].alive) {
                    last = i;
                }
            }
            if (last >= 0) {
                for (int i = 0; i < kBhs; ++i) {
                    if (i != last) {
                        bh_delete(i, false);
                    }
                }
                for (auto& t : timers) {
                    t.alive = false;
                    t.t.reset();
                }
                for (auto& j : jobs) {
                    j->h.reset();
                }
                BhSlot& b = bhs[static_cast<std::size_t>(last)];
                b.acts = Acts{kDeleteSelf, kNone, 0};
                ctx.reset();
                b.h.schedule();
                b.pending = true;
                budget = 1;
                Context* r = raw;
                raw = nullptr;
                frames.push_back(Frame{next_frame++});
                r->poll(false);  // the context is finalized on the way out of this call
                frames.pop_back();
                budget = 0;
                EXPECT_MODEL(!b.alive, "the last BH did not run");
            }
        }
        if (mc != nullptr) {
            // GLib's reference keeps the context alive until the source is destroyed.
            g_source_destroy(raw->gsource());
        }
        for (int i = 0; i < kBhs; ++i) {
            bhs[static_cast<std::size_t>(i)].alive = false;
            bhs[static_cast<std::size_t>(i)].h.reset();
        }
        for (auto& t : timers) {
            t.alive = false;
            t.t.reset();
        }
        for (auto& j : jobs) {
            j->h.reset();
        }
        ctx.reset();
        if (mc != nullptr) {
            g_main_context_unref(mc);  // the last reference: pool drained, context finalized
            mc = nullptr;
        }
        raw = nullptr;
        jobs.clear();
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    FuzzedDataProvider fdp(data, size);
    Harness h(fdp);
    h.run();
    return 0;
}
