// SPDX-License-Identifier: LGPL-2.1-or-later
// A port of QEMU's test-aio-multithread scenarios onto 5 IOThreads: lifecycle, coroutines
// hopping between random contexts, CoMutex contended (5 threads) and hand-off (2
// threads), and the same loop with std::mutex. Quick by default (bounded iteration
// counts); AIO_MT_SECONDS=N runs each scenario for about N seconds (the `slow` suite).
#include <aio/co_mutex.hpp>
#include <aio/iothread.hpp>
#include <aio/task.hpp>
#include <aio/wait.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace aio::test {
namespace {

constexpr int kContexts = 5;

double seconds()
{
    const char* s = std::getenv("AIO_MT_SECONDS");
    return s != nullptr ? std::atof(s) : 0.3;
}

std::vector<std::shared_ptr<IOThread>> make_threads(int n)
{
    std::vector<std::shared_ptr<IOThread>> v;
    for (int i = 0; i < n; ++i) {
        v.push_back(IOThread::create("mt" + std::to_string(i)));
    }
    return v;
}

TEST(Multithread, Lifecycle)
{
    for (int i = 0; i < 20; ++i) {
        auto ts = make_threads(kContexts);
        for (auto& t : ts) {
            t->stop();
        }
    }
}

TEST(Multithread, ScheduleHopsBetweenRandomContexts)
{
    auto ts = make_threads(kContexts);
    std::atomic<bool> stop{false};
    std::atomic<long> hops_other{0};
    std::atomic<long> hops_same{0};
    std::atomic<int> running{0};
    auto hopper = [&](unsigned seed) -> Task<void> {
        std::mt19937 rng(seed);
        while (!stop.load()) {
            Context& to = ts[rng() % kContexts]->context();
            if (&to == Context::current()) {
                ++hops_same;
                co_await yield();
            } else {
                ++hops_other;
                co_await switch_to(to);
            }
        }
        running.fetch_sub(1);
        kick();
    };
    for (int i = 0; i < kContexts; ++i) {
        running.fetch_add(1);
        spawn(ts[i]->context(), hopper(static_cast<unsigned>(i)));
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds()));
    stop = true;
    ContextPtr waiter = Context::create("mt-waiter");
    wait_while(*waiter, [&] { return running.load() > 0; });
    std::printf("scheduled %ld, queued %ld, total %ld\n", hops_other.load(), hops_same.load(),
                hops_other.load() + hops_same.load());
    EXPECT_GT(hops_other.load(), 0);
}

void comutex_scenario(int threads)
{
    auto ts = make_threads(threads);
    CoMutex m;
    long counter = 0;  // protected by m: plain on purpose
    std::atomic<long> atomic_counter{0};
    std::atomic<bool> stop{false};
    std::atomic<int> running{0};
    auto body = [&]() -> Task<void> {
        while (!stop.load()) {
            co_await m.lock();
            ++counter;
            m.unlock();
            // After unlock on purpose: the thread may otherwise stop before the waiter it
            // handed the lock to has run.
            atomic_counter.fetch_add(1);
        }
        running.fetch_sub(1);
        kick();
    };
    for (int i = 0; i < threads; ++i) {
        running.fetch_add(1);
        spawn(ts[i]->context(), body());
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds()));
    stop = true;
    ContextPtr waiter = Context::create("mt-waiter");
    wait_while(*waiter, [&] { return running.load() > 0; });
    std::printf("%d threads: %.0f iterations/second\n", threads,
                static_cast<double>(counter) / seconds());
    EXPECT_EQ(counter, atomic_counter.load());
    EXPECT_GT(counter, 0);
}

TEST(Multithread, CoMutexContended) { comutex_scenario(5); }
TEST(Multithread, CoMutexHandoff) { comutex_scenario(2); }

TEST(Multithread, StdMutexBaseline)
{
    std::mutex m;
    long counter = 0;
    std::atomic<long> atomic_counter{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> ts;
    for (int i = 0; i < kContexts; ++i) {
        ts.emplace_back([&] {
            while (!stop.load()) {
                {
                    std::lock_guard lk(m);
                    ++counter;
                }
                atomic_counter.fetch_add(1);
            }
        });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds()));
    stop = true;
    for (auto& t : ts) {
        t.join();
    }
    std::printf("std::mutex, %d threads: %.0f iterations/second\n", kContexts,
                static_cast<double>(counter) / seconds());
    EXPECT_EQ(counter, atomic_counter.load());
}

}  // namespace
}  // namespace aio::test
