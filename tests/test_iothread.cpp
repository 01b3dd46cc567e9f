// SPDX-License-Identifier: LGPL-2.1-or-later
// IOThreads, Context::current(), run_in/wait_while/kick, adaptive busy polling, stats.
#include "test_helpers.hpp"

#include <aio/event_notifier.hpp>
#include <aio/iothread.hpp>
#include <aio/timer.hpp>
#include <aio/wait.hpp>

#include <glib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sched.h>

namespace aio::test {
namespace {

#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define AIO_TEST_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define AIO_TEST_SANITIZED 1
#endif

constexpr int scaled([[maybe_unused]] int plain, [[maybe_unused]] int sanitized)
{
#if defined(AIO_TEST_SANITIZED)
    return sanitized;
#else
    return plain;
#endif
}

// Aborts the process, naming `what`, if `progress` stops changing for `stall` (a lost
// wake-up must fail the test, not hang it).
class Watchdog {
public:
    Watchdog(const char* what, const std::atomic<long>& progress,
             std::chrono::seconds stall = std::chrono::seconds(5))
        : thread_([this, what, &progress, stall] {
              long last = progress.load();
              auto since = std::chrono::steady_clock::now();
              while (!done_.load()) {
                  std::this_thread::sleep_for(std::chrono::milliseconds(50));
                  long now = progress.load();
                  if (now != last) {
                      last = now;
                      since = std::chrono::steady_clock::now();
                  } else if (std::chrono::steady_clock::now() - since > stall) {
                      std::fprintf(stderr, "watchdog: %s stalled at %ld (lost wake-up?)\n",
                                   what, now);
                      std::abort();
                  }
              }
          })
    {
    }
    ~Watchdog()
    {
        done_ = true;
        thread_.join();
    }

private:
    std::atomic<bool> done_{false};
    std::thread thread_;
};

// Passes a token around a ring of IOThreads `hops` times with one-shot BHs.
void token_ring(int threads, long hops, bool polling)
{
    std::vector<std::shared_ptr<IOThread>> ring;
    for (int i = 0; i < threads; ++i) {
        ring.push_back(IOThread::create("ring" + std::to_string(i)));
        ring.back()->context().set_poll_params(polling ? 32768 : 0);
    }
    std::atomic<long> count{0};
    std::atomic<bool> finished{false};
    std::function<void(int)> pass = [&](int at) {
        EXPECT_EQ(Context::current(), &ring[at]->context()) << "ran on the wrong thread";
        if (count.fetch_add(1) + 1 >= hops) {
            finished = true;
            kick();
            return;
        }
        int next = (at + 1) % threads;
        ring[next]->context().schedule([&pass, next] { pass(next); }, "token");
    };
    {
        Watchdog dog("token ring", count);
        ring[0]->context().schedule([&pass] { pass(0); }, "token");
        ContextPtr waiter = Context::create("ring-waiter");
        wait_while(*waiter, [&] { return !finished.load(); });
    }
    EXPECT_EQ(count.load(), hops);
    for (auto& t : ring) {
        t->stop();
    }
}

TEST(IOThread, PingPongPollingOff) { token_ring(2, scaled(40'000, 5'000), false); }
TEST(IOThread, PingPongPollingOn) { token_ring(2, scaled(40'000, 5'000), true); }
TEST(IOThread, TokenRingOfFive) { token_ring(5, scaled(100'000, 10'000), true); }

TEST(IOThread, CurrentContext)
{
    auto t = IOThread::create("cur");
    EXPECT_EQ(Context::current(), nullptr) << "a plain thread has no current context";
    Context* seen = run_in(t->context(), [] { return Context::current(); });
    EXPECT_EQ(seen, &t->context());
    EXPECT_TRUE(t->running());
}

TEST(IOThread, RunInReturnsValuesAndExceptions)
{
    auto t = IOThread::create("run-in");
    std::thread::id where = run_in(t->context(), [] { return std::this_thread::get_id(); });
    EXPECT_EQ(where, t->thread_id());
    EXPECT_THROW(run_in(t->context(), []() -> int { throw std::runtime_error("x"); }),
                 std::runtime_error);
    // From inside the thread itself run_in runs directly (no self-deadlock).
    int v = run_in(t->context(), [&] { return run_in(t->context(), [] { return 5; }); });
    EXPECT_EQ(v, 5);
}

TEST(IOThread, StopRunsEveryBhScheduledBefore)
{
    for (int round = 0; round < 20; ++round) {
        auto t = IOThread::create("stopper");
        std::atomic<int> ran{0};
        constexpr int kBhs = 1000;
        for (int i = 0; i < kBhs; ++i) {
            t->context().schedule([&] { ran.fetch_add(1); });
        }
        t->stop();
        EXPECT_EQ(ran.load(), kBhs) << "round " << round;
        EXPECT_FALSE(t->running());
        t->stop();  // a second stop is a no-op
        EXPECT_EQ(ran.load(), kBhs);
    }
}

TEST(IOThread, StartStopCycles)
{
    const int cycles = scaled(1000, 200);
    for (int i = 0; i < cycles; ++i) {
        auto t = IOThread::create("cycle");
        if (i % 2 == 0) {
            std::atomic<bool> ran{false};
            t->context().schedule([&] { ran = true; });
            t->stop();
            ASSERT_TRUE(ran.load());
        }
    }
}

TEST(IOThread, SwitchesToItsGMainContextWithWorkInFlight)
{
    auto t = IOThread::create("glib");
    std::atomic<long> bh_runs{0};
    std::atomic<bool> keep_going{true};
    // A self-rescheduling chain of one-shots keeps work in flight across the switch.
    std::function<void()> chain = [&] {
        bh_runs.fetch_add(1);
        if (keep_going.load()) {
            t->context().schedule(chain);
        }
    };
    t->context().schedule(chain);
    while (bh_runs.load() < 100) {
        std::this_thread::yield();
    }
    GMainContext* gctx = t->g_main_context();
    ASSERT_NE(gctx, nullptr);
    EXPECT_EQ(t->g_main_context(), gctx) << "created once";

    // A plain GLib source on the IOThread's GMainContext runs in the I/O thread.
    // The hand-off to the callback goes through GLib's own (futex) locks, which TSan
    // cannot see: publish td through an atomic that predates the thread instead.
    static std::atomic<int> handoff{0};
    struct TimeoutData {
        std::atomic<int> fired{0};
        std::atomic<std::thread::id> where{};
        std::atomic<GMainContext*> thread_default{nullptr};
    } td;
    GSource* timeout = g_timeout_source_new(1);
    g_source_set_callback(
        timeout,
        [](gpointer p) -> gboolean {
            (void)handoff.load(std::memory_order_acquire);
            auto* d = static_cast<TimeoutData*>(p);
            d->where.store(std::this_thread::get_id());
            d->thread_default.store(g_main_context_get_thread_default());
            return d->fired.fetch_add(1) + 1 < 3 ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
        },
        &td, nullptr);
    handoff.store(1, std::memory_order_release);
    g_source_attach(timeout, gctx);
    g_source_unref(timeout);
    {
        Watchdog dog("glib switch", bh_runs);
        while (td.fired.load() < 3) {
            std::this_thread::yield();
        }
    }
    EXPECT_EQ(td.where.load(), t->thread_id());
    EXPECT_EQ(td.thread_default.load(), gctx) << "pushed as the thread default";
    const long before = bh_runs.load();
    while (bh_runs.load() < before + 100) {
        std::this_thread::yield();  // BHs keep running under the GMainLoop
    }
    keep_going = false;
    t->stop();
}

TEST(IOThread, LastReferenceDroppedInsideTheThreadDoesNotSelfJoin)
{
    auto holder = std::make_shared<std::shared_ptr<IOThread>>(IOThread::create("self"));
    std::atomic<bool> dropped{false};
    (*holder)->context().schedule([holder, &dropped] {
        holder->reset();  // ~IOThread runs here, on the I/O thread itself
        dropped = true;
    });
    holder.reset();
    while (!dropped.load()) {
        std::this_thread::yield();
    }
    SUCCEED();  // no deadlock, no std::terminate from joining itself
}

TEST(WaitWhile, KickedFromThreeThreads)
{
    const long kicks = scaled(100'000, 10'000);
    ContextPtr ctx = Context::create("waiter");
    std::atomic<long> value{0};
    std::vector<std::thread> kickers;
    for (int k = 0; k < 3; ++k) {
        kickers.emplace_back([&] {
            for (long i = 0; i < kicks; ++i) {
                value.fetch_add(1);
                kick();
            }
        });
    }
    long seen_steps = 0;
    {
        Watchdog dog("wait_while", value);
        for (long target = 1000; target <= 3 * kicks; target += 1000) {
            wait_while(*ctx, [&] { return value.load() < target; });
            ++seen_steps;
        }
    }
    for (auto& t : kickers) {
        t.join();
    }
    EXPECT_EQ(value.load(), 3 * kicks);
    EXPECT_EQ(seen_steps, 3 * kicks / 1000);
}

TEST(WaitWhile, TimesOut)
{
    ContextPtr ctx = Context::create("timeout");
    const std::int64_t start = clock_ns(Clock::realtime);
    EXPECT_FALSE(wait_while(*ctx, [] { return true; }, 5'000'000));
    EXPECT_GE(clock_ns(Clock::realtime) - start, 5'000'000) << "never early";
    EXPECT_TRUE(wait_while(*ctx, [] { return false; }, 5'000'000));
}

TEST(WaitWhile, WaitsOnAnIOThreadsWork)
{
    auto t = IOThread::create("worker");
    std::atomic<bool> done{false};
    t->context().schedule([&] {
        done = true;
        kick();
    });
    wait_while(t->context(), [&] { return !done.load(); });  // from a thread with no context
    EXPECT_TRUE(done.load());
}

TEST(BusyPolling, ParamsAreValidated)
{
    ContextPtr ctx = Context::create("params");
    EXPECT_THROW(ctx->set_poll_params(-1), std::invalid_argument);
    EXPECT_THROW(ctx->set_poll_params(100, -2), std::invalid_argument);
    try {
        ctx->set_poll_params(1, 1, -3);
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("shrink=-3"), std::string::npos) << e.what();
    }
    ctx->set_poll_params(0, 0, 0);
}

TEST(BusyPolling, WindowGrowsWhileEventsArriveAndShrinksWhenTheyStopPaying)
{
    if (std::getenv("AIO_TEST_UNDER_VALGRIND") != nullptr) {
        GTEST_SKIP() << "busy-poll windows are timing behaviour; valgrind runs ~50x slower";
    }
    ContextPtr ctx = Context::create("window");
    ctx->set_poll_params(1'000'000);  // 1 ms max
    // A realistic handler: poll() reports what the fd would (a flag set with it), and
    // poll_ready consumes both.
    EventNotifier e;
    std::atomic<bool> pending{false};
    int handled = 0;
    auto fire = [&] {
        pending = true;
        e.set();
    };
    ctx->set_fd_handler(e.fd(), FdHandlers{.read = [&] {
                                               e.test_and_clear();
                                               pending = false;
                                               ++handled;
                                           },
                                           .write = {},
                                           .poll = [&] { return pending.load(); },
                                           .poll_ready = [&] {
                                               e.test_and_clear();
                                               pending = false;
                                               ++handled;
                                           },
                                           .name = "window-test"});
    auto window = [&] {
        for (auto& h : ctx->stats().handlers) {
            if (h.fd == e.fd()) {
                return h.poll_window_ns;
            }
        }
        return std::int64_t{-1};
    };
    EXPECT_EQ(window(), 0);
    // An event that arrives within max_ns while the window is 0 grows it (to 4 us);
    // events the window catches keep it.
    fire();
    ctx->poll(true);
    EXPECT_EQ(window(), 4'000) << "starts at 4 us";
    const auto hits = ctx->stats().busy_poll_hits;
    for (int i = 0; i < 5; ++i) {
        fire();
        ctx->poll(true);
        EXPECT_EQ(window(), 4'000) << "found by polling: the window stays";
    }
    EXPECT_EQ(ctx->stats().busy_poll_hits, hits + 5);
    EXPECT_EQ(handled, 6);

    // An event that arrives long after the window (further apart than max_ns): polling
    // did not pay, the window drops to zero (shrink = 0).
    std::thread late([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        fire();
    });
    ctx->poll(true);
    late.join();
    EXPECT_EQ(window(), 0);
    EXPECT_GT(ctx->stats().busy_poll_ns, 0u);
    ctx->clear_fd_handler(e.fd());
}

TEST(BusyPolling, NotifierIsSeenWithoutASyscall)
{
    if (std::getenv("AIO_TEST_UNDER_VALGRIND") != nullptr) {
        GTEST_SKIP() << "busy-poll windows are timing behaviour; valgrind runs ~50x slower";
    }
    // Busy polling is (rightly) off while the notifying thread runs on the poller's CPU,
    // which the scheduler may choose when other tests load the machine: pin the two
    // threads to different CPUs.
    cpu_set_t mine;
    CPU_ZERO(&mine);
    ASSERT_EQ(pthread_getaffinity_np(pthread_self(), sizeof mine, &mine), 0);
    if (CPU_COUNT(&mine) < 2) {
        GTEST_SKIP() << "needs two CPUs";
    }
    int cpus[2];
    for (int c = 0, k = 0; k < 2; ++c) {
        if (CPU_ISSET(c, &mine)) {
            cpus[k++] = c;
        }
    }
    auto pin = [](int cpu) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    };
    auto t = IOThread::create("spin");  // default 32 us window
    run_in(t->context(), [&] { pin(cpus[1]); });
    pin(cpus[0]);
    // Warm the notifier's window with cross-thread BHs, then count eventfd writes.
    std::atomic<long> n{0};
    for (int i = 0; i < 2000; ++i) {
        std::atomic<bool> done{false};
        t->context().schedule([&] {
            n.fetch_add(1);
            done = true;
        });
        while (!done.load()) {
        }
    }
    const auto st = t->context().stats();
    EXPECT_EQ(n.load(), 2000);
    EXPECT_LT(st.eventfd_writes, 2000u) << "busy polling should catch some notifies";
    t->stop();
    pthread_setaffinity_np(pthread_self(), sizeof mine, &mine);
}

TEST(BusyPolling, PollReadyThatNestsAPollIsNotReentered)
{
    // QEMU's test-nested-aio-poll: the poll handler is always ready; its poll_ready nests a
    // blocking poll that a second notifier wakes. Re-entering poll_ready would recurse.
    ContextPtr ctx = Context::create("nested");
    ctx->set_poll_params(1'000'000, 2, 2);
    EventNotifier poll_notifier(true);
    EventNotifier dummy;
    int depth = 0;
    int max_depth = 0;
    int ready_calls = 0;
    ctx->set_fd_handler(poll_notifier.fd(),
                        FdHandlers{.read = [&] { poll_notifier.test_and_clear(); },
                                   .write = {},
                                   .poll = [] { return true; },
                                   .poll_ready = [&] {
                                       ++ready_calls;
                                       max_depth = std::max(max_depth, ++depth);
                                       dummy.set();
                                       EXPECT_TRUE(ctx->poll(true));
                                       --depth;
                                   }});
    ctx->set_fd_handler(dummy.fd(), FdHandlers{.read = [&] { dummy.test_and_clear(); },
                                               .write = {},
                                               .poll = [] { return false; },
                                               .poll_ready = [] { FAIL() << "never ready"; }});
    EXPECT_TRUE(ctx->poll(false));  // read handler clears poll_notifier; windows start
    for (int i = 0; i < 3; ++i) {
        EXPECT_TRUE(ctx->poll(true));
    }
    EXPECT_GE(ready_calls, 1);
    EXPECT_EQ(max_depth, 1) << "poll_ready was re-entered from its own nested poll";
    ctx->clear_fd_handler(poll_notifier.fd());
    ctx->clear_fd_handler(dummy.fd());
}

TEST(Stats, CountIterationsWakeupsAndDispatches)
{
    ContextPtr ctx = Context::create("stats");
    EventNotifier e;
    ctx->set_event_notifier(e, FdHandlers{.read = [&] { e.test_and_clear(); }, .name = "e"});
    ctx->schedule([] {});
    ctx->poll(true);
    std::thread t([&] { e.set(); });
    ctx->poll(true);
    t.join();
    std::thread t2([c = ctx] { c->schedule([] {}); });
    while (ctx->stats().bh_runs < 2) {
        ctx->poll(true);
    }
    t2.join();
    const ContextStats s = ctx->stats();
    EXPECT_GE(s.iterations, 3u);
    EXPECT_EQ(s.bh_runs, 2u);
    EXPECT_EQ(s.fd_dispatches, 1u);
    ASSERT_EQ(s.handlers.size(), 1u);
    EXPECT_EQ(s.handlers[0].name, "e");
    EXPECT_EQ(s.handlers[0].dispatches, 1u);
    EXPECT_EQ(s.wakeups_fd + s.wakeups_notify + s.wakeups_timer, s.blocking_waits);
    ctx->clear_event_notifier(e);
}

TEST(Stats, HandlerReadyOnEveryIterationIsNamedOnce)
{
    struct Capture {
        int count = 0;
        std::string text;
    } cap;
    guint id = g_log_set_handler(
        "aiocontext", G_LOG_LEVEL_WARNING,
        [](const gchar*, GLogLevelFlags, const gchar* msg, gpointer p) {
            auto* c = static_cast<Capture*>(p);
            ++c->count;
            c->text = msg;
        },
        &cap);
    ContextPtr ctx = Context::create("spinner");
    EventNotifier e(true);  // never drained: ready on every iteration
    ctx->set_event_notifier(e, FdHandlers{.read = [] {}, .name = "undrained"});
    const std::int64_t start = clock_ns(Clock::realtime);
    while (clock_ns(Clock::realtime) - start < 1'300'000'000) {
        ctx->poll(false);
    }
    g_log_remove_handler("aiocontext", id);
    EXPECT_EQ(cap.count, 1);
    EXPECT_NE(cap.text.find("undrained"), std::string::npos) << cap.text;
    EXPECT_NE(cap.text.find("fd " + std::to_string(e.fd())), std::string::npos) << cap.text;
    ctx->clear_event_notifier(e);
}

}  // namespace
}  // namespace aio::test
