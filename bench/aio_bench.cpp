// SPDX-License-Identifier: LGPL-2.1-or-later
// aio-bench: aio::Context against GLib, libuv and the kernel floor, in one binary so that
// every ratio comes from the same run on the same machine.
//
// Names are <row>/<impl>[/<arg>]:
//   aio       our context driven by ctx->poll()
//   aio_glib  our context attached to a private GMainContext, g_main_context_iteration()
//   glib      plain GLib on a private GMainContext
//   uv        libuv (only when built with libuv)
//   floor     the raw syscalls / the cheapest possible GSource
// bench/report.py turns the JSON output into docs/benchmarks.md.
#include <aio/bottom_half.hpp>
#include <aio/context.hpp>
#include <aio/timer.hpp>

#include <benchmark/benchmark.h>

#include <glib-unix.h>
#include <glib.h>

#if AIO_BENCH_HAVE_UV
#include <uv.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <system_error>
#include <vector>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

// --- heap allocation counter ------------------------------------------------------------
// Every operator new in the process (the library's included: the executable's definitions
// interpose on the shared library's references) bumps a per-thread counter. malloc() is
// not counted, so the counter is only meaningful for our C++ library, not for GLib/libuv.
// The operators are kept out of line so that tools which replace them (valgrind) see
// matching new/delete pairs; under such a tool the counter stays at 0.
#define AIO_BENCH_NEW __attribute__((noinline))

namespace {
thread_local std::uint64_t t_allocs = 0;

void* counted_alloc(std::size_t n)
{
    ++t_allocs;
    return std::malloc(n == 0 ? 1 : n);
}

void* counted_aligned_alloc(std::size_t n, std::align_val_t al)
{
    ++t_allocs;
    const auto a = static_cast<std::size_t>(al);
    std::size_t size = n == 0 ? a : (n + a - 1) / a * a;  // aligned_alloc wants a multiple
    return std::aligned_alloc(a, size);
}
}  // namespace

AIO_BENCH_NEW void* operator new(std::size_t n)
{
    if (void* p = counted_alloc(n)) {
        return p;
    }
    throw std::bad_alloc();
}
AIO_BENCH_NEW void* operator new[](std::size_t n)
{
    if (void* p = counted_alloc(n)) {
        return p;
    }
    throw std::bad_alloc();
}
AIO_BENCH_NEW void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n); }
AIO_BENCH_NEW void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n); }
AIO_BENCH_NEW void* operator new(std::size_t n, std::align_val_t al)
{
    if (void* p = counted_aligned_alloc(n, al)) {
        return p;
    }
    throw std::bad_alloc();
}
AIO_BENCH_NEW void* operator new[](std::size_t n, std::align_val_t al)
{
    if (void* p = counted_aligned_alloc(n, al)) {
        return p;
    }
    throw std::bad_alloc();
}
AIO_BENCH_NEW void* operator new(std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept
{
    return counted_aligned_alloc(n, al);
}
AIO_BENCH_NEW void* operator new[](std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept
{
    return counted_aligned_alloc(n, al);
}
AIO_BENCH_NEW void operator delete(void* p) noexcept { std::free(p); }
AIO_BENCH_NEW void operator delete[](void* p) noexcept { std::free(p); }
AIO_BENCH_NEW void operator delete(void* p, std::size_t) noexcept { std::free(p); }
AIO_BENCH_NEW void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
AIO_BENCH_NEW void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
AIO_BENCH_NEW void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
AIO_BENCH_NEW void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
AIO_BENCH_NEW void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
AIO_BENCH_NEW void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
AIO_BENCH_NEW void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
AIO_BENCH_NEW void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
AIO_BENCH_NEW void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept
{
    std::free(p);
}

namespace {

// --- helpers ----------------------------------------------------------------------------

rlim_t g_nofile = 0;  // the soft RLIMIT_NOFILE in effect after main() raised it

// Skips the benchmark (and returns true) when `fds` more descriptors would not fit.
bool skip_if_fd_limit(benchmark::State& state, std::size_t fds)
{
    constexpr std::size_t kSlack = 64;  // stdio, epoll fds, GLib's wakeup, libuv's own fds
    if (g_nofile != RLIM_INFINITY && fds + kSlack > g_nofile) {
        state.SkipWithError(("needs " + std::to_string(fds + kSlack) +
                             " fds but RLIMIT_NOFILE is " + std::to_string(g_nofile) +
                             " and cannot be raised")
                                .c_str());
        return true;
    }
    return false;
}

std::uint64_t iters(const benchmark::State& state) noexcept
{
    return static_cast<std::uint64_t>(state.iterations());
}

void eventfd_signal(int fd) noexcept
{
    const std::uint64_t one = 1;
    if (write(fd, &one, sizeof one) != static_cast<ssize_t>(sizeof one)) {
        std::perror("aio-bench: eventfd write");
        std::abort();
    }
}

void eventfd_drain(int fd) noexcept
{
    std::uint64_t v = 0;
    if (read(fd, &v, sizeof v) != static_cast<ssize_t>(sizeof v)) {
        std::perror("aio-bench: eventfd read");
        std::abort();
    }
}

// N non-blocking eventfds, closed on destruction (and on a failed construction).
class EventFds {
public:
    explicit EventFds(std::size_t n)
    {
        fds_.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
            if (fd < 0) {
                int err = errno;
                close_all();
                throw std::system_error(err, std::generic_category(), "eventfd");
            }
            fds_.push_back(fd);
        }
    }
    ~EventFds() { close_all(); }
    EventFds(const EventFds&) = delete;
    EventFds& operator=(const EventFds&) = delete;

    int operator[](std::size_t i) const noexcept { return fds_[i]; }
    std::size_t size() const noexcept { return fds_.size(); }
    const std::vector<int>& all() const noexcept { return fds_; }

private:
    void close_all() noexcept
    {
        for (int fd : fds_) {
            close(fd);
        }
        fds_.clear();
    }
    std::vector<int> fds_;
};

// A private GMainContext.
struct MainContext {
    GMainContext* mc = g_main_context_new();
    MainContext() = default;
    ~MainContext() { g_main_context_unref(mc); }
    MainContext(const MainContext&) = delete;
    MainContext& operator=(const MainContext&) = delete;
};

// Detaches our context from its GMainContext (the documented destroy order: handlers are
// cleared by the caller first, then the source goes, then the GMainContext).
void detach(aio::ContextPtr& ctx) noexcept
{
    g_source_destroy(ctx->gsource());
}

// Registers a read handler on each fd that drains it and counts. Cleared in reverse order
// by clear_handlers() (the newest node is the list head, so that is O(1) per removal).
void add_counting_handlers(aio::Context& ctx, const EventFds& fds, std::uint64_t* count)
{
    for (int fd : fds.all()) {
        ctx.set_fd_handler(fd, aio::FdHandlers{.read = [fd, count] {
                                                   eventfd_drain(fd);
                                                   ++*count;
                                               }});
    }
}

void clear_handlers(aio::Context& ctx, const EventFds& fds) noexcept
{
    for (std::size_t i = fds.size(); i-- > 0;) {
        ctx.clear_fd_handler(fds[i]);
    }
}

// Reports heap allocations per operation and checks that every operation ran.
void finish(benchmark::State& state, std::uint64_t allocs, std::uint64_t ops_expected,
            std::uint64_t ops_done, const char* counter_name = "allocs_per_op")
{
    if (ops_expected != 0) {
        state.counters[counter_name] =
            static_cast<double>(allocs) / static_cast<double>(ops_expected);
    }
    if (ops_done != ops_expected) {
        state.SkipWithError(("ran " + std::to_string(ops_done) + " callbacks, expected " +
                             std::to_string(ops_expected))
                                .c_str());
    }
}

// --- bh_oneshot_chain --------------------------------------------------------------------
// A one-shot callback whose run queues the next one; one loop iteration per callback.

struct AioChain {
    aio::Context* ctx = nullptr;
    std::uint64_t runs = 0;
    bool stop = false;
};

void aio_chain_step(AioChain* c)
{
    ++c->runs;
    if (!c->stop) {
        c->ctx->schedule([c] { aio_chain_step(c); }, "chain");
    }
}

void bh_oneshot_chain_aio(benchmark::State& state)
{
    aio::ContextPtr ctx = aio::Context::create("bench");
    AioChain chain{ctx.get()};
    ctx->schedule([c = &chain] { aio_chain_step(c); }, "chain");
    const std::uint64_t a0 = t_allocs;
    for (auto _ : state) {
        ctx->poll(true);
    }
    const std::uint64_t allocs = t_allocs - a0;
    const std::uint64_t runs = chain.runs;
    chain.stop = true;
    while (ctx->poll(false)) {
    }
    finish(state, allocs, iters(state), runs);
}

void bh_oneshot_chain_aio_glib(benchmark::State& state)
{
    MainContext m;
    aio::ContextPtr ctx = aio::Context::create("bench");
    ctx->attach(m.mc);
    AioChain chain{ctx.get()};
    ctx->schedule([c = &chain] { aio_chain_step(c); }, "chain");
    const std::uint64_t a0 = t_allocs;
    for (auto _ : state) {
        g_main_context_iteration(m.mc, TRUE);
    }
    const std::uint64_t allocs = t_allocs - a0;
    const std::uint64_t runs = chain.runs;
    chain.stop = true;
    while (g_main_context_iteration(m.mc, FALSE)) {
    }
    detach(ctx);
    finish(state, allocs, iters(state), runs);
}

struct GlibChain {
    GMainContext* mc = nullptr;
    std::uint64_t runs = 0;
    bool stop = false;
};

gboolean glib_chain_step(gpointer p);

void glib_chain_add(GlibChain* c)
{
    GSource* s = g_idle_source_new();
    g_source_set_callback(s, glib_chain_step, c, nullptr);
    g_source_attach(s, c->mc);
    g_source_unref(s);
}

gboolean glib_chain_step(gpointer p)
{
    auto* c = static_cast<GlibChain*>(p);
    ++c->runs;
    if (!c->stop) {
        glib_chain_add(c);
    }
    return G_SOURCE_REMOVE;
}

void bh_oneshot_chain_glib(benchmark::State& state)
{
    MainContext m;
    GlibChain chain{m.mc};
    glib_chain_add(&chain);
    for (auto _ : state) {
        g_main_context_iteration(m.mc, TRUE);
    }
    const std::uint64_t runs = chain.runs;
    chain.stop = true;
    while (g_main_context_iteration(m.mc, FALSE)) {
    }
    if (runs != iters(state)) {
        state.SkipWithError("g_idle chain ran a different number of callbacks");
    }
}

#if AIO_BENCH_HAVE_UV
struct UvChain {
    uv_async_t async{};
    std::uint64_t runs = 0;
    bool stop = false;
};

void uv_chain_step(uv_async_t* h)
{
    auto* c = static_cast<UvChain*>(h->data);
    ++c->runs;
    if (!c->stop) {
        uv_async_send(h);
    }
}

void bh_oneshot_chain_uv(benchmark::State& state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    UvChain chain;
    uv_async_init(&loop, &chain.async, uv_chain_step);
    chain.async.data = &chain;
    uv_async_send(&chain.async);
    for (auto _ : state) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    const std::uint64_t runs = chain.runs;
    chain.stop = true;
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_close(reinterpret_cast<uv_handle_t*>(&chain.async), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    // UV_RUN_ONCE may coalesce or split wake-ups; report the true per-callback cost.
    state.counters["callbacks_per_iter"] =
        static_cast<double>(runs) / static_cast<double>(iters(state));
}
#endif

void bh_oneshot_chain_floor(benchmark::State& state)
{
    EventFds fds(1);
    for (auto _ : state) {
        eventfd_signal(fds[0]);
        eventfd_drain(fds[0]);
    }
}

// --- bh_batch_10k -------------------------------------------------------------------------
// 10k persistent BHs scheduled, then dispatched; time and heap allocations per BH.

constexpr std::size_t kBatch = 10'000;

void bh_batch_10k_aio_impl(benchmark::State& state, bool glib)
{
    MainContext m;
    aio::ContextPtr ctx = aio::Context::create("bench");
    if (glib) {
        ctx->attach(m.mc);
    }
    std::uint64_t runs = 0;
    std::vector<aio::BottomHalf> bhs;
    bhs.reserve(kBatch);
    for (std::size_t i = 0; i < kBatch; ++i) {
        bhs.push_back(ctx->make_bh([&runs] { ++runs; }, "batch"));
    }
    const std::uint64_t a0 = t_allocs;
    for (auto _ : state) {
        for (auto& bh : bhs) {
            bh.schedule();
        }
        if (glib) {
            const std::uint64_t target = runs + kBatch;
            while (runs < target) {
                g_main_context_iteration(m.mc, FALSE);
            }
        } else {
            ctx->poll(false);
        }
    }
    const std::uint64_t ops = iters(state) * kBatch;
    finish(state, t_allocs - a0, ops, runs, "allocs_per_bh");
    state.SetItemsProcessed(static_cast<std::int64_t>(ops));
    bhs.clear();
    if (glib) {
        detach(ctx);
    }
}

void bh_batch_10k_aio(benchmark::State& state) { bh_batch_10k_aio_impl(state, false); }
void bh_batch_10k_aio_glib(benchmark::State& state) { bh_batch_10k_aio_impl(state, true); }

gboolean count_and_remove(gpointer p)
{
    ++*static_cast<std::uint64_t*>(p);
    return G_SOURCE_REMOVE;
}

void bh_batch_10k_glib(benchmark::State& state)
{
    MainContext m;
    std::uint64_t runs = 0;
    for (auto _ : state) {
        for (std::size_t i = 0; i < kBatch; ++i) {
            GSource* s = g_idle_source_new();
            g_source_set_callback(s, count_and_remove, &runs, nullptr);
            g_source_attach(s, m.mc);
            g_source_unref(s);
        }
        const std::uint64_t target = runs + kBatch;
        while (runs < target) {
            g_main_context_iteration(m.mc, FALSE);
        }
    }
    state.SetItemsProcessed(state.iterations() *
                            static_cast<std::int64_t>(kBatch));
}

// --- glib_iteration -----------------------------------------------------------------------
// One g_main_context_iteration() with one ready source; N idle things registered.

gboolean ready_prepare(GSource*, gint* timeout) noexcept
{
    *timeout = 0;
    return TRUE;
}
gboolean ready_check(GSource*) noexcept { return TRUE; }
gboolean ready_dispatch(GSource*, GSourceFunc, gpointer) noexcept { return G_SOURCE_CONTINUE; }

GSourceFuncs ready_funcs = {ready_prepare, ready_check, ready_dispatch, nullptr, nullptr, nullptr};

void glib_iteration_aio_glib(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    if (skip_if_fd_limit(state, n)) {
        return;
    }
    try {
        EventFds fds(n);
        MainContext m;
        aio::ContextPtr ctx = aio::Context::create("bench");
        ctx->attach(m.mc);
        std::uint64_t runs = 0;
        aio::BottomHalf ready;
        ready = ctx->make_bh(
            [&ready, &runs] {
                ++runs;
                ready.schedule();
            },
            "ready");
        std::vector<aio::BottomHalf> idle;
        idle.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            idle.push_back(ctx->make_bh([] {}, "idle"));
        }
        std::uint64_t fd_runs = 0;
        add_counting_handlers(*ctx, fds, &fd_runs);
        ready.schedule();
        // One warm-up iteration outside the timed loop.
        g_main_context_iteration(m.mc, TRUE);
        const std::uint64_t r0 = runs;
        const std::uint64_t a0 = t_allocs;
        for (auto _ : state) {
            g_main_context_iteration(m.mc, TRUE);
        }
        finish(state, t_allocs - a0, iters(state), runs - r0);
        clear_handlers(*ctx, fds);
        idle.clear();
        ready.reset();
        detach(ctx);
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
    }
}

void glib_iteration_floor(benchmark::State& state)
{
    MainContext m;
    GSource* s = g_source_new(&ready_funcs, sizeof(GSource));
    g_source_attach(s, m.mc);
    for (auto _ : state) {
        g_main_context_iteration(m.mc, TRUE);
    }
    g_source_destroy(s);
    g_source_unref(s);
}

gboolean never_fires(gpointer) { return G_SOURCE_CONTINUE; }

void glib_iteration_glib(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    MainContext m;
    GSource* s = g_source_new(&ready_funcs, sizeof(GSource));
    g_source_attach(s, m.mc);
    std::vector<GSource*> timers;
    timers.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        GSource* t = g_timeout_source_new_seconds(3600);
        g_source_set_callback(t, never_fires, nullptr, nullptr);
        g_source_attach(t, m.mc);
        timers.push_back(t);
    }
    for (auto _ : state) {
        g_main_context_iteration(m.mc, TRUE);
    }
    for (GSource* t : timers) {
        g_source_destroy(t);
        g_source_unref(t);
    }
    g_source_destroy(s);
    g_source_unref(s);
}

// --- fd_1000_one_ready ----------------------------------------------------------------------
// 1000 eventfds registered; per round one is written (round-robin), waited for, dispatched.

constexpr std::size_t kFds = 1000;

void fd_1000_aio_impl(benchmark::State& state, bool glib)
{
    if (skip_if_fd_limit(state, kFds)) {
        return;
    }
    try {
        EventFds fds(kFds);
        MainContext m;
        aio::ContextPtr ctx = aio::Context::create("bench");
        if (glib) {
            ctx->attach(m.mc);
        }
        std::uint64_t runs = 0;
        add_counting_handlers(*ctx, fds, &runs);
        // Let the context settle (the registrations' own notify) outside the timed loop.
        if (glib) {
            while (g_main_context_iteration(m.mc, FALSE)) {
            }
        } else {
            while (ctx->poll(false)) {
            }
        }
        std::size_t next = 0;
        const std::uint64_t a0 = t_allocs;
        for (auto _ : state) {
            eventfd_signal(fds[next]);
            if (++next == kFds) {
                next = 0;
            }
            if (glib) {
                g_main_context_iteration(m.mc, TRUE);
            } else {
                ctx->poll(true);
            }
        }
        finish(state, t_allocs - a0, iters(state), runs);
        clear_handlers(*ctx, fds);
        if (glib) {
            detach(ctx);
        }
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
    }
}

void fd_1000_one_ready_aio(benchmark::State& state) { fd_1000_aio_impl(state, false); }
void fd_1000_one_ready_aio_glib(benchmark::State& state) { fd_1000_aio_impl(state, true); }

void fd_1000_one_ready_floor(benchmark::State& state)
{
    if (skip_if_fd_limit(state, kFds)) {
        return;
    }
    try {
        EventFds fds(kFds);
        int ep = epoll_create1(EPOLL_CLOEXEC);
        if (ep < 0) {
            throw std::system_error(errno, std::generic_category(), "epoll_create1");
        }
        for (std::size_t i = 0; i < kFds; ++i) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u64 = i;
            if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) != 0) {
                int err = errno;
                close(ep);
                throw std::system_error(err, std::generic_category(), "epoll_ctl");
            }
        }
        std::size_t next = 0;
        std::uint64_t runs = 0;
        for (auto _ : state) {
            eventfd_signal(fds[next]);
            if (++next == kFds) {
                next = 0;
            }
            epoll_event evs[16];
            int r = epoll_wait(ep, evs, 16, -1);
            for (int i = 0; i < r; ++i) {
                eventfd_drain(fds[evs[i].data.u64]);
                ++runs;
            }
        }
        close(ep);
        if (runs != iters(state)) {
            state.SkipWithError("epoll floor dispatched a different number of events");
        }
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
    }
}

#if AIO_BENCH_HAVE_UV
struct UvFd {
    uv_poll_t poll{};
    int fd = -1;
    std::uint64_t* runs = nullptr;
};

void uv_fd_ready(uv_poll_t* h, int status, int)
{
    auto* f = static_cast<UvFd*>(h->data);
    if (status == 0) {
        eventfd_drain(f->fd);
        ++*f->runs;
    }
}

void fd_1000_one_ready_uv(benchmark::State& state)
{
    if (skip_if_fd_limit(state, kFds)) {
        return;
    }
    try {
        EventFds fds(kFds);
        uv_loop_t loop;
        uv_loop_init(&loop);
        std::uint64_t runs = 0;
        std::vector<UvFd> polls(kFds);
        for (std::size_t i = 0; i < kFds; ++i) {
            polls[i].fd = fds[i];
            polls[i].runs = &runs;
            uv_poll_init(&loop, &polls[i].poll, fds[i]);
            polls[i].poll.data = &polls[i];
            uv_poll_start(&polls[i].poll, UV_READABLE, uv_fd_ready);
        }
        std::size_t next = 0;
        for (auto _ : state) {
            eventfd_signal(fds[next]);
            if (++next == kFds) {
                next = 0;
            }
            uv_run(&loop, UV_RUN_ONCE);
        }
        for (auto& p : polls) {
            uv_poll_stop(&p.poll);
            uv_close(reinterpret_cast<uv_handle_t*>(&p.poll), nullptr);
        }
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        if (runs != iters(state)) {
            state.SkipWithError("libuv dispatched a different number of events");
        }
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
    }
}
#endif

gboolean glib_fd_ready(gint fd, GIOCondition, gpointer p)
{
    eventfd_drain(fd);
    ++*static_cast<std::uint64_t*>(p);
    return G_SOURCE_CONTINUE;
}

void fd_1000_one_ready_glib(benchmark::State& state)
{
    if (skip_if_fd_limit(state, kFds)) {
        return;
    }
    try {
        EventFds fds(kFds);
        MainContext m;
        std::uint64_t runs = 0;
        std::vector<GSource*> sources;
        sources.reserve(kFds);
        for (int fd : fds.all()) {
            GSource* s = g_unix_fd_source_new(fd, G_IO_IN);
            g_source_set_callback(s, G_SOURCE_FUNC(glib_fd_ready), &runs, nullptr);
            g_source_attach(s, m.mc);
            sources.push_back(s);
        }
        std::size_t next = 0;
        for (auto _ : state) {
            eventfd_signal(fds[next]);
            if (++next == kFds) {
                next = 0;
            }
            g_main_context_iteration(m.mc, TRUE);
        }
        for (GSource* s : sources) {
            g_source_destroy(s);
            g_source_unref(s);
        }
        if (runs != iters(state)) {
            state.SkipWithError("GLib dispatched a different number of events");
        }
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
    }
}

// --- timer helpers --------------------------------------------------------------------------

std::int64_t mono_ns() noexcept
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// CPU time of the calling thread: excludes the time the loop sleeps.
std::int64_t thread_cpu_ns() noexcept
{
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Fire statistics of many one-shot timers: lateness against each timer's own deadline
// (CLOCK_MONOTONIC ns, as the implementation computed it), early fires, last fire.
struct FireStats {
    std::int64_t start_ns = 0;  // CLOCK_MONOTONIC just before the first timer was armed
    std::uint64_t fired = 0;
    std::uint64_t early = 0;
    std::int64_t late_sum_ns = 0;
    std::int64_t late_max_ns = 0;
    std::int64_t last_fire_ns = 0;

    void record(std::int64_t deadline_ns) noexcept
    {
        const std::int64_t now = mono_ns();
        const std::int64_t late = now - deadline_ns;
        ++fired;
        if (late < 0) {
            ++early;
        }
        late_sum_ns += late;
        if (late > late_max_ns) {
            late_max_ns = late;
        }
        last_fire_ns = now;
    }
};

// --- timer_100k ---------------------------------------------------------------------------
// libuv's million_timers scaled down: 100k one-shot timers, the i-th due (2 + i/1000) ms
// after arming (libuv's loop: timeout starts at 1 and is bumped every 1000 timers, so 1000
// timers share each whole-ms deadline and the last is due at 101 ms). One run per
// repetition: arm all (insert), then drive the loop until all fired (dispatch).

constexpr std::size_t kTimers100k = 100'000;

std::int64_t timer_100k_timeout_ms(std::size_t i) noexcept
{
    return 2 + static_cast<std::int64_t>(i / 1000);
}

void timer_100k_report(benchmark::State& state, const FireStats& st, std::int64_t insert_cpu,
                       std::int64_t insert_wall, std::int64_t dispatch_cpu,
                       std::int64_t dispatch_wall)
{
    const auto n = static_cast<double>(kTimers100k);
    state.SetIterationTime(static_cast<double>(insert_wall + dispatch_wall) * 1e-9);
    state.counters["insert_ns"] = static_cast<double>(insert_cpu) / n;
    state.counters["insert_wall_ns"] = static_cast<double>(insert_wall) / n;
    state.counters["dispatch_cpu_ns"] = static_cast<double>(dispatch_cpu) / n;
    state.counters["late_mean_ms"] =
        st.fired ? static_cast<double>(st.late_sum_ns) / static_cast<double>(st.fired) * 1e-6
                 : 0.0;
    state.counters["late_max_ms"] = static_cast<double>(st.late_max_ns) * 1e-6;
    state.counters["last_fire_ms"] = static_cast<double>(st.last_fire_ns - st.start_ns) * 1e-6;
    state.counters["early_fires"] = static_cast<double>(st.early);
    if (st.fired != kTimers100k) {
        state.SkipWithError(("fired " + std::to_string(st.fired) + " timers, expected " +
                             std::to_string(kTimers100k))
                                .c_str());
    }
}

void timer_100k_aio_impl(benchmark::State& state, bool glib)
{
    for (auto _ : state) {
        MainContext m;
        aio::ContextPtr ctx = aio::Context::create("bench");
        if (glib) {
            ctx->attach(m.mc);
        }
        FireStats st;
        std::vector<aio::Timer> timers;
        timers.reserve(kTimers100k);
        const std::int64_t create0 = thread_cpu_ns();
        for (std::size_t i = 0; i < kTimers100k; ++i) {
            timers.emplace_back(
                *ctx, aio::Clock::realtime,
                [s = &st, i] {
                    s->record(s->start_ns + timer_100k_timeout_ms(i) * 1'000'000);
                },
                aio::Scale::ns, "timer_100k");
        }
        const std::int64_t create_cpu = thread_cpu_ns() - create0;

        st.start_ns = mono_ns();
        const std::int64_t c0 = thread_cpu_ns();
        for (std::size_t i = 0; i < kTimers100k; ++i) {
            timers[i].arm_at(st.start_ns + timer_100k_timeout_ms(i) * 1'000'000);
        }
        const std::int64_t c1 = thread_cpu_ns();
        const std::int64_t w1 = mono_ns();
        while (st.fired < kTimers100k) {
            if (glib) {
                g_main_context_iteration(m.mc, TRUE);
            } else {
                ctx->poll(true);
            }
        }
        const std::int64_t c2 = thread_cpu_ns();
        const std::int64_t w2 = mono_ns();
        timer_100k_report(state, st, c1 - c0, w1 - st.start_ns, c2 - c1, w2 - w1);
        state.counters["create_ns"] =
            static_cast<double>(create_cpu) / static_cast<double>(kTimers100k);
        // Untimed by the row's goals: the same arming again on the now-empty lists, whose
        // heap arrays kept their capacity (an hour out, so nothing fires), then cancelled
        // newest first (each a heap leaf, O(1)).
        const std::int64_t later = mono_ns() + 3'600'000'000'000;
        const std::int64_t c3 = thread_cpu_ns();
        for (std::size_t i = 0; i < kTimers100k; ++i) {
            timers[i].arm_at(later + timer_100k_timeout_ms(i) * 1'000'000);
        }
        state.counters["insert_warm_ns"] =
            static_cast<double>(thread_cpu_ns() - c3) / static_cast<double>(kTimers100k);
        for (std::size_t i = kTimers100k; i-- > 0;) {
            timers[i].cancel();
        }
        timers.clear();
        if (glib) {
            detach(ctx);
        }
    }
}

void timer_100k_aio(benchmark::State& state) { timer_100k_aio_impl(state, false); }
void timer_100k_aio_glib(benchmark::State& state) { timer_100k_aio_impl(state, true); }

struct GlibTimerRec {
    FireStats* st = nullptr;
    std::int64_t deadline_ns = 0;
};

gboolean glib_timer_fired(gpointer p)
{
    auto* r = static_cast<GlibTimerRec*>(p);
    r->st->record(r->deadline_ns);
    return G_SOURCE_REMOVE;
}

void timer_100k_glib(benchmark::State& state)
{
    for (auto _ : state) {
        MainContext m;
        FireStats st;
        std::vector<GlibTimerRec> recs(kTimers100k);
        st.start_ns = mono_ns();
        const std::int64_t c0 = thread_cpu_ns();
        // g_timeout_add_full() on a private context: new + callback + attach + unref.
        for (std::size_t i = 0; i < kTimers100k; ++i) {
            GSource* s = g_timeout_source_new(static_cast<guint>(timer_100k_timeout_ms(i)));
            recs[i].st = &st;
            // GLib computed the expiration (µs, CLOCK_MONOTONIC) when it created the source.
            recs[i].deadline_ns = g_source_get_ready_time(s) * 1000;
            g_source_set_callback(s, glib_timer_fired, &recs[i], nullptr);
            g_source_attach(s, m.mc);
            g_source_unref(s);
        }
        const std::int64_t c1 = thread_cpu_ns();
        const std::int64_t w1 = mono_ns();
        while (st.fired < kTimers100k) {
            g_main_context_iteration(m.mc, TRUE);
        }
        const std::int64_t c2 = thread_cpu_ns();
        const std::int64_t w2 = mono_ns();
        timer_100k_report(state, st, c1 - c0, w1 - st.start_ns, c2 - c1, w2 - w1);
    }
}

#if AIO_BENCH_HAVE_UV
struct UvTimers {
    FireStats st;
    std::vector<uv_timer_t> timers;
    std::vector<std::int64_t> deadline_ns;
};

void uv_timer_100k_fired(uv_timer_t* h)
{
    auto* u = static_cast<UvTimers*>(h->data);
    u->st.record(u->deadline_ns[static_cast<std::size_t>(h - u->timers.data())]);
}

void timer_100k_uv(benchmark::State& state)
{
    for (auto _ : state) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        UvTimers u;
        u.timers.resize(kTimers100k);
        u.deadline_ns.resize(kTimers100k);
        for (auto& t : u.timers) {
            uv_timer_init(&loop, &t);
            t.data = &u;
        }
        uv_update_time(&loop);
        u.st.start_ns = mono_ns();
        const std::int64_t c0 = thread_cpu_ns();
        // libuv's deadline is uv_now() + timeout, in whole ms of its cached loop time.
        const auto now_ms = static_cast<std::int64_t>(uv_now(&loop));
        for (std::size_t i = 0; i < kTimers100k; ++i) {
            const std::int64_t t = timer_100k_timeout_ms(i);
            u.deadline_ns[i] = (now_ms + t) * 1'000'000;
            uv_timer_start(&u.timers[i], uv_timer_100k_fired, static_cast<std::uint64_t>(t), 0);
        }
        const std::int64_t c1 = thread_cpu_ns();
        const std::int64_t w1 = mono_ns();
        uv_run(&loop, UV_RUN_DEFAULT);  // returns when no timer is active
        const std::int64_t c2 = thread_cpu_ns();
        const std::int64_t w2 = mono_ns();
        timer_100k_report(state, u.st, c1 - c0, w1 - u.st.start_ns, c2 - c1, w2 - w1);
        // As for aio: arm again an hour out, then stop newest first.
        uv_update_time(&loop);
        const std::int64_t c3 = thread_cpu_ns();
        for (std::size_t i = 0; i < kTimers100k; ++i) {
            uv_timer_start(&u.timers[i], uv_timer_100k_fired,
                           static_cast<std::uint64_t>(3'600'000 + timer_100k_timeout_ms(i)), 0);
        }
        state.counters["insert_warm_ns"] =
            static_cast<double>(thread_cpu_ns() - c3) / static_cast<double>(kTimers100k);
        for (std::size_t i = kTimers100k; i-- > 0;) {
            uv_timer_stop(&u.timers[i]);
        }
        for (auto& t : u.timers) {
            uv_close(reinterpret_cast<uv_handle_t*>(&t), nullptr);
        }
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
}
#endif

// --- timer_rearm -------------------------------------------------------------------------
// One timer re-armed from its own callback for a time <= the pass's `now`, so it runs again
// in the same timer pass without a loop iteration; one benchmark iteration is one pass of
// kRearm re-arms (the last callback does not re-arm).

constexpr std::size_t kRearm = 10'000;

struct AioRearm {
    aio::Timer timer;
    std::uint64_t runs = 0;
    std::uint64_t target = 0;
};

void timer_rearm_aio_impl(benchmark::State& state, bool glib)
{
    MainContext m;
    aio::ContextPtr ctx = aio::Context::create("bench");
    if (glib) {
        ctx->attach(m.mc);
    }
    AioRearm r;
    r.timer = aio::Timer(
        *ctx, aio::Clock::realtime,
        [p = &r] {
            if (++p->runs < p->target) {
                p->timer.arm_at(0);  // the past: due in this very pass
            }
        },
        aio::Scale::ns, "rearm");
    // Warm-up pass outside the counted loop: the list's heap array gets its first slot.
    r.target = 1;
    r.timer.arm_at(0);
    while (r.runs < r.target) {
        if (glib) {
            g_main_context_iteration(m.mc, FALSE);
        } else {
            ctx->poll(false);
        }
    }
    const std::uint64_t r0 = r.runs;
    std::uint64_t passes_short = 0;
    const std::uint64_t a0 = t_allocs;
    for (auto _ : state) {
        r.target += kRearm;
        r.timer.arm_at(0);
        if (glib) {
            g_main_context_iteration(m.mc, FALSE);
        } else {
            ctx->poll(false);
        }
        if (r.runs != r.target) {
            ++passes_short;  // some re-arms did not run in the same pass
            while (r.runs < r.target) {
                if (glib) {
                    g_main_context_iteration(m.mc, FALSE);
                } else {
                    ctx->poll(false);
                }
            }
        }
    }
    const std::uint64_t ops = iters(state) * kRearm;
    finish(state, t_allocs - a0, ops, r.runs - r0, "allocs_per_rearm");
    state.counters["short_passes"] = static_cast<double>(passes_short);
    state.SetItemsProcessed(static_cast<std::int64_t>(ops));
    r.timer.reset();
    if (glib) {
        detach(ctx);
    }
}

void timer_rearm_aio(benchmark::State& state) { timer_rearm_aio_impl(state, false); }
void timer_rearm_aio_glib(benchmark::State& state) { timer_rearm_aio_impl(state, true); }

#if AIO_BENCH_HAVE_UV
struct UvRearm {
    uv_timer_t timer{};
    std::uint64_t runs = 0;
    std::uint64_t target = 0;
};

void uv_rearm_fired(uv_timer_t* h)
{
    auto* r = static_cast<UvRearm*>(h->data);
    if (++r->runs < r->target) {
        uv_timer_start(h, uv_rearm_fired, 0, 0);  // libuv 1.44 re-runs it in this pass
    }
}

void timer_rearm_uv(benchmark::State& state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    UvRearm r;
    uv_timer_init(&loop, &r.timer);
    r.timer.data = &r;
    std::uint64_t passes_short = 0;
    for (auto _ : state) {
        r.target += kRearm;
        uv_timer_start(&r.timer, uv_rearm_fired, 0, 0);
        uv_run(&loop, UV_RUN_NOWAIT);
        if (r.runs != r.target) {
            ++passes_short;
            while (r.runs < r.target) {
                uv_run(&loop, UV_RUN_NOWAIT);
            }
        }
    }
    const std::uint64_t ops = iters(state) * kRearm;
    if (r.runs != ops) {
        state.SkipWithError("libuv ran a different number of re-arms");
    }
    state.counters["short_passes"] = static_cast<double>(passes_short);
    state.SetItemsProcessed(static_cast<std::int64_t>(ops));
    uv_close(reinterpret_cast<uv_handle_t*>(&r.timer), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}
#endif

// --- timer_250us_glib ----------------------------------------------------------------------
// A periodic timer for kPeriodicRunNs: aio/aio_glib re-arm from the callback for the fire
// time + 250 µs (GLib's own rule, so each fire is an independent wake-up: a stall of the
// loop makes one late sample, not a burst of catch-up fires); glib is g_timeout_add(1 ms)
// at its best (GLib re-arms at dispatch time + 1 ms). Lateness is fire time
// (CLOCK_MONOTONIC read first thing in the callback) minus the deadline the implementation
// was working to.

constexpr std::int64_t kPeriodNs = 250'000;
constexpr std::int64_t kPeriodicRunNs = 2'000'000'000;

struct Periodic {
    std::vector<std::int64_t> late_ns;  // one sample per fire, reserved up front
    std::uint64_t early = 0;
    std::int64_t start_ns = 0;
    bool done = false;
    GMainLoop* loop = nullptr;  // quit when done (glib-driven impls)

    Periodic() { late_ns.reserve(static_cast<std::size_t>(2 * kPeriodicRunNs / kPeriodNs) + 1024); }

    // Records one fire at `now`; returns whether the run continues.
    bool fire(std::int64_t deadline_ns, std::int64_t now) noexcept
    {
        const std::int64_t late = now - deadline_ns;
        if (late < 0) {
            ++early;
        }
        late_ns.push_back(late);
        if (now - start_ns >= kPeriodicRunNs) {
            done = true;
            if (loop != nullptr) {
                g_main_loop_quit(loop);
            }
            return false;
        }
        return true;
    }
};

double percentile_us(std::vector<std::int64_t> v, double pct)
{
    if (v.empty()) {
        return 0.0;
    }
    std::size_t k = static_cast<std::size_t>(pct / 100.0 * static_cast<double>(v.size()));
    if (k >= v.size()) {
        k = v.size() - 1;
    }
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return static_cast<double>(v[k]) * 1e-3;
}

void periodic_report(benchmark::State& state, const Periodic& p, std::int64_t cpu_ns,
                     std::int64_t wall_ns)
{
    state.SetIterationTime(static_cast<double>(wall_ns) * 1e-9);
    const auto& v = p.late_ns;
    state.counters["fires"] = static_cast<double>(v.size());
    state.counters["late_p50_us"] = percentile_us(v, 50);
    state.counters["late_p99_us"] = percentile_us(v, 99);
    state.counters["late_max_us"] =
        v.empty() ? 0.0 : static_cast<double>(*std::max_element(v.begin(), v.end())) * 1e-3;
    state.counters["early_fires"] = static_cast<double>(p.early);
    // Fires more than 500 µs late: isolated preemptions vs a systematic fallback to a
    // whole-ms wake-up.
    state.counters["late_over_500us"] = static_cast<double>(
        std::count_if(v.begin(), v.end(), [](std::int64_t l) { return l > 500'000; }));
    state.counters["cpu_us_per_fire"] =
        v.empty() ? 0.0 : static_cast<double>(cpu_ns) * 1e-3 / static_cast<double>(v.size());
}

void timer_250us_aio_impl(benchmark::State& state, bool glib)
{
    for (auto _ : state) {
        MainContext m;
        aio::ContextPtr ctx = aio::Context::create("bench");
        GMainLoop* loop = nullptr;
        if (glib) {
            ctx->attach(m.mc);
            loop = g_main_loop_new(m.mc, FALSE);
        }
        Periodic p;
        p.loop = loop;
        std::int64_t deadline = 0;
        aio::Timer t;
        t = aio::Timer(
            *ctx, aio::Clock::realtime,
            [&p, &deadline, &t] {
                const std::int64_t now = mono_ns();
                if (p.fire(deadline, now)) {
                    deadline = now + kPeriodNs;  // GLib's rule: fire time + period
                    t.arm_at(deadline);
                }
            },
            aio::Scale::ns, "periodic");
        p.start_ns = mono_ns();
        const std::int64_t c0 = thread_cpu_ns();
        deadline = p.start_ns + kPeriodNs;
        t.arm_at(deadline);
        if (glib) {
            g_main_loop_run(loop);
        } else {
            while (!p.done) {
                ctx->poll(true);
            }
        }
        periodic_report(state, p, thread_cpu_ns() - c0, mono_ns() - p.start_ns);
        t.reset();
        if (glib) {
            g_main_loop_unref(loop);
            detach(ctx);
        }
    }
}

void timer_250us_glib_aio(benchmark::State& state) { timer_250us_aio_impl(state, false); }
void timer_250us_glib_aio_glib(benchmark::State& state) { timer_250us_aio_impl(state, true); }

struct GlibPeriodic {
    Periodic p;
    GSource* source = nullptr;
};

gboolean glib_periodic_fired(gpointer data)
{
    auto* g = static_cast<GlibPeriodic*>(data);
    // Still the expiration GLib dispatched us for: g_timeout_dispatch re-arms after we return.
    const std::int64_t now = mono_ns();
    return g->p.fire(g_source_get_ready_time(g->source) * 1000, now) ? G_SOURCE_CONTINUE
                                                                     : G_SOURCE_REMOVE;
}

void timer_250us_glib_glib(benchmark::State& state)
{
    for (auto _ : state) {
        MainContext m;
        GMainLoop* loop = g_main_loop_new(m.mc, FALSE);
        GlibPeriodic g;
        g.p.loop = loop;
        g.p.start_ns = mono_ns();
        const std::int64_t c0 = thread_cpu_ns();
        g.source = g_timeout_source_new(1);  // g_timeout_add(1, ...) on a private context
        g_source_set_callback(g.source, glib_periodic_fired, &g, nullptr);
        g_source_attach(g.source, m.mc);
        g_main_loop_run(loop);
        periodic_report(state, g.p, thread_cpu_ns() - c0, mono_ns() - g.p.start_ns);
        g_source_destroy(g.source);
        g_source_unref(g.source);
        g_main_loop_unref(loop);
    }
}

// The kernel floor: a blocking timerfd (absolute CLOCK_MONOTONIC, no timer slack) re-armed
// for the fire time + 250 µs, in a bare loop: the best wake-up this machine offers.
void timer_250us_glib_floor(benchmark::State& state)
{
    for (auto _ : state) {
        const int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
        if (tfd < 0) {
            state.SkipWithError("timerfd_create failed");
            return;
        }
        Periodic p;
        p.start_ns = mono_ns();
        const std::int64_t c0 = thread_cpu_ns();
        std::int64_t deadline = p.start_ns + kPeriodNs;
        for (;;) {
            itimerspec its{};
            its.it_value.tv_sec = static_cast<time_t>(deadline / 1'000'000'000);
            its.it_value.tv_nsec = static_cast<long>(deadline % 1'000'000'000);
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, nullptr);
            std::uint64_t expirations = 0;
            if (read(tfd, &expirations, sizeof expirations) != static_cast<ssize_t>(sizeof expirations)) {
                continue;  // EINTR: wait again for the same deadline
            }
            const std::int64_t now = mono_ns();
            if (!p.fire(deadline, now)) {
                break;
            }
            deadline = now + kPeriodNs;
        }
        periodic_report(state, p, thread_cpu_ns() - c0, mono_ns() - p.start_ns);
        close(tfd);
    }
}

void register_all()
{
    using benchmark::RegisterBenchmark;
    RegisterBenchmark("bh_oneshot_chain/aio", bh_oneshot_chain_aio);
    RegisterBenchmark("bh_oneshot_chain/aio_glib", bh_oneshot_chain_aio_glib);
    RegisterBenchmark("bh_oneshot_chain/glib", bh_oneshot_chain_glib);
#if AIO_BENCH_HAVE_UV
    RegisterBenchmark("bh_oneshot_chain/uv", bh_oneshot_chain_uv);
#endif
    RegisterBenchmark("bh_oneshot_chain/floor", bh_oneshot_chain_floor);

    RegisterBenchmark("bh_batch_10k/aio", bh_batch_10k_aio);
    RegisterBenchmark("bh_batch_10k/aio_glib", bh_batch_10k_aio_glib);
    RegisterBenchmark("bh_batch_10k/glib", bh_batch_10k_glib);

    RegisterBenchmark("glib_iteration/aio_glib", glib_iteration_aio_glib)
        ->Arg(0)
        ->Arg(1000)
        ->Arg(10000);
    RegisterBenchmark("glib_iteration/floor", glib_iteration_floor)->Arg(0);
    RegisterBenchmark("glib_iteration/glib", glib_iteration_glib)->Arg(0)->Arg(1000)->Arg(10000);

    RegisterBenchmark("fd_1000_one_ready/aio", fd_1000_one_ready_aio);
    RegisterBenchmark("fd_1000_one_ready/aio_glib", fd_1000_one_ready_aio_glib);
    RegisterBenchmark("fd_1000_one_ready/glib", fd_1000_one_ready_glib);
#if AIO_BENCH_HAVE_UV
    RegisterBenchmark("fd_1000_one_ready/uv", fd_1000_one_ready_uv);
#endif
    RegisterBenchmark("fd_1000_one_ready/floor", fd_1000_one_ready_floor);

    // Timer rows run once per repetition (bench/run.sh asks for 5) and report counters.
    for (auto* b : {RegisterBenchmark("timer_100k/aio", timer_100k_aio),
                    RegisterBenchmark("timer_100k/aio_glib", timer_100k_aio_glib),
                    RegisterBenchmark("timer_100k/glib", timer_100k_glib),
#if AIO_BENCH_HAVE_UV
                    RegisterBenchmark("timer_100k/uv", timer_100k_uv),
#endif
                    RegisterBenchmark("timer_250us_glib/aio", timer_250us_glib_aio),
                    RegisterBenchmark("timer_250us_glib/aio_glib", timer_250us_glib_aio_glib),
                    RegisterBenchmark("timer_250us_glib/glib", timer_250us_glib_glib),
                    RegisterBenchmark("timer_250us_glib/floor", timer_250us_glib_floor)}) {
        b->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
    }

    RegisterBenchmark("timer_rearm/aio", timer_rearm_aio);
    RegisterBenchmark("timer_rearm/aio_glib", timer_rearm_aio_glib);
#if AIO_BENCH_HAVE_UV
    RegisterBenchmark("timer_rearm/uv", timer_rearm_uv);
#endif
}

// Raises the soft fd limit to the hard one (glib_iteration/*/10000 needs ~10k eventfds).
void raise_fd_limit() noexcept
{
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    if (rl.rlim_cur != rl.rlim_max) {
        rlimit want = rl;
        want.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) {
            rl = want;
        }
    }
    g_nofile = rl.rlim_cur;
}

}  // namespace

void register_mt();  // aio_bench_mt.cpp

int main(int argc, char** argv)
{
    setenv("UV_THREADPOOL_SIZE", "2", 0);  // match GThreadPool(max_threads=2)
    raise_fd_limit();
    register_all();
    register_mt();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
