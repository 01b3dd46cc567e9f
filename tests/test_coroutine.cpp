// SPDX-License-Identifier: LGPL-2.1-or-later
// Tasks and awaitables, under every driver; chaining without stack growth; CoMutex.
#include "test_helpers.hpp"

#include <aio/co_mutex.hpp>
#include <aio/iothread.hpp>
#include <aio/task.hpp>
#include <aio/wait.hpp>

#include <glib.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

namespace aio::test {
namespace {

using CoTest = DriverTest;
AIO_INSTANTIATE_DRIVERS(CoTest);

Task<int> answer() { co_return 42; }

Task<int> fails()
{
    throw std::runtime_error("task failed");
    co_return 0;  // never reached
}

TEST_P(CoTest, ValuesAndExceptionsReachTheAwaiter)
{
    int got = 0;
    bool caught = false;
    bool finished = false;
    auto body = [&]() -> Task<void> {
        got = co_await answer();
        try {
            co_await fails();
        } catch (const std::runtime_error& e) {
            caught = std::string(e.what()) == "task failed";
        }
        finished = true;
    };
    spawn(*ctx, body());
    EXPECT_FALSE(finished) << "spawn only schedules";
    while (!finished) {
        iter(true);
    }
    EXPECT_EQ(got, 42);
    EXPECT_TRUE(caught);
}

TEST_P(CoTest, StartedTaskKeepsItsResult)
{
    auto t = answer();
    t.start(*ctx);
    while (!t.done()) {
        iter(true);
    }
    EXPECT_EQ(t.result(), 42);
}

TEST_P(CoTest, UnstartedTaskIsDestroyedWithoutRunning)
{
    bool ran = false;
    {
        auto body = [&]() -> Task<void> {
            ran = true;
            co_return;
        };
        Task<void> t = body();
    }
    EXPECT_FALSE(ran);
    EXPECT_FALSE(iter(false));
}

TEST_P(CoTest, DetachedTaskExceptionIsReported)
{
    struct Capture {
        int count = 0;
        std::string text;
    } cap;
    guint id = g_log_set_handler(
        "aiocontext", G_LOG_LEVEL_WARNING,
        [](const gchar*, GLogLevelFlags, const gchar* msg, gpointer p) {
            static_cast<Capture*>(p)->count++;
            static_cast<Capture*>(p)->text = msg;
        },
        &cap);
    spawn(*ctx, fails());
    while (cap.count == 0) {
        iter(true);
    }
    g_log_remove_handler("aiocontext", id);
    EXPECT_NE(cap.text.find("task failed"), std::string::npos) << cap.text;
}

TEST_P(CoTest, YieldLetsOthersRunInFifoOrder)
{
    std::vector<int> order;
    auto worker = [&](int id) -> Task<void> {
        for (int i = 0; i < 3; ++i) {
            order.push_back(id);
            co_await yield();
        }
    };
    spawn(*ctx, worker(1));
    spawn(*ctx, worker(2));
    while (order.size() < 6) {
        iter(true);
    }
    EXPECT_EQ(order, (std::vector<int>{1, 2, 1, 2, 1, 2}));
}

TEST_P(CoTest, SleepIsNeverEarly)
{
    int early = 0;
    bool finished = false;
    auto body = [&]() -> Task<void> {
        for (int i = 0; i < 10; ++i) {
            const std::int64_t start = clock_ns(Clock::realtime);
            co_await sleep_for(1'000'000);
            early += clock_ns(Clock::realtime) - start < 1'000'000;
        }
        finished = true;
    };
    spawn(*ctx, body());
    while (!finished) {
        iter(true);
    }
    EXPECT_EQ(early, 0);
}

TEST_P(CoTest, AwaitsFdsInBothDirections)
{
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    std::string got;
    bool finished = false;
    auto body = [&]() -> Task<void> {
        co_await writable(fds[1]);  // an empty pipe is writable at once
        co_await readable(fds[0]);  // until the other thread writes
        char buf[16] = {};
        ssize_t n = read(fds[0], buf, sizeof buf);
        got.assign(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
        finished = true;
    };
    spawn(*ctx, body());
    while (ctx->stats().handlers.empty() || ctx->stats().handlers[0].fd != fds[0]) {
        iter(false);  // until the task waits for readability
    }
    std::thread writer([&] { (void)!write(fds[1], "ping", 4); });
    while (!finished) {
        iter(true);
    }
    writer.join();
    EXPECT_EQ(got, "ping");
    EXPECT_TRUE(ctx->stats().handlers.empty()) << "the one-shot fd handler is gone";
    close(fds[0]);
    close(fds[1]);
}

TEST_P(CoTest, DestroyingATaskWaitingForAnFdUnregistersIt)
{
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    auto body = [&]() -> Task<void> { co_await readable(fds[0]); };
    {
        Task<void> t = body();
        t.start(*ctx);
        while (ctx->stats().handlers.empty()) {
            iter(false);
        }
    }  // destroyed while suspended
    EXPECT_TRUE(ctx->stats().handlers.empty());
    close(fds[0]);
    close(fds[1]);
}

TEST_P(CoTest, PoolRunFromManyTasks)
{
    constexpr int kTasks = 100;
    long sum = 0;
    int finished = 0;
    auto body = [&](int i) -> Task<void> {
        int v = co_await ctx->thread_pool().run([i] { return i * 2; });
        sum += v;
        ++finished;
    };
    for (int i = 0; i < kTasks; ++i) {
        spawn(*ctx, body(i));
    }
    while (finished < kTasks) {
        iter(true);
    }
    EXPECT_EQ(sum, 2L * (kTasks - 1) * kTasks / 2);
}

TEST_P(CoTest, PoolRunRethrowsTheJobsException)
{
    bool caught = false;
    auto body = [&]() -> Task<void> {
        try {
            co_await ctx->thread_pool().run([]() -> int { throw std::logic_error("job"); });
        } catch (const std::logic_error&) {
            caught = true;
        }
    };
    auto t = body();
    t.start(*ctx);
    while (!t.done()) {
        iter(true);
    }
    EXPECT_TRUE(caught);
}

TEST_P(CoTest, DestroyingATaskCancelsItsQueuedPoolJob)
{
    ThreadPool& pool = ctx->thread_pool();
    pool.set_limits(0, 1);
    std::atomic<bool> release{false};
    std::atomic<bool> blocker_started{false};
    std::atomic<bool> second_ran{false};
    std::atomic<bool> blocker_done{false};
    pool.submit([&] {
        blocker_started = true;
        while (!release.load()) {
            std::this_thread::yield();
        }
        blocker_done = true;
    });
    while (!blocker_started.load()) {
        std::this_thread::yield();
    }
    auto body = [&]() -> Task<void> { co_await pool.run([&] { second_ran = true; }); };
    {
        Task<void> t = body();
        t.start(*ctx);
        iter(false);  // the task submits its job (queued behind the blocker) and waits
    }  // destroyed before the job started: cancelled, and nothing resumes the dead frame
    release = true;
    while (!blocker_done.load()) {
        iter(false);  // the blocker reads our locals: keep them alive until it is done
    }
    drain();
    EXPECT_FALSE(second_ran.load());
}

TEST_P(CoTest, WorkerThreadSchedulesOntoThisContext)
{
    std::atomic<bool> ran{false};
    std::thread::id where;
    auto body = [&]() -> Task<void> {
        where = std::this_thread::get_id();
        ran = true;
        co_return;
    };
    std::thread worker([&] { spawn(*ctx, body()); });
    worker.join();
    while (!ran.load()) {
        iter(true);
    }
    EXPECT_EQ(where, std::this_thread::get_id());
}

// Two coroutines that wake each other 25 000 times each, on a thread with a 256 KiB
// stack: nesting would need megabytes; chaining needs a constant amount.
TEST(CoChaining, PingPongDoesNotGrowTheStack)
{
    struct Run {
        int a = 0;
        int b = 0;
        bool ok = false;
    } run;
    auto thread_body = [](void* arg) -> void* {
        auto* r = static_cast<Run*>(arg);
        ContextPtr ctx = Context::create("chain");
        CoQueue qa;
        CoQueue qb;
        auto a = [&]() -> Task<void> {
            for (int i = 0; i < 25'000; ++i) {
                ++r->a;
                qb.wake_one();
                co_await qa.wait();
            }
            qb.wake_one();
        };
        auto b = [&]() -> Task<void> {
            for (int i = 0; i < 25'000; ++i) {
                ++r->b;
                qa.wake_one();
                co_await qb.wait();
            }
            qa.wake_one();
        };
        spawn(*ctx, a());
        spawn(*ctx, b());
        while (r->a < 25'000 || r->b < 25'000) {
            ctx->poll(true);
        }
        while (ctx->poll(false)) {
        }
        r->ok = true;
        return nullptr;
    };
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, &attr, thread_body, &run), 0);
    pthread_join(th, nullptr);
    pthread_attr_destroy(&attr);
    EXPECT_TRUE(run.ok);
    EXPECT_EQ(run.a, 25'000);
    EXPECT_EQ(run.b, 25'000);
}

TEST(CoSwitch, HopsBetweenIOThreads)
{
    auto t1 = IOThread::create("hop1");
    auto t2 = IOThread::create("hop2");
    std::atomic<int> hops{0};
    std::atomic<int> wrong{0};
    std::atomic<bool> finished{false};
    auto body = [&]() -> Task<void> {
        for (int i = 0; i < 1000; ++i) {
            Context& to = (i % 2 == 0) ? t1->context() : t2->context();
            co_await switch_to(to);
            wrong += Context::current() != &to;
            ++hops;
        }
        finished = true;
        kick();
    };
    spawn(t1->context(), body());
    ContextPtr waiter = Context::create("hop-waiter");
    wait_while(*waiter, [&] { return !finished.load(); });
    EXPECT_EQ(hops.load(), 1000);
    EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace aio::test
