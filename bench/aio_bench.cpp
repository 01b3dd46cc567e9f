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

#include <benchmark/benchmark.h>

#include <glib-unix.h>
#include <glib.h>

#if AIO_BENCH_HAVE_UV
#include <uv.h>
#endif

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <system_error>
#include <vector>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
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

int main(int argc, char** argv)
{
    raise_fd_limit();
    register_all();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
