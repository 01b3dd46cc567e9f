// SPDX-License-Identifier: LGPL-2.1-or-later
// The per-context thread pool, under every driver. Gates (not sleeps) make the
// interleavings deterministic.
#include "test_helpers.hpp"

#include <aio/thread_pool.hpp>

#include <atomic>
#include <condition_variable>
#include <dirent.h>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

namespace aio::test {
namespace {

using PoolTest = DriverTest;
AIO_INSTANTIATE_DRIVERS(PoolTest);

#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define AIO_TEST_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define AIO_TEST_SANITIZED 1
#endif

// A gate jobs block on until the test opens it.
class Gate {
public:
    void wait()
    {
        std::unique_lock lk(m_);
        cv_.wait(lk, [this] { return open_; });
    }
    void open()
    {
        {
            std::lock_guard lk(m_);
            open_ = true;
        }
        cv_.notify_all();
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool open_ = false;
};

template <class Pred>
void spin_until(Pred pred)
{
    while (!pred()) {
        std::this_thread::yield();
    }
}

TEST_P(PoolTest, FireAndForgetRuns)
{
    std::atomic<int> n{0};
    ctx->thread_pool().submit([&] { n.fetch_add(1); });
    while (n.load() == 0) {
        iter(true);  // the completion BH's notify (or nothing) wakes us; must not hang
    }
    EXPECT_EQ(n.load(), 1);
    drain();
}

TEST_P(PoolTest, CompletionRunsOnlyWhenTheLoopIsPolled)
{
    std::atomic<bool> worked{false};
    int completions = 0;
    int value = 0;
    JobHandle h = ctx->thread_pool().submit(
        [&] {
            worked = true;
            return 42;
        },
        [&](Result<int> r) {
            ++completions;
            value = r.value();
        });
    spin_until([&] { return worked.load(); });
    EXPECT_EQ(completions, 0) << "completions run only in the home thread's loop";
    EXPECT_FALSE(h.done());
    while (completions == 0) {
        iter(true);
    }
    EXPECT_EQ(completions, 1);
    EXPECT_EQ(value, 42);
    EXPECT_TRUE(h.done());
    EXPECT_FALSE(h.cancel_async()) << "cancel after completion is a no-op";
}

TEST_P(PoolTest, MoreJobsThanMaxAllCompleteOnce)
{
    constexpr int kJobs = 300;
    std::vector<int> completions(kJobs, 0);
    std::vector<std::atomic<int>> runs(kJobs);
    int remaining = kJobs;
    for (int i = 0; i < kJobs; ++i) {
        ctx->thread_pool().submit([&runs, i] { runs[i].fetch_add(1); },
                                  [&, i](Result<void> r) {
                                      EXPECT_TRUE(r.ok());
                                      ++completions[i];
                                      --remaining;
                                  });
    }
    while (remaining > 0) {
        iter(true);
    }
    for (int i = 0; i < kJobs; ++i) {
        ASSERT_EQ(runs[i].load(), 1) << "job " << i;
        ASSERT_EQ(completions[i], 1) << "job " << i;
    }
    EXPECT_LE(ctx->thread_pool().thread_count(), 64);
}

struct CancelScenario {
    static constexpr int kJobs = 100;
    static constexpr int kMax = 64;
    Gate gate;
    std::atomic<int> started{0};
    std::vector<int> completions = std::vector<int>(kJobs, 0);
    std::vector<int> cancelled = std::vector<int>(kJobs, 0);
    std::vector<JobHandle> handles;
    int remaining = kJobs;

    void submit_all(ThreadPool& pool)
    {
        pool.set_limits(0, kMax);
        for (int i = 0; i < kJobs; ++i) {
            handles.push_back(pool.submit(
                [this] {
                    started.fetch_add(1);
                    gate.wait();
                },
                [this, i](Result<void> r) {
                    ++completions[i];
                    cancelled[i] += r.cancelled();
                    if (r.cancelled()) {
                        EXPECT_EQ(r.error(), std::errc::operation_canceled);
                    }
                    --remaining;
                }));
        }
        spin_until([&] { return started.load() == kMax; });
    }

    void check() const
    {
        int n_cancelled = 0;
        for (int i = 0; i < kJobs; ++i) {
            ASSERT_EQ(completions[i], 1) << "job " << i;
            n_cancelled += cancelled[i];
        }
        EXPECT_EQ(n_cancelled, kJobs - kMax);
        EXPECT_EQ(started.load(), kMax) << "a cancelled job never runs";
    }
};

TEST_P(PoolTest, AsyncCancelRemovesExactlyTheQueuedJobs)
{
    CancelScenario s;
    s.submit_all(ctx->thread_pool());
    int removed = 0;
    for (auto& h : s.handles) {
        removed += h.cancel_async();
    }
    EXPECT_EQ(removed, CancelScenario::kJobs - CancelScenario::kMax);
    for (auto& h : s.handles) {
        EXPECT_FALSE(h.cancel_async()) << "cancelling twice is a no-op";
    }
    s.gate.open();
    while (s.remaining > 0) {
        iter(true);
    }
    s.check();
}

TEST_P(PoolTest, SyncCancelWaitsForTheCompletion)
{
    CancelScenario s;
    s.submit_all(ctx->thread_pool());
    // Queued jobs are removed at once; their cancelled completions run in the polls below.
    int cancelled_now = 0;
    for (auto& h : s.handles) {
        cancelled_now += h.cancel_async();
    }
    EXPECT_EQ(cancelled_now, CancelScenario::kJobs - CancelScenario::kMax);
    s.gate.open();
    // Running jobs: a synchronous cancel waits (polling) until each has completed.
    for (auto& h : s.handles) {
        h.cancel();
        EXPECT_TRUE(h.done());
    }
    EXPECT_EQ(s.remaining, 0);
    s.check();
}

TEST_P(PoolTest, ThrowingJobReachesTheCompletionAndTheWorkerSurvives)
{
    ctx->thread_pool().set_limits(0, 1);  // one worker: the next job proves it survived
    bool got = false;
    ctx->thread_pool().submit([]() -> int { throw std::runtime_error("job failed"); },
                              [&](Result<int> r) {
                                  got = true;
                                  EXPECT_FALSE(r.ok());
                                  EXPECT_NE(r.exception(), nullptr);
                                  EXPECT_THROW(r.value(), std::runtime_error);
                              });
    int after = 0;
    ctx->thread_pool().submit([] { return 7; }, [&](Result<int> r) { after = r.value(); });
    while (!got || after == 0) {
        iter(true);
    }
    EXPECT_EQ(after, 7);
}

TEST_P(PoolTest, LimitsAreValidatedAndAppliedWhileBusy)
{
    ThreadPool& pool = ctx->thread_pool();
    EXPECT_EQ(pool.min_threads(), 0);
    EXPECT_EQ(pool.max_threads(), 64);
    for (auto [mn, mx] : {std::pair{-1, 4}, std::pair{5, 4}, std::pair{0, 0}}) {
        try {
            pool.set_limits(mn, mx);
            ADD_FAILURE() << "accepted min=" << mn << " max=" << mx;
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find("min=" + std::to_string(mn)),
                      std::string::npos);
            EXPECT_NE(std::string(e.what()).find("max=" + std::to_string(mx)),
                      std::string::npos);
        }
    }
    EXPECT_EQ(pool.max_threads(), 64) << "a rejected call changes nothing";

    pool.set_limits(3, 8);
    EXPECT_GE(pool.thread_count(), 3) << "raising min starts workers";

    // Busy: at most `max` jobs ever run at once, also right after max shrinks.
    std::atomic<int> running{0};
    std::atomic<int> peak{0};
    int remaining = 0;
    auto job = [&] {
        int now = running.fetch_add(1) + 1;
        int p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {
        }
        std::this_thread::yield();
        running.fetch_sub(1);
    };
    for (int i = 0; i < 50; ++i) {
        ++remaining;
        pool.submit(job, [&](Result<void>) { --remaining; });
    }
    while (remaining > 0) {
        iter(true);
    }
    EXPECT_LE(peak.load(), 8);
    pool.set_limits(0, 2);
    peak = 0;
    for (int i = 0; i < 50; ++i) {
        ++remaining;
        pool.submit(job, [&](Result<void>) { --remaining; });
    }
    while (remaining > 0) {
        iter(true);
    }
    EXPECT_LE(peak.load(), 2);
    spin_until([&] { return pool.thread_count() <= 2; });
}

TEST_P(PoolTest, CompletionThatNestsAPollForAnotherJobDoesNotDeadlock)
{
    ThreadPool& pool = ctx->thread_pool();
    Gate gate_b;
    bool b_done = false;
    bool a_done = false;
    pool.submit([&] { gate_b.wait(); }, [&](Result<void>) { b_done = true; });
    pool.submit([] {},
                [&](Result<void>) {
                    gate_b.open();
                    while (!b_done) {
                        iter(true);  // B's completion must be delivered in here
                    }
                    a_done = true;
                });
    while (!a_done) {
        iter(true);
    }
    EXPECT_TRUE(b_done);
}

TEST_P(PoolTest, CompletionThatNestsAPollForAnAlreadyFinishedJob)
{
    // Both jobs finish before the loop runs: they arrive in one batch, and A's nested
    // poll must still deliver B (the completion BH is rescheduled before each callback).
    ThreadPool& pool = ctx->thread_pool();
    std::atomic<int> finished{0};
    bool b_done = false;
    bool a_done = false;
    pool.submit([&] { finished.fetch_add(1); },
                [&](Result<void>) {
                    if (!b_done) {
                        while (!b_done) {
                            iter(true);
                        }
                    }
                    a_done = true;
                });
    pool.submit([&] { finished.fetch_add(1); }, [&](Result<void>) { b_done = true; });
    spin_until([&] { return finished.load() == 2; });
    while (!a_done || !b_done) {
        iter(true);
    }
}

TEST_P(PoolTest, SubmitCancelRaceEveryCompletionExactlyOnce)
{
#if defined(AIO_TEST_SANITIZED)
    constexpr int kJobs = 20'000;
#else
    constexpr int kJobs = 100'000;
#endif
    ThreadPool& pool = ctx->thread_pool();
    pool.set_limits(0, 4);
    std::vector<std::uint8_t> completions(kJobs, 0);
    std::vector<std::uint8_t> cancelled_result(kJobs, 0);
    std::vector<std::uint8_t> cancel_said_yes(kJobs, 0);
    std::vector<JobHandle> handles(kJobs);
    std::atomic<int> submitted{0};
    int remaining = kJobs;
    std::thread submitter([&] {
        for (int i = 0; i < kJobs; ++i) {
            handles[i] = pool.submit([] {},
                                     [&, i](Result<void> r) {
                                         ++completions[i];
                                         cancelled_result[i] = r.cancelled();
                                         --remaining;
                                     });
            submitted.store(i + 1, std::memory_order_release);
        }
    });
    std::thread canceller([&] {
        std::mt19937 rng(1);
        int next = 0;
        while (next < kJobs) {
            int avail = submitted.load(std::memory_order_acquire);
            for (; next < avail; ++next) {
                if (rng() % 10 < 3) {
                    cancel_said_yes[next] = handles[next].cancel_async();
                }
            }
        }
    });
    while (remaining > 0) {
        iter(true);
    }
    submitter.join();
    canceller.join();
    int yes = 0;
    for (int i = 0; i < kJobs; ++i) {
        ASSERT_EQ(completions[i], 1) << "job " << i;
        ASSERT_EQ(cancelled_result[i], cancel_said_yes[i]) << "job " << i;
        yes += cancel_said_yes[i];
    }
    RecordProperty("cancelled", yes);
}

int count_open_fds()
{
    int n = 0;
    if (DIR* d = opendir("/proc/self/fd")) {
        while (readdir(d) != nullptr) {
            ++n;
        }
        closedir(d);
    }
    return n;
}

TEST(PoolLifecycle, DestroyingAContextWithOutstandingWork)
{
#if defined(AIO_TEST_SANITIZED)
    constexpr int kCycles = 200;
#else
    constexpr int kCycles = 1000;
#endif
    const int fds_before = count_open_fds();
    auto completions_after_destroy = std::make_shared<std::atomic<int>>(0);
    for (int cycle = 0; cycle < kCycles; ++cycle) {
        auto gate = std::make_shared<Gate>();
        auto started = std::make_shared<std::atomic<int>>(0);
        {
            ContextPtr ctx = Context::create("doomed");
            ThreadPool& pool = ctx->thread_pool();
            pool.set_limits(0, 2);
            auto destroyed = std::make_shared<std::atomic<bool>>(false);
            for (int i = 0; i < 6; ++i) {  // 2 running (blocked), 4 queued
                pool.submit(
                    [gate, started] {
                        started->fetch_add(1);
                        gate->wait();
                    },
                    [destroyed, completions_after_destroy](Result<void>) {
                        if (destroyed->load()) {
                            completions_after_destroy->fetch_add(1);
                        }
                    });
            }
            spin_until([&] { return started->load() == 2; });
            std::thread opener([gate] { gate->open(); });  // running jobs finish meanwhile
            destroyed->store(true);
            ctx.reset();  // queued dropped, running waited for
            opener.join();
        }
        EXPECT_LE(started->load(), 6);
    }
    EXPECT_EQ(completions_after_destroy->load(), 0);
    EXPECT_EQ(count_open_fds(), fds_before) << "fd leak across context destruction";
}

TEST(PoolLifecycle, LastReferenceDroppedOnAWorkerDoesNotSelfJoin)
{
    auto holder = std::make_shared<ContextPtr>(Context::create("dropped-on-worker"));
    std::atomic<bool> finished{false};
    (*holder)->thread_pool().submit([holder, &finished]() mutable {
        holder->reset();  // the last reference: the context and its pool die on this worker
        finished = true;
    });
    holder.reset();  // the job's copy of `holder` now owns the ContextPtr
    spin_until([&] { return finished.load(); });
    // The worker must exit on its own; nothing to join. Reaching here without a hang or
    // an ASan report is the test.
    SUCCEED();
}

}  // namespace
}  // namespace aio::test
