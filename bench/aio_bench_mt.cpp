// SPDX-License-Identifier: LGPL-2.1-or-later
// aio-bench, multi-threaded rows: thread pool, cross-thread round trips, coroutine hops
// and CoMutex contention, idle CPU and missed-notify latency. Registered by register_mt()
// from aio_bench.cpp's main().
//
// These rows sleep by design (they measure wake-ups), so they use real (wall) time.
#include <aio/co_mutex.hpp>
#include <aio/context.hpp>
#include <aio/iothread.hpp>
#include <aio/task.hpp>
#include <aio/thread_pool.hpp>
#include <aio/timer.hpp>
#include <aio/wait.hpp>

#include <benchmark/benchmark.h>

#include <glib.h>

#if AIO_BENCH_HAVE_UV
#include <uv.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

void register_mt();

namespace {

std::int64_t now_ns() noexcept
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// --- placement ----------------------------------------------------------------------------
// 0: different CPUs (benchmark thread on CPU 0, peer on CPU 1); 1: both on CPU 0;
// 2: unpinned. The benchmark thread's original mask is restored afterwards.
enum Placement { kCross = 0, kSame = 1, kNone = 2 };

void pin_self(int cpu) noexcept
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu < 0) {
        for (int i = 0; i < CPU_SETSIZE; ++i) {
            CPU_SET(i, &set);
        }
    } else {
        CPU_SET(cpu, &set);
    }
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

int main_cpu(int placement) { return placement == kNone ? -1 : 0; }
int peer_cpu(int placement) { return placement == kNone ? -1 : (placement == kCross ? 1 : 0); }

struct PinGuard {
    cpu_set_t saved;
    explicit PinGuard(int cpu)
    {
        pthread_getaffinity_np(pthread_self(), sizeof saved, &saved);
        pin_self(cpu);
    }
    ~PinGuard() { pthread_setaffinity_np(pthread_self(), sizeof saved, &saved); }
};

// --- pool_roundtrip / pool_window64 -----------------------------------------------------
constexpr int kPoolBatch = 1024;  // items per pool_window64 iteration (report.py: POOL_BATCH)

void pool_aio(benchmark::State& state, int window)
{
    auto ctx = aio::Context::create("bench-pool");
    auto& pool = ctx->thread_pool();
    pool.set_limits(0, 2);
    std::uint64_t done = 0;
    std::uint64_t submitted = 0;
    std::uint64_t target = 0;
    std::atomic<std::uint64_t> sink{0};
    std::function<void()> submit_one;
    submit_one = [&] {
        ++submitted;
        pool.submit([&sink] { sink.fetch_add(1, std::memory_order_relaxed); },
                    [&](aio::Result<void>) {
                        ++done;
                        if (submitted < target) {
                            submit_one();
                        }
                    });
    };
    // warm the workers
    target = 4;
    submit_one();
    while (done < 1) {
        ctx->poll(true);
    }
    while (done < submitted) {
        ctx->poll(true);
    }
    done = submitted = 0;
    const auto s0 = ctx->stats();
    const std::uint64_t per_iter = window == 1 ? 1 : kPoolBatch;
    for (auto _ : state) {
        target += per_iter;
        const std::uint64_t goal = done + per_iter;
        while (submitted < target && submitted - done < static_cast<std::uint64_t>(window)) {
            submit_one();
        }
        while (done < goal) {
            ctx->poll(true);
        }
    }
    const auto s1 = ctx->stats();
    const double waits = static_cast<double>(s1.blocking_waits - s0.blocking_waits);
    const double writes = static_cast<double>(s1.eventfd_writes - s0.eventfd_writes);
    state.counters["evw_per_wake"] = waits > 0 ? writes / waits : 0;
    state.counters["waits_per_item"] = waits / static_cast<double>(done);
    state.counters["evw_per_item"] = writes / static_cast<double>(done);
}

void pool_roundtrip_aio(benchmark::State& s) { pool_aio(s, 1); }
void pool_window64_aio(benchmark::State& s) { pool_aio(s, 64); }

struct GPool {
    GMainContext* mc;
    std::uint64_t done = 0, submitted = 0, target = 0;
    GThreadPool* pool = nullptr;
    std::atomic<std::uint64_t> sink{0};
};

gboolean gpool_done(gpointer data)
{
    auto* p = static_cast<GPool*>(data);
    ++p->done;
    if (p->submitted < p->target) {
        ++p->submitted;
        g_thread_pool_push(p->pool, p, nullptr);
    }
    return G_SOURCE_REMOVE;
}

void gpool_work(gpointer data, gpointer)
{
    auto* p = static_cast<GPool*>(data);
    p->sink.fetch_add(1, std::memory_order_relaxed);
    g_main_context_invoke(p->mc, gpool_done, p);
}

void pool_glib(benchmark::State& state, int window)
{
    GPool p;
    p.mc = g_main_context_new();
    p.pool = g_thread_pool_new(gpool_work, nullptr, 2, FALSE, nullptr);
    const std::uint64_t per_iter = window == 1 ? 1 : kPoolBatch;
    for (auto _ : state) {
        p.target += per_iter;
        const std::uint64_t goal = p.done + per_iter;
        while (p.submitted < p.target &&
               p.submitted - p.done < static_cast<std::uint64_t>(window)) {
            ++p.submitted;
            g_thread_pool_push(p.pool, &p, nullptr);
        }
        while (p.done < goal) {
            g_main_context_iteration(p.mc, TRUE);
        }
    }
    g_thread_pool_free(p.pool, FALSE, TRUE);
    while (g_main_context_iteration(p.mc, FALSE)) {
    }
    g_main_context_unref(p.mc);
}

void pool_roundtrip_glib(benchmark::State& s) { pool_glib(s, 1); }
void pool_window64_glib(benchmark::State& s) { pool_glib(s, 64); }

#if AIO_BENCH_HAVE_UV
struct UPool {
    uv_loop_t loop;
    std::vector<uv_work_t> reqs;
    std::vector<uv_work_t*> free_reqs;
    std::uint64_t done = 0, submitted = 0, target = 0;
    std::atomic<std::uint64_t> sink{0};
};

void upool_work(uv_work_t* r) { static_cast<UPool*>(r->data)->sink.fetch_add(1); }

void upool_submit(UPool* p);

void upool_after(uv_work_t* r, int)
{
    auto* p = static_cast<UPool*>(r->data);
    ++p->done;
    p->free_reqs.push_back(r);
    if (p->submitted < p->target) {
        upool_submit(p);
    }
}

void upool_submit(UPool* p)
{
    uv_work_t* r = p->free_reqs.back();
    p->free_reqs.pop_back();
    r->data = p;
    ++p->submitted;
    uv_queue_work(&p->loop, r, upool_work, upool_after);
}

void pool_uv(benchmark::State& state, int window)
{
    UPool p;
    uv_loop_init(&p.loop);
    p.reqs.resize(static_cast<std::size_t>(window));
    for (auto& r : p.reqs) {
        p.free_reqs.push_back(&r);
    }
    const std::uint64_t per_iter = window == 1 ? 1 : kPoolBatch;
    for (auto _ : state) {
        p.target += per_iter;
        const std::uint64_t goal = p.done + per_iter;
        while (p.submitted < p.target && !p.free_reqs.empty()) {
            upool_submit(&p);
        }
        while (p.done < goal) {
            uv_run(&p.loop, UV_RUN_ONCE);
        }
    }
    uv_run(&p.loop, UV_RUN_DEFAULT);
    uv_loop_close(&p.loop);
}

void pool_roundtrip_uv(benchmark::State& s) { pool_uv(s, 1); }
void pool_window64_uv(benchmark::State& s) { pool_uv(s, 64); }
#endif

// --- xthread_rtt --------------------------------------------------------------------------
// args: placement, poll_max_ns (aio only).

void xthread_rtt_aio(benchmark::State& state)
{
    const int placement = static_cast<int>(state.range(0));
    const std::int64_t poll_ns = state.range(1);
    PinGuard guard(main_cpu(placement));
    auto io = aio::IOThread::create("bench-peer");
    aio::Context& a = io->context();
    const int pc = peer_cpu(placement);
    aio::run_in(a, [pc] { pin_self(pc); });
    a.set_poll_params(poll_ns);
    auto b = aio::Context::create("bench-main");
    b->set_poll_params(poll_ns);
    bool done = false;
    auto one = [&] {
        done = false;
        a.schedule([&] { b->schedule([&] { done = true; }, "pong"); }, "ping");
        while (!done) {
            b->poll(true);
        }
    };
    for (int i = 0; i < 200; ++i) {  // let the adaptive windows settle
        one();
    }
    const auto a0 = a.stats();
    const auto b0 = b->stats();
    for (auto _ : state) {
        one();
    }
    const auto a1 = a.stats();
    const auto b1 = b->stats();
    const double n = static_cast<double>(state.iterations());
    state.counters["evw_per_rtt"] =
        static_cast<double>(a1.eventfd_writes - a0.eventfd_writes + b1.eventfd_writes -
                            b0.eventfd_writes) / n;
    state.counters["peer_poll_hits"] = static_cast<double>(a1.busy_poll_hits - a0.busy_poll_hits) / n;
    state.counters["main_poll_hits"] = static_cast<double>(b1.busy_poll_hits - b0.busy_poll_hits) / n;
    state.counters["peer_waits"] = static_cast<double>(a1.blocking_waits - a0.blocking_waits) / n;
    state.counters["main_waits"] = static_cast<double>(b1.blocking_waits - b0.blocking_waits) / n;
    state.counters["peer_poll_ns"] = static_cast<double>(a1.busy_poll_ns - a0.busy_poll_ns) / n;
    state.counters["main_poll_ns"] = static_cast<double>(b1.busy_poll_ns - b0.busy_poll_ns) / n;
    state.counters["peer_sleep_ns"] = static_cast<double>(a1.sleep_ns - a0.sleep_ns) / n;
    state.counters["main_sleep_ns"] = static_cast<double>(b1.sleep_ns - b0.sleep_ns) / n;
    io->stop();
}

// Runs `peer` on a thread with the placement; `stop` asks it to return.
template <class Peer>
std::thread start_peer(int placement, Peer peer)
{
    const int pc = peer_cpu(placement);
    return std::thread([pc, peer]() mutable {
        pin_self(pc);
        peer();
    });
}

struct GPing {
    GMainContext* ma;
    GMainContext* mb;
    bool done = false;           // main thread only
    std::atomic<bool> stop{false};
};

gboolean gping_pong(gpointer d)
{
    static_cast<GPing*>(d)->done = true;
    return G_SOURCE_REMOVE;
}

gboolean gping_ping(gpointer d)
{
    auto* g = static_cast<GPing*>(d);
    g_main_context_invoke(g->mb, gping_pong, g);
    return G_SOURCE_REMOVE;
}

void xthread_rtt_glib(benchmark::State& state)
{
    const int placement = static_cast<int>(state.range(0));
    PinGuard guard(main_cpu(placement));
    GPing g;
    g.ma = g_main_context_new();
    g.mb = g_main_context_new();
    std::thread t = start_peer(placement, [&g] {
        while (!g.stop.load()) {
            g_main_context_iteration(g.ma, TRUE);
        }
    });
    auto one = [&] {
        g.done = false;
        g_main_context_invoke(g.ma, gping_ping, &g);
        while (!g.done) {
            g_main_context_iteration(g.mb, TRUE);
        }
    };
    for (int i = 0; i < 100; ++i) {
        one();
    }
    for (auto _ : state) {
        one();
    }
    g.stop = true;
    g_main_context_wakeup(g.ma);
    t.join();
    g_main_context_unref(g.ma);
    g_main_context_unref(g.mb);
}

#if AIO_BENCH_HAVE_UV
struct UPing {
    uv_loop_t la, lb;
    uv_async_t aa, ab;
    bool done = false;
    std::atomic<bool> stop{false};
};

void uping_a(uv_async_t* h)
{
    auto* u = static_cast<UPing*>(h->data);
    if (u->stop.load()) {
        uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
        return;
    }
    uv_async_send(&u->ab);
}

void uping_b(uv_async_t* h) { static_cast<UPing*>(h->data)->done = true; }

void xthread_rtt_uv(benchmark::State& state)
{
    const int placement = static_cast<int>(state.range(0));
    PinGuard guard(main_cpu(placement));
    UPing u;
    uv_loop_init(&u.la);
    uv_loop_init(&u.lb);
    uv_async_init(&u.la, &u.aa, uping_a);
    uv_async_init(&u.lb, &u.ab, uping_b);
    u.aa.data = u.ab.data = &u;
    std::thread t = start_peer(placement, [&u] { uv_run(&u.la, UV_RUN_DEFAULT); });
    auto one = [&] {
        u.done = false;
        uv_async_send(&u.aa);
        while (!u.done) {
            uv_run(&u.lb, UV_RUN_ONCE);
        }
    };
    for (int i = 0; i < 100; ++i) {
        one();
    }
    for (auto _ : state) {
        one();
    }
    u.stop = true;
    uv_async_send(&u.aa);
    t.join();
    uv_close(reinterpret_cast<uv_handle_t*>(&u.ab), nullptr);
    uv_run(&u.lb, UV_RUN_DEFAULT);
    uv_loop_close(&u.la);
    uv_loop_close(&u.lb);
}
#endif

void efd_write(int fd)
{
    const std::uint64_t one = 1;
    if (write(fd, &one, sizeof one) != 8) {
        std::abort();
    }
}

void epoll_wait_read(int ep, int fd)
{
    epoll_event ev{};
    while (epoll_wait(ep, &ev, 1, -1) != 1) {
    }
    std::uint64_t v = 0;
    if (read(fd, &v, sizeof v) != 8) {
        std::abort();
    }
}

int epoll_for(int fd)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    return ep;
}

void xthread_rtt_floor_eventfd(benchmark::State& state)
{
    const int placement = static_cast<int>(state.range(0));
    PinGuard guard(main_cpu(placement));
    int fa = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int fb = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int epa = epoll_for(fa);
    int epb = epoll_for(fb);
    std::atomic<bool> stop{false};
    std::thread t = start_peer(placement, [&] {
        for (;;) {
            epoll_wait_read(epa, fa);
            if (stop.load()) {
                return;
            }
            efd_write(fb);
        }
    });
    for (auto _ : state) {
        efd_write(fa);
        epoll_wait_read(epb, fb);
    }
    stop = true;
    efd_write(fa);
    t.join();
    close(epa);
    close(epb);
    close(fa);
    close(fb);
}

long futex(std::atomic<int>* a, int op, int val)
{
    return syscall(SYS_futex, reinterpret_cast<int*>(a), op | FUTEX_PRIVATE_FLAG, val, nullptr,
                   nullptr, 0);
}

void futex_wait_for(std::atomic<int>& a, int want)
{
    for (;;) {
        int v = a.load(std::memory_order_acquire);
        if (v == want) {
            return;
        }
        futex(&a, FUTEX_WAIT, v);
    }
}

void xthread_rtt_floor_futex(benchmark::State& state)
{
    const int placement = static_cast<int>(state.range(0));
    PinGuard guard(main_cpu(placement));
    std::atomic<int> turn{0};  // 1: peer's turn, 2: main's turn, 3: stop
    std::thread t = start_peer(placement, [&] {
        for (;;) {
            for (;;) {
                int v = turn.load(std::memory_order_acquire);
                if (v == 1 || v == 3) {
                    break;
                }
                futex(&turn, FUTEX_WAIT, v);
            }
            if (turn.load() == 3) {
                return;
            }
            turn.store(2, std::memory_order_release);
            futex(&turn, FUTEX_WAKE, 1);
        }
    });
    for (auto _ : state) {
        turn.store(1, std::memory_order_release);
        futex(&turn, FUTEX_WAKE, 1);
        futex_wait_for(turn, 2);
    }
    turn.store(3);
    futex(&turn, FUTEX_WAKE, 1);
    t.join();
}

// Spin ping-pong; yields every 256 pauses so that the same-CPU placement makes progress.
void spin_until(const std::atomic<int>& a, int want)
{
    unsigned n = 0;
    while (a.load(std::memory_order_acquire) != want && a.load() != 3) {
        __builtin_ia32_pause();
        if ((++n & 255) == 0) {
            sched_yield();
        }
    }
}

void xthread_rtt_floor_spin(benchmark::State& state)
{
    const int placement = static_cast<int>(state.range(0));
    PinGuard guard(main_cpu(placement));
    std::atomic<int> turn{0};
    std::thread t = start_peer(placement, [&] {
        for (;;) {
            spin_until(turn, 1);
            if (turn.load() == 3) {
                return;
            }
            turn.store(2, std::memory_order_release);
        }
    });
    for (auto _ : state) {
        turn.store(1, std::memory_order_release);
        spin_until(turn, 2);
    }
    turn.store(3);
    t.join();
}

// --- idle_cpu -----------------------------------------------------------------------------
void idle_cpu_aio(benchmark::State& state)
{
    auto io = aio::IOThread::create("bench-idle");
    pthread_t pt = aio::run_in(io->context(), [] { return pthread_self(); });
    clockid_t cid{};
    pthread_getcpuclockid(pt, &cid);
    auto cpu = [cid] {
        timespec ts{};
        clock_gettime(cid, &ts);
        return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
    };
    const auto s0 = io->context().stats();
    double pct = 0;
    for (auto _ : state) {
        const std::int64_t c0 = cpu();
        const std::int64_t w0 = now_ns();
        timespec two{2, 0};
        nanosleep(&two, nullptr);
        const std::int64_t c1 = cpu();
        const std::int64_t w1 = now_ns();
        pct = 100.0 * static_cast<double>(c1 - c0) / static_cast<double>(w1 - w0);
        state.SetIterationTime(static_cast<double>(w1 - w0) * 1e-9);
    }
    const auto s1 = io->context().stats();
    state.counters["cpu_pct"] = pct;
    state.counters["iterations_2s"] = static_cast<double>(s1.iterations - s0.iterations);
    state.counters["busy_poll_us"] = static_cast<double>(s1.busy_poll_ns - s0.busy_poll_ns) * 1e-3;
    io->stop();
}

// --- missed_notify ------------------------------------------------------------------------
constexpr int kMissedTrials = 2000;

void missed_notify_aio(benchmark::State& state)
{
    auto io = aio::IOThread::create("bench-sleeper");
    aio::Context& a = io->context();
    a.set_poll_params(state.range(0));
    aio::Timer* timer = nullptr;
    aio::run_in(a, [&] {
        timer = new aio::Timer(a, aio::Clock::realtime, [&] { timer->arm_after(500'000'000); });
        timer->arm_after(500'000'000);
    });
    std::vector<std::int64_t> lat;
    lat.reserve(kMissedTrials);
    for (auto _ : state) {
        const std::int64_t t0 = now_ns();
        for (int i = 0; i < kMissedTrials; ++i) {
            timespec gap{0, 500'000};  // let the loop go back to sleep
            nanosleep(&gap, nullptr);
            std::atomic<std::int64_t> ran{0};
            const std::int64_t s = now_ns();
            a.schedule([&ran] { ran.store(now_ns(), std::memory_order_release); }, "missed");
            std::int64_t r;
            unsigned n = 0;
            while ((r = ran.load(std::memory_order_acquire)) == 0) {
                if ((++n & 63) == 0) {
                    sched_yield();
                }
            }
            lat.push_back(r - s);
        }
        state.SetIterationTime(static_cast<double>(now_ns() - t0) * 1e-9);
    }
    aio::run_in(a, [&] { delete timer; });
    io->stop();
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double p) {
        return static_cast<double>(lat[static_cast<std::size_t>(p / 100.0 * (lat.size() - 1))]) * 1e-3;
    };
    state.counters["p50_us"] = pct(50);
    state.counters["p99_us"] = pct(99);
    state.counters["max_us"] = static_cast<double>(lat.back()) * 1e-3;
    state.counters["trials"] = static_cast<double>(lat.size());
}

// --- co_hop -------------------------------------------------------------------------------
// A coroutine hops A -> B -> A between two IOThreads' contexts with switch_to(); the peer
// is the same ping-pong made of one-shot BHs (each runs on one context and schedules the
// next on the other). One benchmark iteration is kHops round trips, started by one spawn
// and ended by one futex wake of the benchmark thread, so those two cost 1/kHops each.
// args: placement (A on CPU 0, B on CPU 1 / both on CPU 0 / unpinned), poll_max_ns.
constexpr int kHops = 1000;  // round trips per co_hop iteration (report.py: CO_HOPS)

struct HopPair {
    std::shared_ptr<aio::IOThread> ta = aio::IOThread::create("hop-a");
    std::shared_ptr<aio::IOThread> tb = aio::IOThread::create("hop-b");
    aio::Context& a = ta->context();
    aio::Context& b = tb->context();
    std::atomic<int> done{0};

    HopPair(int placement, std::int64_t poll_ns)
    {
        const int ca = main_cpu(placement);
        const int cb = peer_cpu(placement);
        aio::run_in(a, [ca] { pin_self(ca); });
        aio::run_in(b, [cb] { pin_self(cb); });
        a.set_poll_params(poll_ns);
        b.set_poll_params(poll_ns);
    }
    ~HopPair()
    {
        ta->stop();
        tb->stop();
    }
    void finish() noexcept
    {
        done.store(1, std::memory_order_release);
        done.notify_one();
    }
    void wait() noexcept
    {
        done.wait(0, std::memory_order_acquire);
        done.store(0, std::memory_order_relaxed);
    }
};

aio::Task<void> hop_batch(HopPair& p, int n)
{
    for (int i = 0; i < n; ++i) {
        co_await aio::switch_to(p.b);
        co_await aio::switch_to(p.a);
    }
    p.finish();
}

void co_hop_counters(benchmark::State& state, HopPair& p, const aio::ContextStats& a0,
                     const aio::ContextStats& b0)
{
    const auto a1 = p.a.stats();
    const auto b1 = p.b.stats();
    const double n = static_cast<double>(state.iterations()) * kHops;
    state.counters["evw_per_rtt"] =
        static_cast<double>(a1.eventfd_writes - a0.eventfd_writes + b1.eventfd_writes -
                            b0.eventfd_writes) / n;
    state.counters["waits_per_rtt"] =
        static_cast<double>(a1.blocking_waits - a0.blocking_waits + b1.blocking_waits -
                            b0.blocking_waits) / n;
    state.counters["poll_hits_per_rtt"] =
        static_cast<double>(a1.busy_poll_hits - a0.busy_poll_hits + b1.busy_poll_hits -
                            b0.busy_poll_hits) / n;
}

void co_hop_aio(benchmark::State& state)
{
    HopPair p(static_cast<int>(state.range(0)), state.range(1));
    aio::spawn(p.a, hop_batch(p, 200));  // let the adaptive windows settle
    p.wait();
    const auto a0 = p.a.stats();
    const auto b0 = p.b.stats();
    for (auto _ : state) {
        aio::spawn(p.a, hop_batch(p, kHops));
        p.wait();
    }
    co_hop_counters(state, p, a0, b0);
}

struct BhHop {
    HopPair& p;
    int left = 0;
    void ping()  // on A
    {
        if (left-- == 0) {
            p.finish();
            return;
        }
        p.b.schedule([this] { p.a.schedule([this] { ping(); }, "hop-ping"); }, "hop-pong");
    }
};

void co_hop_bh(benchmark::State& state)
{
    HopPair p(static_cast<int>(state.range(0)), state.range(1));
    BhHop h{p};
    auto batch = [&](int n) {
        h.left = n;
        p.a.schedule([&] { h.ping(); }, "hop-start");
        p.wait();
    };
    batch(200);
    const auto a0 = p.a.stats();
    const auto b0 = p.b.stats();
    for (auto _ : state) {
        batch(kHops);
    }
    co_hop_counters(state, p, a0, b0);
}

// --- comutex_contended --------------------------------------------------------------------
// QEMU's test-aio-multithread mutex scenarios: N contexts each run a task that takes a
// shared CoMutex, bumps a counter and unlocks, until told to stop; the peer is N plain
// threads doing the same with std::mutex. One iteration runs them all for kLockRunMs
// (manual time: start to stop); items = lock/unlock pairs. arg: N (5 = QEMU's contended
// case, 2 = its hand-off case).
constexpr int kLockRunMs = 50;

struct LockRun {
    long counter = 0;  // guarded by the mutex under test
    std::atomic<bool> stop{false};
    std::atomic<int> running{0};

    void finished() noexcept
    {
        if (running.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            running.notify_one();
        }
    }
    // Lets the contenders run for kLockRunMs, stops them, and returns the seconds that took.
    double run_and_stop() noexcept
    {
        const std::int64_t t0 = now_ns();
        std::this_thread::sleep_for(std::chrono::milliseconds(kLockRunMs));
        stop.store(true, std::memory_order_relaxed);
        for (int r; (r = running.load(std::memory_order_acquire)) != 0;) {
            running.wait(r, std::memory_order_acquire);
        }
        return static_cast<double>(now_ns() - t0) / 1e9;
    }
};

aio::Task<void> comutex_body(aio::CoMutex& m, LockRun& run)
{
    while (!run.stop.load(std::memory_order_relaxed)) {
        co_await m.lock();
        ++run.counter;
        m.unlock();
    }
    run.finished();
}

void comutex_contended_aio(benchmark::State& state)
{
    const int n = static_cast<int>(state.range(0));
    std::vector<std::shared_ptr<aio::IOThread>> ts;
    for (int i = 0; i < n; ++i) {
        ts.push_back(aio::IOThread::create("comutex" + std::to_string(i)));
    }
    aio::CoMutex m;
    LockRun run;
    for (auto _ : state) {
        run.stop.store(false, std::memory_order_relaxed);
        run.running.store(n, std::memory_order_relaxed);
        for (auto& t : ts) {
            aio::spawn(t->context(), comutex_body(m, run));
        }
        state.SetIterationTime(run.run_and_stop());
    }
    state.SetItemsProcessed(run.counter);
    for (auto& t : ts) {
        t->stop();
    }
}

void comutex_contended_std(benchmark::State& state)
{
    const int n = static_cast<int>(state.range(0));
    std::mutex m;
    LockRun run;
    std::atomic<int> gen{0};  // > 0: run round `gen`; -1: exit
    std::vector<std::thread> ts;
    for (int i = 0; i < n; ++i) {
        ts.emplace_back([&] {
            for (int seen = 0;;) {
                gen.wait(seen, std::memory_order_acquire);
                seen = gen.load(std::memory_order_acquire);
                if (seen < 0) {
                    return;
                }
                while (!run.stop.load(std::memory_order_relaxed)) {
                    std::lock_guard lk(m);
                    ++run.counter;
                }
                run.finished();
            }
        });
    }
    for (auto _ : state) {
        run.stop.store(false, std::memory_order_relaxed);
        run.running.store(n, std::memory_order_relaxed);
        gen.fetch_add(1, std::memory_order_release);
        gen.notify_all();
        state.SetIterationTime(run.run_and_stop());
    }
    gen.store(-1, std::memory_order_release);
    gen.notify_all();
    for (auto& t : ts) {
        t.join();
    }
    state.SetItemsProcessed(run.counter);
}

}  // namespace

void register_mt()
{
    using benchmark::RegisterBenchmark;
    for (auto* b : {RegisterBenchmark("pool_roundtrip/aio", pool_roundtrip_aio),
                    RegisterBenchmark("pool_roundtrip/glib", pool_roundtrip_glib),
#if AIO_BENCH_HAVE_UV
                    RegisterBenchmark("pool_roundtrip/uv", pool_roundtrip_uv),
#endif
                    RegisterBenchmark("pool_window64/aio", pool_window64_aio),
                    RegisterBenchmark("pool_window64/glib", pool_window64_glib),
#if AIO_BENCH_HAVE_UV
                    RegisterBenchmark("pool_window64/uv", pool_window64_uv),
#endif
         }) {
        b->UseRealTime()->MinTime(0.2);
    }
    auto placements = [](benchmark::internal::Benchmark* b) {
        for (int p : {kCross, kSame, kNone}) {
            b->Args({p, 0});
        }
    };
    auto* x = RegisterBenchmark("xthread_rtt/aio", xthread_rtt_aio);
    for (std::int64_t poll : {0, 32768}) {
        for (int p : {kCross, kSame, kNone}) {
            x->Args({p, poll});
        }
    }
    x->UseRealTime()->MinTime(0.2)->Unit(benchmark::kMicrosecond);
    for (auto* b : {RegisterBenchmark("xthread_rtt/glib", xthread_rtt_glib),
#if AIO_BENCH_HAVE_UV
                    RegisterBenchmark("xthread_rtt/uv", xthread_rtt_uv),
#endif
                    RegisterBenchmark("xthread_rtt/floor_eventfd", xthread_rtt_floor_eventfd),
                    RegisterBenchmark("xthread_rtt/floor_futex", xthread_rtt_floor_futex),
                    RegisterBenchmark("xthread_rtt/floor_spin", xthread_rtt_floor_spin)}) {
        placements(b);
        b->UseRealTime()->MinTime(0.2)->Unit(benchmark::kMicrosecond);
    }
    for (auto* b : {RegisterBenchmark("co_hop/aio", co_hop_aio),
                    RegisterBenchmark("co_hop/bh", co_hop_bh)}) {
        for (std::int64_t poll : {0, 32768}) {
            for (int p : {kCross, kSame, kNone}) {
                b->Args({p, poll});
            }
        }
        b->UseRealTime()->MinTime(0.2)->Unit(benchmark::kMillisecond);
    }
    for (auto* b : {RegisterBenchmark("comutex_contended/aio", comutex_contended_aio),
                    RegisterBenchmark("comutex_contended/std_mutex", comutex_contended_std)}) {
        b->Arg(5)->Arg(2)->Iterations(4)->UseManualTime()->Unit(benchmark::kMillisecond);
    }
    RegisterBenchmark("idle_cpu/aio", idle_cpu_aio)
        ->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
    RegisterBenchmark("missed_notify/aio", missed_notify_aio)
        ->Arg(0)
        ->Arg(32768)
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond)
        ->ComputeStatistics("max", [](const std::vector<double>& v) {
            return *std::max_element(v.begin(), v.end());
        });
}
