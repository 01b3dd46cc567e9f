// SPDX-License-Identifier: LGPL-2.1-or-later
// Stress tests: many threads against one context, many rounds. Every test runs under a
// watchdog that aborts, naming the test, the round and the phase, when nothing progresses
// for 30 s (AIO_STRESS_STALL_S overrides), so a lost wake-up fails instead of hanging; a
// second limit bounds each test's total time. Nothing sleeps to make a result appear:
// every wait is a blocking iteration of the library's own loop.
//
// Counts scale down under ThreadSanitizer and AddressSanitizer.
#include "test_helpers.hpp"

#include <aio/bottom_half.hpp>
#include <aio/context.hpp>
#include <aio/event_notifier.hpp>

#include <glib.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define AIO_STRESS_TSAN 1
#endif
#if defined(__SANITIZE_ADDRESS__)
#define AIO_STRESS_ASAN 1
#endif
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) && !defined(AIO_STRESS_TSAN)
#define AIO_STRESS_TSAN 1
#endif
#if __has_feature(address_sanitizer) && !defined(AIO_STRESS_ASAN)
#define AIO_STRESS_ASAN 1
#endif
#endif

namespace aio::test {
namespace {

using namespace std::chrono_literals;

// Picks a count for the build: plain, ThreadSanitizer, AddressSanitizer.
constexpr int scaled([[maybe_unused]] int plain, [[maybe_unused]] int tsan, [[maybe_unused]] int asan)
{
#if defined(AIO_STRESS_TSAN)
    return tsan;
#elif defined(AIO_STRESS_ASAN)
    return asan;
#else
    return plain;
#endif
}

std::string current_test_name()
{
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    return info != nullptr ? std::string(info->test_suite_name()) + "." + info->name()
                           : std::string("?");
}

int env_seconds(const char* name, int fallback)
{
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') {
        return fallback;
    }
    const int n = std::atoi(v);
    return n > 0 ? n : fallback;
}

// Aborts the process, naming the test, the round and the phase, when tick() has not been
// called for the stall limit, or when the whole watched section exceeds its time limit.
class Watchdog {
public:
    using Describe = std::function<std::string()>;

    explicit Watchdog(std::string what, Describe describe = {})
        : what_(current_test_name() + (what.empty() ? "" : " [" + what + "]")),
          describe_(std::move(describe)),
          stall_(env_seconds("AIO_STRESS_STALL_S", 30)),
          total_(env_seconds("AIO_STRESS_LIMIT_S", 300)),
          thread_([this] { run(); })
    {
    }

    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

    ~Watchdog()
    {
        {
            std::lock_guard lk(mutex_);
            stop_ = true;
        }
        cv_.notify_one();
        thread_.join();
    }

    // Progress: any thread, cheap.
    void tick(std::uint64_t round) noexcept
    {
        round_.store(round, std::memory_order_relaxed);
        ticks_.fetch_add(1, std::memory_order_relaxed);
    }
    void phase(const char* p) noexcept
    {
        phase_.store(p, std::memory_order_relaxed);
        ticks_.fetch_add(1, std::memory_order_relaxed);
    }

private:
    void run()
    {
        using Clock = std::chrono::steady_clock;
        const auto start = Clock::now();
        auto last_change = start;
        std::uint64_t last_ticks = ticks_.load(std::memory_order_relaxed);
        std::unique_lock lk(mutex_);
        while (!cv_.wait_for(lk, 100ms, [this] { return stop_; })) {
            const auto now = Clock::now();
            const std::uint64_t t = ticks_.load(std::memory_order_relaxed);
            if (t != last_ticks) {
                last_ticks = t;
                last_change = now;
            }
            const char* why = nullptr;
            int secs = 0;
            if (now - last_change >= std::chrono::seconds(stall_)) {
                why = "no progress";
                secs = stall_;
            } else if (now - start >= std::chrono::seconds(total_)) {
                why = "time limit exceeded";
                secs = total_;
            }
            if (why != nullptr) {
                const std::string extra = describe_ ? describe_() : std::string();
                std::fprintf(stderr,
                             "\n*** STRESS WATCHDOG: %s: %s for %d s (last progress: round %llu; "
                             "phase: %s)%s%s\n*** a lost wake-up or a hang; aborting\n",
                             what_.c_str(), why, secs,
                             static_cast<unsigned long long>(round_.load()), phase_.load(),
                             extra.empty() ? "" : "; ", extra.c_str());
                std::fflush(stderr);
                std::abort();
            }
        }
    }

    const std::string what_;
    const Describe describe_;
    const int stall_;
    const int total_;
    std::atomic<std::uint64_t> ticks_{0};
    std::atomic<std::uint64_t> round_{0};
    std::atomic<const char*> phase_{"start"};
    std::mutex mutex_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread thread_;  // last: starts after everything above is built
};

// A context and the way the test thread drives it: poll() with a given fd monitor, or
// g_main_context_iteration() on a private GMainContext the context is attached to.
enum class Drive { PollAuto, PollPoll, PollEpoll, GLib };

const char* drive_name(Drive d)
{
    switch (d) {
    case Drive::PollAuto:
        return "poll/auto";
    case Drive::PollPoll:
        return "poll/poll(2)";
    case Drive::PollEpoll:
        return "poll/epoll";
    case Drive::GLib:
        return "glib";
    }
    return "?";
}

class Loop {
public:
    explicit Loop(Drive d, const char* name = "stress") : ctx(Context::create(name))
    {
        switch (d) {
        case Drive::PollAuto:
            break;
        case Drive::PollPoll:
            ctx->set_fd_monitor(FdMonitor::poll);
            break;
        case Drive::PollEpoll:
            ctx->set_fd_monitor(FdMonitor::epoll);
            break;
        case Drive::GLib:
            mc = g_main_context_new();
            ctx->attach(mc);
            break;
        }
    }
    Loop(const Loop&) = delete;
    Loop& operator=(const Loop&) = delete;
    ~Loop()
    {
        if (mc != nullptr) {
            g_source_destroy(ctx->gsource());
            ctx.reset();
            g_main_context_unref(mc);
        }
    }

    bool iterate(bool blocking)
    {
        return mc != nullptr ? g_main_context_iteration(mc, blocking ? TRUE : FALSE) != FALSE
                             : ctx->poll(blocking);
    }
    void drain()
    {
        while (iterate(false)) {
        }
    }

    ContextPtr ctx;
    GMainContext* mc = nullptr;
};

// Marks a callback's captures; the destructor poisons it, ASan catches a call through a
// freed node outright, and the plain build sees the poison (or garbage) in `magic`.
struct Canary {
    static constexpr std::uint64_t kAlive = 0xA11CE5EEDC0FFEEull;
    static constexpr std::uint64_t kDead = 0xDEADDEADDEADDEADull;
    explicit Canary(std::uint64_t i) : id(i) {}
    Canary(const Canary&) = delete;
    Canary& operator=(const Canary&) = delete;
    ~Canary() { magic = kDead; }
    bool alive() const { return magic == kAlive; }

    volatile std::uint64_t magic = kAlive;  // volatile: the poisoning store is kept
    std::uint64_t id;
};

[[noreturn]] void die(const char* what)
{
    std::perror(what);
    std::abort();
}

int count_open_fds()
{
    DIR* d = opendir("/proc/self/fd");
    if (d == nullptr) {
        return -1;
    }
    int n = 0;
    while (const dirent* e = readdir(d)) {
        if (e->d_name[0] != '.') {
            ++n;
        }
    }
    closedir(d);
    return n - 1;  // the directory's own fd
}

// Spins for about `n` trivial steps: widens a race window or jitters timing. Not a sleep:
// nothing waits on it.
void spin(unsigned n)
{
    for (unsigned i = 0; i < n; ++i) {
        std::atomic_signal_fence(std::memory_order_seq_cst);
    }
}

// --- a) ping-pong between two contexts, each sleeping in its own loop ---------------------

struct PingPongState {
    ContextPtr peer;                 // driven by the peer thread with poll(true)
    bool jitter = false;             // spin a random while after sending each pong
    std::uint32_t rng = 12345;       // home thread only
    std::atomic<int> pings{0};       // written by the home thread (ping BH)
    std::atomic<int> pongs{0};       // written by the peer thread (pong BH)
    std::atomic<int> out_of_order{0};
    std::thread::id home;
    std::atomic<int> wrong_thread{0};
    Watchdog* wd = nullptr;
};

// With `spinning_peer` the peer never sleeps: it polls its context without blocking, and
// both sides spin a pseudo-random few hundred nanoseconds (the home thread after sending
// the pong, the peer before each ping), so pings land at every point of the home thread's
// way into its wait (compute timeout, announce, re-check), where a missing fence or
// re-check loses the wake-up.
void ping_pong(Drive drive, int rounds, bool spinning_peer = false)
{
    Loop loop(drive, "pingpong-home");
    PingPongState st;
    st.peer = Context::create("pingpong-peer");
    st.home = std::this_thread::get_id();
    st.jitter = spinning_peer;
    Watchdog wd(drive_name(drive), [&st] {
        return "pings=" + std::to_string(st.pings.load()) +
               " pongs=" + std::to_string(st.pongs.load());
    });
    st.wd = &wd;
    wd.phase("ping-pong");

    std::thread peer([&st, &loop, n = rounds, spinning_peer] {
        const std::thread::id peer_id = std::this_thread::get_id();
        std::uint32_t rng = 0x9E3779B9u;
        for (int i = 1; i <= n; ++i) {
            if (spinning_peer) {
                rng = rng * 1664525u + 1013904223u;
                spin(rng >> 22);  // 0..1023 steps
            }
            PingPongState* s = &st;
            loop.ctx->schedule(
                [s, i] {
                    if (std::this_thread::get_id() != s->home) {
                        s->wrong_thread.fetch_add(1);
                    }
                    if (s->pings.load(std::memory_order_relaxed) != i - 1) {
                        s->out_of_order.fetch_add(1);
                    }
                    s->pings.store(i, std::memory_order_relaxed);
                    s->wd->tick(static_cast<std::uint64_t>(i));
                    s->peer->schedule([s, i] { s->pongs.store(i, std::memory_order_relaxed); },
                                      "pong");
                    if (s->jitter) {
                        // The spinning peer sees the pong at once; its next ping lands
                        // anywhere from "still in this callback" to "asleep again".
                        s->rng = s->rng * 1664525u + 1013904223u;
                        spin(s->rng >> 22);
                    }
                },
                "ping");
            while (st.pongs.load(std::memory_order_relaxed) != i) {
                st.peer->poll(!spinning_peer);
            }
            if (std::this_thread::get_id() != peer_id) {
                st.wrong_thread.fetch_add(1);
            }
        }
    });
    while (st.pings.load(std::memory_order_relaxed) != rounds) {
        loop.iterate(true);
    }
    peer.join();
    wd.phase("drain");
    loop.drain();
    while (st.peer->poll(false)) {
    }
    EXPECT_EQ(st.pings.load(), rounds);
    EXPECT_EQ(st.pongs.load(), rounds);
    EXPECT_EQ(st.out_of_order.load(), 0);
    EXPECT_EQ(st.wrong_thread.load(), 0);
}

TEST(Stress, PingPongThreadContext)
{
    ping_pong(Drive::PollAuto, scaled(200'000, 50'000, 200'000));
}

TEST(Stress, PingPongThreadContextEpoll)
{
    ping_pong(Drive::PollEpoll, scaled(50'000, 10'000, 50'000));
}

TEST(Stress, PingPongGMainContext)
{
    ping_pong(Drive::GLib, scaled(50'000, 10'000, 50'000));
}

TEST(Stress, PingPongSpinningPeer)
{
    ping_pong(Drive::PollAuto, scaled(200'000, 20'000, 100'000), true);
}

TEST(Stress, PingPongSpinningPeerGMainContext)
{
    ping_pong(Drive::GLib, scaled(100'000, 10'000, 50'000), true);
}

// --- b) three producers, one-shot BHs with unique ids ------------------------------------

struct OneShotState {
    std::vector<std::uint8_t> seen;
    std::atomic<std::size_t> ran{0};  // home thread writes; the watchdog reads
    std::thread::id home;
    int wrong_thread = 0;
};

void producers_one_shot(Drive drive)
{
    constexpr int kProducers = 3;
    const int per = scaled(50'000, 20'000, 50'000);
    const std::size_t total = static_cast<std::size_t>(kProducers) * per;

    Loop loop(drive, "oneshot");
    OneShotState st;
    st.seen.assign(total, 0);
    st.home = std::this_thread::get_id();
    Watchdog wd(drive_name(drive), [&st, n = total] {
        return "ran " + std::to_string(st.ran.load()) + " of " + std::to_string(n);
    });
    wd.phase("producing");

    std::latch start(kProducers + 1);
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
        producers.emplace_back([&, p] {
            start.arrive_and_wait();
            OneShotState* s = &st;
            for (int k = 0; k < per; ++k) {
                const std::size_t id = static_cast<std::size_t>(p) * per + k;
                loop.ctx->schedule(
                    [s, id] {
                        if (std::this_thread::get_id() != s->home) {
                            ++s->wrong_thread;
                        }
                        if (s->seen[id] < 255) {
                            ++s->seen[id];
                        }
                        s->ran.store(s->ran.load(std::memory_order_relaxed) + 1,
                                     std::memory_order_relaxed);
                    },
                    "stress-oneshot");
            }
        });
    }
    start.arrive_and_wait();
    std::uint64_t iterations = 0;
    while (st.ran.load(std::memory_order_relaxed) < total) {
        loop.iterate(true);
        wd.tick(st.ran.load(std::memory_order_relaxed));
        ++iterations;
    }
    for (auto& t : producers) {
        t.join();
    }
    wd.phase("drain");
    loop.drain();

    EXPECT_EQ(st.ran.load(), total);
    EXPECT_EQ(st.wrong_thread, 0);
    std::size_t missing = 0;
    std::size_t dup = 0;
    std::size_t first_bad = total;
    for (std::size_t i = 0; i < total; ++i) {
        if (st.seen[i] != 1) {
            (st.seen[i] == 0 ? missing : dup) += 1;
            if (first_bad == total) {
                first_bad = i;
            }
        }
    }
    EXPECT_EQ(missing, 0u) << "one-shot BHs that never ran; first bad id " << first_bad;
    EXPECT_EQ(dup, 0u) << "one-shot BHs that ran more than once; first bad id " << first_bad;
    ::testing::Test::RecordProperty("iterations", std::to_string(iterations));
}

TEST(Stress, ProducersOneShot) { producers_one_shot(Drive::PollAuto); }
TEST(Stress, ProducersOneShotGMainContext) { producers_one_shot(Drive::GLib); }

// --- c) many threads schedule one persistent BH ------------------------------------------

constexpr int kCoalesceProducers = 3;

struct CoalesceState {
    std::atomic<int> inside{0};
    std::atomic<int> overlaps{0};
    std::uint64_t runs = 0;          // home thread only
    int runs_this_iteration = 0;     // home thread only
    std::thread::id home;
    int wrong_thread = 0;
    // Producer p stores k into stamp[p] before its k-th schedule(); each run copies the
    // stamps it sees into seen[] (home thread only). A schedule is never lost: after
    // producer p's last schedule a run follows that sees its last stamp.
    std::atomic<int> stamp[kCoalesceProducers] = {};
    int seen[kCoalesceProducers] = {};
    std::atomic<int> producers_done{0};
};

void persistent_bh_coalesce(Drive drive)
{
    constexpr int kProducers = kCoalesceProducers;
    const int rounds = scaled(20, 6, 20);
    const int per = scaled(30'000, 5'000, 30'000);

    Loop loop(drive, "coalesce");
    CoalesceState st;
    st.home = std::this_thread::get_id();
    CoalesceState* s = &st;
    BottomHalf bh = loop.ctx->make_bh(
        [s] {
            if (s->inside.fetch_add(1) != 0) {
                s->overlaps.fetch_add(1);
            }
            if (std::this_thread::get_id() != s->home) {
                ++s->wrong_thread;
            }
            ++s->runs;
            ++s->runs_this_iteration;
            for (int p = 0; p < kCoalesceProducers; ++p) {
                s->seen[p] = s->stamp[p].load(std::memory_order_relaxed);
            }
            spin(200);  // a callback that takes a while: schedules land during it
            s->inside.fetch_sub(1);
        },
        "stress-persistent");
    Watchdog wd(drive_name(drive), [&st] {
        return "producers done " + std::to_string(st.producers_done.load());
    });

    int max_per_iteration = 0;
    auto step = [&](bool blocking) {
        st.runs_this_iteration = 0;
        const bool progress = loop.iterate(blocking);
        max_per_iteration = std::max(max_per_iteration, st.runs_this_iteration);
        return progress;
    };
    auto all_seen = [&] {
        for (int p = 0; p < kProducers; ++p) {
            if (st.seen[p] != per) {
                return false;
            }
        }
        return true;
    };

    for (int r = 1; r <= rounds; ++r) {
        wd.tick(static_cast<std::uint64_t>(r));
        wd.phase("producers scheduling; waiting for a run after each one's last schedule");
        st.producers_done.store(0);
        for (int p = 0; p < kProducers; ++p) {
            st.stamp[p].store(0);
            st.seen[p] = 0;
        }
        std::latch start(kProducers + 1);
        std::vector<std::thread> producers;
        for (int p = 0; p < kProducers; ++p) {
            producers.emplace_back([&, p] {
                start.arrive_and_wait();
                for (int k = 1; k <= per; ++k) {
                    st.stamp[p].store(k, std::memory_order_relaxed);
                    bh.schedule();
                    if ((k & 255) == p) {
                        std::this_thread::yield();  // let the loop go to sleep sometimes
                    }
                }
                st.producers_done.fetch_add(1);
            });
        }
        start.arrive_and_wait();
        const std::uint64_t runs_before = st.runs;
        // Blocking iterations only: a lost schedule leaves the loop asleep forever.
        while (!all_seen()) {
            step(true);
            wd.tick(static_cast<std::uint64_t>(r));
        }
        for (auto& t : producers) {
            t.join();
        }
        wd.phase("drain");
        while (step(false)) {
        }
        const std::uint64_t produced = static_cast<std::uint64_t>(kProducers) * per;
        ASSERT_GE(st.runs - runs_before, 1u) << "round " << r;
        ASSERT_LE(st.runs - runs_before, produced) << "round " << r;

        wd.phase("final schedule");
        const std::uint64_t settled = st.runs;
        bh.schedule();
        EXPECT_TRUE(step(true)) << "round " << r << ": a scheduled BH is progress";
        EXPECT_EQ(st.runs, settled + 1) << "round " << r << ": final schedule ran "
                                        << st.runs - settled << " times";
        EXPECT_FALSE(step(false)) << "round " << r << ": nothing left after the final run";
        EXPECT_EQ(st.runs, settled + 1) << "round " << r;
        ASSERT_EQ(st.overlaps.load(), 0) << "round " << r << ": callback overlapped itself";
    }
    EXPECT_EQ(st.wrong_thread, 0);
    EXPECT_LE(max_per_iteration, 1) << "the BH ran more than once in one iteration";
}

// A schedule() from another thread while the callback runs must run the BH again: the
// callback waits until the other thread has scheduled it, then returns; the loop then
// sleeps in blocking iterations until the second run (a lost schedule hangs it).
void persistent_bh_reschedule_during_callback(Drive drive)
{
    const int rounds = scaled(20'000, 5'000, 20'000);
    Loop loop(drive, "resched");
    struct State {
        std::atomic<int> running{0};     // round whose callback is running now
        std::atomic<int> rescheduled{0}; // round for which the peer has scheduled
        std::atomic<int> round{0};       // round the home thread is in
        std::uint64_t runs = 0;          // home thread only
    } st;
    State* s = &st;
    BottomHalf bh = loop.ctx->make_bh(
        [s] {
            ++s->runs;
            const int r = s->round.load(std::memory_order_relaxed);
            if (s->rescheduled.load() == r) {
                return;  // the second run of this round
            }
            s->running.store(r);
            while (s->rescheduled.load() != r) {
                std::this_thread::yield();  // bounded by the watchdog
            }
        },
        "stress-resched");
    Watchdog wd(drive_name(drive), [&st] {
        return "running=" + std::to_string(st.running.load()) +
               " rescheduled=" + std::to_string(st.rescheduled.load());
    });
    wd.phase("schedule during the callback");
    std::thread peer([&st, &bh, n = rounds] {
        for (int r = 1; r <= n; ++r) {
            while (st.running.load() != r) {
                std::this_thread::yield();
            }
            bh.schedule();
            st.rescheduled.store(r);
        }
    });
    for (int r = 1; r <= rounds; ++r) {
        st.round.store(r);
        const std::uint64_t before = st.runs;
        bh.schedule();
        while (st.runs < before + 2) {
            loop.iterate(true);
        }
        wd.tick(static_cast<std::uint64_t>(r));
    }
    peer.join();
    loop.drain();
    EXPECT_EQ(st.runs, 2u * static_cast<std::uint64_t>(rounds));
}

TEST(Stress, PersistentBhRescheduledDuringCallback)
{
    persistent_bh_reschedule_during_callback(Drive::PollAuto);
}
TEST(Stress, PersistentBhRescheduledDuringCallbackGMainContext)
{
    persistent_bh_reschedule_during_callback(Drive::GLib);
}

// A BH that is linked but cancelled while a nested blocking poll sleeps: B is scheduled
// and then cancelled, so the outer iteration takes it (still linked) together with A; A's
// callback runs a nested blocking poll, which sees B unscheduled and sleeps. Another
// thread then schedules B: that schedule finds B already linked and must still wake the
// loop, or the nested poll sleeps forever.
void cancelled_bh_rescheduled_during_nested_poll(Drive drive)
{
    const int rounds = scaled(20'000, 3'000, 10'000);
    Loop loop(drive, "nested-cancel");
    struct State {
        Loop* loop = nullptr;
        BottomHalf b;
        std::atomic<int> nesting{0};  // round whose A callback is about to nest
        int b_runs = 0;               // home thread only
        int a_runs = 0;               // home thread only
        int round = 0;                // home thread only
        std::uint32_t rng = 777;      // peer only
    } st;
    st.loop = &loop;
    State* s = &st;
    st.b = loop.ctx->make_bh([s] { s->b_runs = s->round; }, "stress-b");
    BottomHalf a = loop.ctx->make_bh(
        [s] {
            ++s->a_runs;
            s->nesting.store(s->round);
            while (s->b_runs != s->round) {
                s->loop->iterate(true);  // nested; sleeps until B is scheduled
            }
        },
        "stress-a");
    Watchdog wd(drive_name(drive), [&st] {
        return "nesting=" + std::to_string(st.nesting.load());
    });
    wd.phase("nested blocking poll waits for a cancelled, re-scheduled BH");
    std::thread peer([&st, n = rounds] {
        for (int r = 1; r <= n; ++r) {
            while (st.nesting.load() != r) {
                std::this_thread::yield();
            }
            st.rng = st.rng * 1664525u + 1013904223u;
            spin(st.rng >> 20);  // up to a few microseconds: usually after it sleeps
            st.b.schedule();
        }
    });
    for (int r = 1; r <= rounds; ++r) {
        st.round = r;
        st.b.schedule();  // linked ...
        st.b.cancel();    // ... and cancelled
        a.schedule();     // the same batch (LIFO: A is taken before B)
        while (st.b_runs != r) {
            loop.iterate(true);
        }
        wd.tick(static_cast<std::uint64_t>(r));
    }
    peer.join();
    loop.drain();
    EXPECT_EQ(st.a_runs, rounds);
    EXPECT_EQ(st.b_runs, rounds);
}

TEST(Stress, CancelledBhRescheduledDuringNestedPoll)
{
    cancelled_bh_rescheduled_during_nested_poll(Drive::PollAuto);
}
TEST(Stress, CancelledBhRescheduledDuringNestedPollGMainContext)
{
    cancelled_bh_rescheduled_during_nested_poll(Drive::GLib);
}

TEST(Stress, PersistentBhCoalesce) { persistent_bh_coalesce(Drive::PollAuto); }
TEST(Stress, PersistentBhCoalesceGMainContext) { persistent_bh_coalesce(Drive::GLib); }

// --- d) fd register/unregister cycles, home thread and another thread ---------------------

struct FdCycleState {
    std::uint64_t home_hits = 0;   // home thread only
    std::uint64_t write_hits = 0;  // home thread only
    std::uint64_t bad_canary = 0;  // home thread only
    std::thread::id home;
    std::uint64_t wrong_thread = 0;               // home thread only
    std::atomic<std::uint64_t> worker_hits{0};    // home thread writes, worker waits on it
    std::atomic<int> worker_cycles{0};
    std::atomic<bool> worker_done{false};
};

template <class Hits>
FdHandlers counting_read(FdCycleState* s, Hits* hits, std::uint64_t id)
{
    return FdHandlers{.read = [s, hits, c = std::make_unique<Canary>(id)] {
        if (!c->alive()) {
            ++s->bad_canary;
        }
        if (std::this_thread::get_id() != s->home) {
            ++s->wrong_thread;
        }
        ++*hits;
    }};
}

FdHandlers counting_write(FdCycleState* s, std::uint64_t id)
{
    return FdHandlers{.write = [s, c = std::make_unique<Canary>(id)] {
        if (!c->alive()) {
            ++s->bad_canary;
        }
        ++s->write_hits;
    }};
}

// One register/unregister cycle on the home thread: a readable eventfd, or a pipe with
// both ends registered; a non-blocking iteration in between must dispatch it.
bool home_fd_cycle(Loop& loop, FdCycleState& st, int i)
{
    const std::uint64_t before = st.home_hits + st.write_hits;
    if (i % 2 == 0) {
        const int fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd < 0) {
            die("eventfd");
        }
        loop.ctx->set_fd_handler(fd, counting_read(&st, &st.home_hits, i));
        loop.iterate(false);
        loop.ctx->clear_fd_handler(fd);
        close(fd);
    } else {
        int p[2];
        if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
            die("pipe2");
        }
        loop.ctx->set_fd_handler(p[0], counting_read(&st, &st.home_hits, i));
        loop.ctx->set_fd_handler(p[1], counting_write(&st, i));
        if (write(p[1], "x", 1) != 1) {
            die("write");
        }
        loop.iterate(false);
        loop.ctx->clear_fd_handler(p[0]);
        loop.ctx->clear_fd_handler(p[1]);
        close(p[0]);
        close(p[1]);
    }
    return st.home_hits + st.write_hits != before;
}

// Cycles on another thread while the home thread iterates. With `handshake`, every
// readable fd is waited for: the (possibly sleeping) loop must be woken to watch the new
// fd and dispatch it, or the worker spins until the watchdog fires.
void worker_fd_cycles(Loop& loop, FdCycleState& st, int n, bool handshake)
{
    FdCycleState* s = &st;
    for (int i = 0; i < n; ++i) {
        const bool readable = i % 2 == 0;
        const int fd = eventfd(readable ? 1 : 0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd < 0) {
            die("eventfd");
        }
        const std::uint64_t before = st.worker_hits.load();
        loop.ctx->set_fd_handler(fd, counting_read(s, &s->worker_hits, i));
        if (i % 3 == 0) {  // sometimes replace it first
            loop.ctx->set_fd_handler(fd, counting_read(s, &s->worker_hits, i));
        }
        if (handshake && readable) {
            while (st.worker_hits.load() == before) {
                std::this_thread::yield();
            }
        }
        loop.ctx->clear_fd_handler(fd);
        close(fd);
        st.worker_cycles.store(i + 1, std::memory_order_relaxed);
    }
    st.worker_done.store(true);
    loop.ctx->notify();
}

void fd_register_cycles(Drive drive)
{
    // 40% home thread alone, 40% another thread while the home thread sleeps in blocking
    // iterations (with a handshake), 20% both at once.
    const int total = scaled(100'000, 20'000, 100'000);
    const int home_n = total * 2 / 5;
    const int worker_n = total * 2 / 5;
    const int mixed_n = (total - home_n - worker_n) / 2;

    const int baseline = count_open_fds();
    ASSERT_GT(baseline, 0);
    {
        Loop loop(drive, "fd-cycles");
        loop.drain();
        const int with_ctx = count_open_fds();
        FdCycleState st;
        st.home = std::this_thread::get_id();
        int home_i = 0;
        Watchdog wd(drive_name(drive), [&st, &home_i] {
            return "home cycles " + std::to_string(home_i) + ", worker cycles " +
                   std::to_string(st.worker_cycles.load());
        });
        auto tick = [&] {
            wd.tick(static_cast<std::uint64_t>(st.worker_cycles.load(std::memory_order_relaxed)) +
                    static_cast<std::uint64_t>(home_i));
        };

        std::uint64_t missed = 0;
        wd.phase("home-thread cycles");
        for (; home_i < home_n; ++home_i) {
            missed += home_fd_cycle(loop, st, home_i) ? 0 : 1;
            tick();
        }

        wd.phase("worker cycles, home thread in blocking iterations");
        std::thread worker([&st, &loop, n = worker_n] { worker_fd_cycles(loop, st, n, true); });
        while (!st.worker_done.load()) {
            loop.iterate(true);
            tick();
        }
        worker.join();
        loop.drain();

        wd.phase("home-thread and worker cycles at once");
        st.worker_done.store(false);
        st.worker_cycles.store(0);
        worker = std::thread([&st, &loop, n = mixed_n] { worker_fd_cycles(loop, st, n, false); });
        const int mixed_end = home_n + mixed_n;
        while (home_i < mixed_end || !st.worker_done.load()) {
            if (home_i < mixed_end) {
                missed += home_fd_cycle(loop, st, home_i) ? 0 : 1;
                ++home_i;
            } else {
                loop.iterate(true);
            }
            tick();
        }
        worker.join();
        wd.phase("drain");
        loop.drain();

        EXPECT_EQ(st.bad_canary, 0u) << "a handler ran with freed captures";
        EXPECT_EQ(st.wrong_thread, 0u);
        // A non-blocking iteration asks the kernel (the handlers have no poll callback),
        // so a readable fd registered just before it must be dispatched by it.
        EXPECT_EQ(missed, 0u) << "ready fds not dispatched by the next non-blocking iteration";
        EXPECT_EQ(count_open_fds(), with_ctx) << "fds leaked while the context lives";
        ::testing::Test::RecordProperty("worker_hits", std::to_string(st.worker_hits.load()));
    }
    EXPECT_EQ(count_open_fds(), baseline) << "fds leaked by the context";
}

TEST(Stress, FdRegisterCycles) { fd_register_cycles(Drive::PollAuto); }
TEST(Stress, FdRegisterCyclesPollMonitor) { fd_register_cycles(Drive::PollPoll); }
TEST(Stress, FdRegisterCyclesEpollMonitor) { fd_register_cycles(Drive::PollEpoll); }
TEST(Stress, FdRegisterCyclesGMainContext) { fd_register_cycles(Drive::GLib); }

// --- e) one thread replaces a notifier's handler while another keeps setting it ----------

struct CrossState {
    EventNotifier en;
    std::uint64_t calls = 0;       // home thread only
    std::uint64_t bad_canary = 0;  // home thread only
    std::uint64_t wrong_thread = 0;
    std::thread::id home;
    std::atomic<std::uint64_t> installed{0};  // generation most recently installed
    std::uint64_t future_gen = 0;  // a handler newer than anything installed ran
    std::atomic<bool> stop_setter{false};
    std::atomic<bool> replacer_done{false};
    std::atomic<int> cycles{0};
};

FdHandlers notifier_handler(CrossState* s, std::uint64_t gen)
{
    return FdHandlers{.read = [s, c = std::make_unique<Canary>(gen)] {
        if (!c->alive()) {
            ++s->bad_canary;
        }
        if (std::this_thread::get_id() != s->home) {
            ++s->wrong_thread;
        }
        if (c->id > s->installed.load(std::memory_order_acquire)) {
            ++s->future_gen;
        }
        s->en.test_and_clear();
        ++s->calls;
    }};
}

// Two notifiers whose handlers, on the home thread, replace each other (and sometimes
// replace or clear themselves) from inside their callbacks. Both are normally ready in the
// same iteration, so the sibling's old node is still on that iteration's ready list when
// it is replaced: it must be skipped (the old callbacks never run after set_fd_handler
// returns on the home thread). current[] is the generation installed last for each slot.
struct PairState {
    Context* ctx = nullptr;
    EventNotifier en[2];
    std::uint64_t current[2] = {0, 0};
    std::uint64_t next_gen = 1;
    std::uint64_t stale = 0;
    std::uint64_t bad_canary = 0;
    std::uint64_t calls = 0;
    std::uint64_t self_replaced = 0;
    std::uint64_t wrong_thread = 0;
    std::thread::id home;
};

void pair_install(PairState* ps, int slot);

FdHandlers pair_handler(PairState* ps, int slot, std::uint64_t gen)
{
    return FdHandlers{.read = [ps, slot, c = std::make_unique<Canary>(gen)] {
        const std::uint64_t my = c->id;
        if (ps->current[slot] != my) {
            ++ps->stale;
        }
        if (std::this_thread::get_id() != ps->home) {
            ++ps->wrong_thread;
        }
        ++ps->calls;
        ps->en[slot].test_and_clear();
        pair_install(ps, 1 - slot);  // the sibling may be ready in this same pass
        switch (my % 4) {
        case 0:
            pair_install(ps, slot);  // replace ourselves: our captures live until we return
            ++ps->self_replaced;
            break;
        case 1:
            ps->ctx->clear_event_notifier(ps->en[slot]);
            ps->current[slot] = 0;
            break;
        default:
            break;
        }
        if (!c->alive() || c->id != my) {
            ++ps->bad_canary;
        }
    }};
}

void pair_install(PairState* ps, int slot)
{
    const std::uint64_t gen = ps->next_gen++;
    ps->current[slot] = gen;
    ps->ctx->set_event_notifier(ps->en[slot], pair_handler(ps, slot, gen));
}

void cross_thread_fd_handlers(Drive drive)
{
    const int cycles = scaled(100'000, 20'000, 50'000);
    Loop loop(drive, "cross-fd");
    CrossState st;
    st.home = std::this_thread::get_id();
    Watchdog wd(drive_name(drive), [&st] {
        return "replacer cycles " + std::to_string(st.cycles.load());
    });
    wd.phase("set/replace/clear vs set vs poll");

    std::thread setter([&st] {
        std::uint64_t n = 0;
        while (!st.stop_setter.load(std::memory_order_relaxed)) {
            st.en.set();
            if ((++n & 15) == 0) {
                std::this_thread::yield();
            }
        }
    });
    std::thread replacer([&st, &loop, n = cycles] {
        for (int i = 1; i <= n; ++i) {
            const auto gen = static_cast<std::uint64_t>(i);
            st.installed.store(gen, std::memory_order_release);
            if (i % 8 == 0) {
                loop.ctx->clear_event_notifier(st.en);
            } else {
                loop.ctx->set_event_notifier(st.en, notifier_handler(&st, gen));
            }
            st.cycles.store(i, std::memory_order_relaxed);
        }
        st.replacer_done.store(true);
        loop.ctx->notify();
    });
    while (!st.replacer_done.load()) {
        loop.iterate(true);
        wd.tick(static_cast<std::uint64_t>(st.cycles.load(std::memory_order_relaxed)));
    }
    replacer.join();
    st.stop_setter.store(true);
    setter.join();

    // Now strictly on the home thread: handlers that replace each other and themselves.
    wd.phase("home-thread replacement");
    PairState ps;
    ps.ctx = loop.ctx.get();
    ps.home = st.home;
    const int home_rounds = cycles / 4;
    for (int i = 0; i < home_rounds; ++i) {
        for (int slot = 0; slot < 2; ++slot) {
            if (ps.current[slot] == 0) {
                pair_install(&ps, slot);
            }
        }
        ps.en[0].set();
        ps.en[1].set();
        loop.iterate(true);
        loop.drain();
        wd.tick(static_cast<std::uint64_t>(cycles + i));
    }
    loop.ctx->clear_event_notifier(ps.en[0]);
    loop.ctx->clear_event_notifier(ps.en[1]);
    loop.ctx->clear_event_notifier(st.en);
    wd.phase("drain");
    loop.drain();

    EXPECT_EQ(st.bad_canary, 0u) << "a handler ran with freed captures";
    EXPECT_EQ(st.wrong_thread, 0u);
    EXPECT_EQ(st.future_gen, 0u);
    EXPECT_GT(st.calls, 0u);
    EXPECT_EQ(ps.bad_canary, 0u) << "a handler's captures died while it ran";
    EXPECT_EQ(ps.wrong_thread, 0u);
    EXPECT_EQ(ps.stale, 0u) << "a handler replaced on the home thread ran afterwards";
    EXPECT_GT(ps.self_replaced, 0u);
    EXPECT_GT(ps.calls, static_cast<std::uint64_t>(home_rounds));
}

TEST(Stress, CrossThreadFdHandlers) { cross_thread_fd_handlers(Drive::PollAuto); }
TEST(Stress, CrossThreadFdHandlersEpollMonitor) { cross_thread_fd_handlers(Drive::PollEpoll); }
TEST(Stress, CrossThreadFdHandlersGMainContext) { cross_thread_fd_handlers(Drive::GLib); }

}  // namespace
}  // namespace aio::test
