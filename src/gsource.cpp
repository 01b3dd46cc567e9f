// SPDX-License-Identifier: LGPL-2.1-or-later
// The GSourceFuncs glue: the only file that GLib calls into. Every trampoline is
// noexcept: an exception escaping a callback terminates instead of unwinding through
// GLib's C frames.
//
// Beyond QEMU: GLib is handed one fd, the context's epoll fd, instead of one GPollFD per
// handler, so an iteration costs O(ready handlers), not O(registered).
#include "context_impl.hpp"

#include <glib-unix.h>

#include <ctime>

#include <sys/timerfd.h>
#include <unistd.h>

namespace aio {

namespace {

gint ns_to_ms_round_up(std::int64_t ns) noexcept
{
    if (ns < 0) {
        return -1;
    }
    std::int64_t ms = (ns + 999'999) / 1'000'000;  // never wake early
    return ms > G_MAXINT ? G_MAXINT : static_cast<gint>(ms);
}

gboolean gsource_prepare(GSource* source, gint* timeout_ms) noexcept
{
    ContextImpl* c = ContextImpl::from(source);
    c->enter_driver("prepare");
    if (ContextImpl::get_current() == nullptr) {
        ContextImpl::set_current(c);  // the thread that drives us through GLib
    }
    // Bit 0 stays set until check() (or dispatch(), if GLib skips check because we
    // returned TRUE): a producer in between writes the eventfd GLib is about to poll.
    c->notify_me_.store(c->notify_me_.load(std::memory_order_relaxed) | 1,
                        std::memory_order_relaxed);
    // fence(C): publish bit 0 before reading `notified` and the BH list; pairs with
    // fence(A) in notify().
    std::atomic_thread_fence(std::memory_order_seq_cst);
    // A notify() that read notify_me before bit 0 was set skipped the eventfd write; it
    // set `notified` before its fence, so it is seen here (as poll()'s step 3 does). A
    // bare notify() carries no BH for compute_timeout() to find: without this check
    // GLib slept through it (found by `make soak`: Stress.CrossThreadFdHandlers-
    // GMainContext, once in ~46 TSan rounds). check()/dispatch() clear it.
    // A notify alone is not work: GLib then polls without sleeping and check() accepts
    // it, so the iteration returns at once and FALSE (as poll(true) returns false).
    const bool notified = c->notified_.load(std::memory_order_relaxed);
    const std::int64_t timeout = c->compute_timeout();
    // Rounded up: GLib's fallback wake-up is never early. The timerfd, when we have one,
    // wakes GLib through the epoll fd at the exact ns instead.
    *timeout_ms = notified ? 0 : ns_to_ms_round_up(timeout);
    if (timeout != 0) {
        c->arm_glib_timerfd();
    }
    c->leave_driver();
    return timeout == 0;
}

// Leaves the prepare..check window: from here on nobody will sleep without re-running
// prepare, so producers can skip the eventfd write.
void clear_glib_bit(ContextImpl* c) noexcept
{
    // release: the timeout computation is complete before producers may skip the write.
    c->notify_me_.store(c->notify_me_.load(std::memory_order_relaxed) & ~1u,
                        std::memory_order_release);
    c->notify_accept();
}

bool fds_ready(ContextImpl* c) noexcept
{
    return c->epoll_tag_ != nullptr &&
           g_source_query_unix_fd(c->source_, c->epoll_tag_) != 0;
}

gboolean gsource_check(GSource* source) noexcept
{
    ContextImpl* c = ContextImpl::from(source);
    c->enter_driver("check");
    clear_glib_bit(c);
    const bool ready =
        c->bh_any_scheduled() || fds_ready(c) || c->tlg_.deadline_ns() == 0;
    c->leave_driver();
    return ready;
}

gboolean gsource_dispatch(GSource* source, GSourceFunc callback, gpointer) noexcept
{
    ContextImpl* c = ContextImpl::from(source);
    if (callback != nullptr) {
        c->fatal("g_source_set_callback() is not supported on an aio::Context source");
    }
    // No extra reference here: GLib holds one on a source while dispatching it.
    c->enter_driver("dispatch");
    // Beyond QEMU: when prepare returned TRUE GLib skipped check(); close the window here
    // anyway, so BHs scheduled by the callbacks below do not each write the eventfd.
    clear_glib_bit(c);

    ContextImpl::bump(c->stats_.iterations);
    c->list_lock_.inc();
    bool fds = fds_ready(c);
    bool progress = c->bh_poll();
    if (fds) {
        ReadyList ready;
        c->fdmon_epoll_harvest(ready, 0);
        progress |= c->dispatch_ready(ready);
    }
    c->reap_deleted_handlers();
    c->list_lock_.dec();
    if (c->tlg_.run()) {
        ContextImpl::bump(c->stats_.timer_runs);
        progress = true;
    }
    (void)progress;  // GLib has no use for it: a dispatched source is a dispatched source
    c->leave_driver();
    return G_SOURCE_CONTINUE;
}

void gsource_finalize(GSource* source) noexcept
{
    auto* cs = reinterpret_cast<ContextSource*>(source);
    tsan_acquire(cs->impl);  // pairs with unref_source() on whichever thread dropped a ref
    std::unique_ptr<ContextImpl>{std::exchange(cs->impl, nullptr)};
}

GSourceFuncs context_source_funcs = {
    gsource_prepare, gsource_check, gsource_dispatch, gsource_finalize, nullptr, nullptr,
};

}  // namespace

void ContextImpl::ensure_glib_mode() noexcept
{
    std::call_once(glib_once_, [this] {
        epoll_tag_ = g_source_add_unix_fd(source_, epfd_, G_IO_IN);
        int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (tfd >= 0) {
            try {
                set_fd_handler(
                    tfd,
                    FdHandlers{.read = [tfd] {
                        std::uint64_t expirations;
                        (void)!read(tfd, &expirations, sizeof expirations);
                    }},
                    false, true);
                timerfd_ = tfd;
            } catch (...) {
                close(tfd);  // keep GLib's whole-ms timeout as the only wake-up
            }
        }
        glib_mode_.store(true, std::memory_order_relaxed);
    });
}

// Arms the timerfd to the earliest timer deadline as absolute CLOCK_MONOTONIC time.
// A syscall only when that deadline changed since the last prepare.
void ContextImpl::arm_glib_timerfd() noexcept
{
    if (timerfd_ < 0) {
        return;
    }
    const std::int64_t abs = tlg_.earliest_monotonic_ns();
    if (abs == timerfd_armed_) {
        return;
    }
    itimerspec its{};
    if (abs > 0) {
        its.it_value.tv_sec = static_cast<time_t>(abs / 1'000'000'000);
        its.it_value.tv_nsec = static_cast<long>(abs % 1'000'000'000);
    }
    // abs <= 0 disarms (it_value zero). Absolute time, so a late prepare never fires late.
    timerfd_settime(timerfd_, TFD_TIMER_ABSTIME, &its, nullptr);
    timerfd_armed_ = abs;
}

ContextPtr Context::create(std::string_view name)
{
    auto impl = std::make_unique<ContextImpl>(name);
    GSource* src = g_source_new(&context_source_funcs, sizeof(ContextSource));
    auto* cs = reinterpret_cast<ContextSource*>(src);
    cs->impl = impl.release();
    cs->impl->source_ = src;
    g_source_set_can_recurse(src, TRUE);
    g_source_set_name(src, std::string(name).c_str());
    ContextPtr p(cs->impl);
    g_source_unref(src);  // p holds the only reference now
    return p;
}

GSource* Context::gsource() noexcept
{
    auto* c = ContextImpl::from(this);
    c->ensure_glib_mode();
    return c->source_;
}

unsigned Context::attach(GMainContext* main_context) noexcept
{
    auto* c = ContextImpl::from(this);
    c->check_not_forked("attach");
    GSource* src = gsource();
    // GLib only logs a CRITICAL and returns 0 here; the caller would then wait on a
    // GMainContext that never runs us.
    if (GMainContext* cur = g_source_get_context(src); cur != nullptr) {
        c->fatal("attach(%p): already attached to GMainContext %p (a context can be "
                 "attached once, to one GMainContext), aborting",
                 static_cast<void*>(main_context), static_cast<void*>(cur));
    }
    return g_source_attach(src, main_context);
}

}  // namespace aio
