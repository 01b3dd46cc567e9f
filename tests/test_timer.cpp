// SPDX-License-Identifier: LGPL-2.1-or-later
// Timers under every driver: poll() (each fd monitor) and g_main_context_iteration().
// Timing assertions are one-sided ("never early"; "woken long before the 20 s
// deadline"), never "fires within x ms".
#include "test_helpers.hpp"

#include <aio/bottom_half.hpp>
#include <aio/event_notifier.hpp>
#include <aio/timer.hpp>

#include <algorithm>
#include <atomic>
#include <climits>
#include <memory>
#include <random>
#include <thread>
#include <vector>

namespace aio::test {
namespace {

using TimerTest = DriverTest;
AIO_INSTANTIATE_DRIVERS(TimerTest);

constexpr std::int64_t kMs = 1'000'000;

TEST_P(TimerTest, ScheduleAndRearmNeverEarly)
{
    int n = 0;
    std::int64_t expiry = 0;
    std::vector<std::int64_t> fired_at;
    Timer t;
    t = Timer(*ctx, Clock::realtime, [&] {
        fired_at.push_back(clock_ns(Clock::realtime));
        if (++n < 2) {
            expiry += 20 * kMs;
            t.arm_at(expiry);
        }
    });
    expiry = clock_ns(Clock::realtime) + 20 * kMs;
    t.arm_at(expiry);
    EXPECT_TRUE(t.pending());
    EXPECT_EQ(t.expire_time(), expiry);
    EXPECT_FALSE(iter(false));
    EXPECT_EQ(n, 0);
    while (n < 1) {
        iter(true);
    }
    EXPECT_GE(fired_at[0], expiry - 20 * kMs) << "fired early";
    EXPECT_TRUE(t.pending()) << "re-armed from its callback";
    EXPECT_FALSE(iter(false));
    EXPECT_EQ(n, 1);
    while (n < 2) {
        iter(true);
    }
    EXPECT_GE(fired_at[1], expiry) << "fired early";
    EXPECT_FALSE(t.pending());
    EXPECT_EQ(t.expire_time(), -1);
    EXPECT_FALSE(iter(false));
}

TEST_P(TimerTest, TenThousandRandomTimersNeverEarly)
{
    constexpr int kCount = 10'000;
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<std::int64_t> dist(0, 50 * kMs);
    std::vector<std::int64_t> deadline(kCount);
    std::vector<Timer> timers;
    timers.reserve(kCount);
    int fired = 0;
    int early = 0;
    const std::int64_t base = clock_ns(Clock::realtime);
    for (int i = 0; i < kCount; ++i) {
        deadline[i] = base + dist(rng);
        timers.emplace_back(*ctx, Clock::realtime, [&, i] {
            early += clock_ns(Clock::realtime) < deadline[i];
            ++fired;
        });
        timers.back().arm_at(deadline[i]);
    }
    while (fired < kCount) {
        iter(true);
    }
    EXPECT_EQ(early, 0);
    EXPECT_EQ(fired, kCount);
}

TEST_P(TimerTest, EqualDeadlinesFireInArmingOrder)
{
    constexpr int kCount = 10'000;
    std::vector<int> order;
    order.reserve(kCount);
    std::vector<Timer> timers;
    timers.reserve(kCount);
    const std::int64_t when = clock_ns(Clock::realtime) + 1 * kMs;
    for (int i = 0; i < kCount; ++i) {
        timers.emplace_back(*ctx, Clock::realtime, [&order, i] { order.push_back(i); });
    }
    // Arm in a shuffled order; that order is the expected firing order.
    std::vector<int> arming(kCount);
    for (int i = 0; i < kCount; ++i) {
        arming[i] = i;
    }
    std::shuffle(arming.begin(), arming.end(), std::mt19937(7));
    for (int i : arming) {
        timers[i].arm_at(when);
    }
    while (order.size() < static_cast<std::size_t>(kCount)) {
        iter(true);
    }
    EXPECT_EQ(order, arming);
}

TEST_P(TimerTest, AnticipateOnlyMovesEarlier)
{
    int n = 0;
    Timer t(*ctx, Clock::realtime, [&] { ++n; });
    const std::int64_t now = clock_ns(Clock::realtime);
    t.anticipate(now + 10'000 * kMs);  // an idle timer is armed
    EXPECT_EQ(t.expire_time(), now + 10'000 * kMs);
    t.anticipate(now + 20'000 * kMs);  // later: ignored
    EXPECT_EQ(t.expire_time(), now + 10'000 * kMs);
    t.anticipate(now - 1);  // earlier (the past): moved, due now
    EXPECT_EQ(t.expire_time(), now - 1);
    EXPECT_TRUE(iter(false));
    EXPECT_EQ(n, 1);
}

TEST_P(TimerTest, ScalesConvertToNanoseconds)
{
    Timer t(*ctx, Clock::realtime, [] {}, Scale::ms);
    t.arm_at(5);
    EXPECT_EQ(t.expire_time(), 5 * kMs);
    Timer u(*ctx, Clock::realtime, [] {}, Scale::us);
    u.arm_at(7);
    EXPECT_EQ(u.expire_time(), 7'000);
    EXPECT_EQ(clock_get(Clock::realtime, Scale::ms), clock_ns(Clock::realtime) / kMs);
}

TEST_P(TimerTest, ExtremeDeadlinesSaturate)
{
    int n_max = 0;
    int n_min = 0;
    int n_past = 0;
    Timer never(*ctx, Clock::realtime, [&] { ++n_max; });
    Timer min(*ctx, Clock::realtime, [&] { ++n_min; });
    Timer past(*ctx, Clock::realtime, [&] { ++n_past; });
    Timer huge_ms(*ctx, Clock::realtime, [&] { ++n_max; }, Scale::ms);

    never.arm_at(INT64_MAX);
    EXPECT_EQ(ctx->compute_timeout(), -1) << "INT64_MAX is 'never', not a huge wait";
    never.arm_after(INT64_MAX);  // now + INT64_MAX saturates
    EXPECT_EQ(never.expire_time(), INT64_MAX);
    huge_ms.arm_at(INT64_MAX / 2);  // * 1e6 saturates
    EXPECT_EQ(huge_ms.expire_time(), INT64_MAX);
    huge_ms.arm_after(INT64_MAX / 3);
    EXPECT_EQ(huge_ms.expire_time(), INT64_MAX);
    EXPECT_EQ(ctx->compute_timeout(), -1);

    min.arm_at(INT64_MIN);  // clamped to 0: due now
    EXPECT_EQ(min.expire_time(), 0);
    past.arm_after(-5 * kMs);
    EXPECT_EQ(ctx->compute_timeout(), 0);
    EXPECT_TRUE(iter(false));
    EXPECT_EQ(n_min, 1);
    EXPECT_EQ(n_past, 1);
    EXPECT_FALSE(iter(false));
    EXPECT_EQ(n_max, 0);
    EXPECT_TRUE(never.pending());
}

TEST_P(TimerTest, ZeroDelayRearmDoesNotStarveBhsOrFds)
{
    constexpr int kRounds = 10'000;
    int timer_runs = 0;
    int bh_runs = 0;
    int fd_runs = 0;
    Timer t;
    t = Timer(*ctx, Clock::realtime, [&] {
        ++timer_runs;
        t.arm_after(0);  // later than this pass's `now`: waits for the next pass
    });
    BottomHalf bh;
    bh = ctx->make_bh([&] {
        ++bh_runs;
        bh.schedule();
    });
    EventNotifier e(true);
    ctx->set_event_notifier(e, FdHandlers{.read = [&] { ++fd_runs; }});  // never cleared
    t.arm_after(0);
    bh.schedule();
    for (int i = 0; i < kRounds; ++i) {
        iter(false);
    }
    // Every round runs each source at most once, and none is starved.
    EXPECT_GE(bh_runs, kRounds - 1);
    EXPECT_GE(fd_runs, kRounds / 2);
    EXPECT_GE(timer_runs, 1);
    EXPECT_LE(timer_runs, kRounds);
    ctx->clear_event_notifier(e);
}

TEST_P(TimerTest, MovingEarlierFromAnotherThreadWakesASleepingLoop)
{
    int n = 0;
    Timer t(*ctx, Clock::realtime, [&] { ++n; });
    t.arm_after(20'000 * kMs);  // 20 s
    EXPECT_FALSE(iter(false));
    const std::int64_t start = clock_ns(Clock::realtime);
    std::thread mover([&] { t.anticipate(clock_ns(Clock::realtime) + 1 * kMs); });
    while (n == 0) {
        iter(true);
    }
    mover.join();
    // A lost wake-up would sleep the full 20 s.
    EXPECT_LT(clock_ns(Clock::realtime) - start, 5'000 * kMs);
}

TEST_P(TimerTest, ArmingAnEarlierTimerFromAnotherThreadWakesTheLoop)
{
    int n = 0;
    Timer slow(*ctx, Clock::realtime, [] {});
    Timer fast(*ctx, Clock::realtime, [&] { ++n; });
    slow.arm_after(20'000 * kMs);
    std::thread armer([&] { fast.arm_after(1 * kMs); });
    const std::int64_t start = clock_ns(Clock::realtime);
    while (n == 0) {
        iter(true);
    }
    armer.join();
    EXPECT_LT(clock_ns(Clock::realtime) - start, 5'000 * kMs);
}

TEST_P(TimerTest, CancelPreventsTheRun)
{
    int n = 0;
    Timer t(*ctx, Clock::realtime, [&] { ++n; });
    t.arm_after(-1);
    t.cancel();
    t.cancel();  // twice: a no-op
    EXPECT_FALSE(t.pending());
    EXPECT_FALSE(iter(false));
    EXPECT_EQ(n, 0);
}

TEST_P(TimerTest, DestroyedInsideItsOwnCallback)
{
    int n = 0;
    auto t = std::make_unique<Timer>();
    *t = Timer(*ctx, Clock::realtime, [&] {
        ++n;
        t->arm_after(-1);  // re-armed, then destroyed: must not run again
        t.reset();
    });
    t->arm_after(-1);
    EXPECT_TRUE(iter(false));
    EXPECT_EQ(n, 1);
    EXPECT_FALSE(t);
    EXPECT_FALSE(iter(false));
    EXPECT_EQ(n, 1);
}

TEST_P(TimerTest, DestroyFromAnotherThreadWaitsForTheCallback)
{
    std::atomic<bool> inside{false};
    std::atomic<bool> release{false};
    std::atomic<bool> finished{false};
    Timer t(*ctx, Clock::realtime, [&] {
        inside = true;
        while (!release.load()) {
            std::this_thread::yield();
        }
        finished = true;
    });
    t.arm_after(-1);
    std::thread destroyer([&] {
        while (!inside.load()) {
            std::this_thread::yield();
        }
        release = true;
        t.reset();  // returns only after the callback has finished
        EXPECT_TRUE(finished.load());
    });
    EXPECT_TRUE(iter(false));
    destroyer.join();
}

TEST_P(TimerTest, VirtualClockPausesAndResumes)
{
    int n = 0;
    Timer t(*ctx, Clock::virtual_, [&] { ++n; });
    t.arm_after(5 * kMs);
    set_virtual_clock_enabled(false);
    EXPECT_FALSE(virtual_clock_enabled());
    const std::int64_t frozen = clock_ns(Clock::virtual_);
    const std::int64_t real0 = clock_ns(Clock::realtime);
    while (clock_ns(Clock::realtime) - real0 < 10 * kMs) {
        iter(false);  // the deadline passes in real time, not in virtual time
    }
    EXPECT_EQ(clock_ns(Clock::virtual_), frozen) << "a disabled virtual clock stands still";
    EXPECT_EQ(n, 0);
    EXPECT_EQ(ctx->compute_timeout(), -1) << "a stopped clock's deadline is never reached";
    set_virtual_clock_enabled(true);
    EXPECT_GE(clock_ns(Clock::virtual_), frozen);
    EXPECT_LT(clock_ns(Clock::virtual_) - frozen, 5 * kMs) << "the pause is not counted";
    while (n == 0) {
        iter(true);
    }
    EXPECT_EQ(n, 1);
}

TEST_P(TimerTest, HostAndVirtualRtClocksFire)
{
    int host = 0;
    int vrt = 0;
    Timer h(*ctx, Clock::host, [&] { ++host; });
    Timer v(*ctx, Clock::virtual_rt, [&] { ++vrt; });
    h.arm_after(1 * kMs);
    v.arm_after(1 * kMs);
    while (host == 0 || vrt == 0) {
        iter(true);
    }
    SUCCEED();
}

TEST_P(TimerTest, SubMillisecondTimerIsNeverEarly)
{
    // Under GLib the timerfd wakes the loop at the ns deadline; under poll() the wait has
    // ns precision. Either way: never early.
    constexpr int kRounds = 20;
    int early = 0;
    int n = 0;
    std::int64_t deadline = 0;
    Timer t;
    t = Timer(*ctx, Clock::realtime, [&] {
        early += clock_ns(Clock::realtime) < deadline;
        if (++n < kRounds) {
            deadline = clock_ns(Clock::realtime) + 250'000;
            t.arm_at(deadline);
        }
    });
    deadline = clock_ns(Clock::realtime) + 250'000;
    t.arm_at(deadline);
    while (n < kRounds) {
        iter(true);
    }
    EXPECT_EQ(early, 0);
}

TEST_P(TimerTest, ManyThreadsArmAndCancel)
{
    constexpr int kThreads = 4;
    const int ops = 5'000;
    std::atomic<int> fired{0};
    std::vector<std::vector<Timer>> per_thread(kThreads);
    for (auto& v : per_thread) {
        for (int i = 0; i < 8; ++i) {
            v.emplace_back(*ctx, Clock::realtime, [&] { fired.fetch_add(1); });
        }
    }
    std::atomic<int> done{0};
    std::vector<std::thread> threads;
    for (int k = 0; k < kThreads; ++k) {
        threads.emplace_back([&, k] {
            std::mt19937 rng(static_cast<unsigned>(k));
            for (int i = 0; i < ops; ++i) {
                Timer& tm = per_thread[k][rng() % 8];
                switch (rng() % 3) {
                case 0:
                    tm.arm_after(static_cast<std::int64_t>(rng() % 2'000'000));
                    break;
                case 1:
                    tm.anticipate(clock_ns(Clock::realtime) + rng() % 1'000'000);
                    break;
                default:
                    tm.cancel();
                    break;
                }
            }
            done.fetch_add(1);
        });
    }
    while (done.load() < kThreads) {
        iter(false);
    }
    for (auto& t : threads) {
        t.join();
    }
    // Whatever is still armed fires; then nothing is pending.
    auto any_pending = [&] {
        for (auto& v : per_thread) {
            for (auto& tm : v) {
                if (tm.pending()) {
                    return true;
                }
            }
        }
        return false;
    };
    while (any_pending()) {
        iter(true);
    }
    EXPECT_GT(fired.load(), 0);
}

}  // namespace
}  // namespace aio::test
