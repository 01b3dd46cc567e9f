// SPDX-License-Identifier: LGPL-2.1-or-later
// block/aio.h, qemu/main-loop.h, block/aio-wait.h and iothread.h: translations onto
// aio::Context, aio::IOThread and the wait helpers.
#include "shim.hpp"

#include <aio/iothread.hpp>
#include <aio/wait.hpp>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <exception>
#include <memory>
#include <new>
#include <stdexcept>

using aio::qemu::c_ctx;
using aio::qemu::cxx;
using aio::qemu::fatal;
using aio::qemu::fatal_exception;
using aio::qemu::impl;

namespace {

// The main AioContext (qemu_init_main_loop). Never freed, as in QEMU.
std::atomic<aio::Context*> g_main_ctx{nullptr};

aio::BhNode* bh_node(QEMUBH* bh) noexcept { return reinterpret_cast<aio::BhNode*>(bh); }

aio::Context* main_ctx_or_die(const char* func) noexcept
{
    aio::Context* c = g_main_ctx.load(std::memory_order_acquire);
    if (c == nullptr) {
        fatal(func, "no main AioContext: call qemu_init_main_loop() first");
    }
    return c;
}

}  // namespace

// --- lifecycle -----------------------------------------------------------------------

AioContext* aio_context_new(Error** errp)
{
    try {
        aio::ContextPtr p = aio::Context::create("aio-context");
        p->ref();  // the caller's reference; p's own is dropped on return
        return c_ctx(p.get());
    } catch (const std::exception& e) {
        error_setg(errp, "Failed to initialize AioContext: %s", e.what());
        return nullptr;
    }
}

void aio_context_ref(AioContext* ctx) { cxx(ctx)->ref(); }
void aio_context_unref(AioContext* ctx) { cxx(ctx)->unref(); }
void aio_context_acquire(AioContext* ctx) { cxx(ctx)->acquire(); }
void aio_context_release(AioContext* ctx) { cxx(ctx)->release(); }

// --- bottom halves -------------------------------------------------------------------

void aio_bh_schedule_oneshot_full(AioContext* ctx, QEMUBHFunc* cb, void* opaque,
                                  const char* name)
{
    if (cb == nullptr) {
        fatal(__func__, "NULL callback (bottom half '%s')", name != nullptr ? name : "?");
    }
    try {
        cxx(ctx)->schedule([cb, opaque] { cb(opaque); }, name != nullptr ? name : "oneshot");
    } catch (...) {
        fatal_exception(__func__);
    }
}

QEMUBH* aio_bh_new_full(AioContext* ctx, QEMUBHFunc* cb, void* opaque, const char* name)
{
    if (cb == nullptr) {
        fatal(__func__, "NULL callback (bottom half '%s')", name != nullptr ? name : "?");
    }
    try {
        // Straight onto the core's node, with no context reference: as in QEMU, a QEMUBH
        // does not keep its context alive, and a context finalized with one still
        // scheduled (not deleted) aborts naming it.
        return reinterpret_cast<QEMUBH*>(
            impl(ctx)->new_bh([cb, opaque] { cb(opaque); }, name, 0));
    } catch (...) {
        fatal_exception(__func__);
    }
}

void qemu_bh_schedule(QEMUBH* bh) { aio::ContextImpl::bh_enqueue(bh_node(bh), aio::kBhScheduled); }

void qemu_bh_schedule_idle(QEMUBH* bh)
{
    aio::ContextImpl::bh_enqueue(bh_node(bh), aio::kBhScheduled | aio::kBhIdle);
}

void qemu_bh_cancel(QEMUBH* bh)
{
    // What aio::BottomHalf::cancel() does: a full RMW, so a consumer that cancels and then
    // re-reads shared state cannot have that read hoisted above the cancel.
    bh_node(bh)->flags.fetch_and(~aio::kBhScheduled, std::memory_order_seq_cst);
}

void qemu_bh_delete(QEMUBH* bh)
{
    if (bh != nullptr) {
        aio::ContextImpl::bh_enqueue(bh_node(bh), aio::kBhDeleted);  // the loop frees it
    }
}

// --- driving the loop ------------------------------------------------------------------

void aio_notify(AioContext* ctx) { cxx(ctx)->notify(); }

bool aio_poll(AioContext* ctx, bool blocking)
{
    try {
        return cxx(ctx)->poll(blocking);
    } catch (...) {
        fatal_exception(__func__);
    }
}

int64_t aio_compute_timeout(AioContext* ctx) { return cxx(ctx)->compute_timeout(); }

GSource* aio_get_g_source(AioContext* ctx)
{
    GSource* src = cxx(ctx)->gsource();  // switches the context to GLib mode
    g_source_ref(src);
    return src;
}

// --- fd handlers and event notifiers ---------------------------------------------------

void aio_set_fd_handler(AioContext* ctx, int fd, bool is_external, IOHandler* io_read,
                        IOHandler* io_write, AioPollFn* io_poll, IOHandler* io_poll_ready,
                        void* opaque)
{
    if (io_poll != nullptr && io_poll_ready == nullptr) {
        io_poll = nullptr;  // QEMU drops a poll callback that has no poll_ready
    }
    aio::Context* c = cxx(ctx);
    if (io_read == nullptr && io_write == nullptr && io_poll == nullptr) {
        c->clear_fd_handler(fd);
        return;
    }
    try {
        aio::FdHandlers h;
        if (io_read != nullptr) {
            h.read = [io_read, opaque] { io_read(opaque); };
        }
        if (io_write != nullptr) {
            h.write = [io_write, opaque] { io_write(opaque); };
        }
        if (io_poll != nullptr) {
            h.poll = [io_poll, opaque] { return io_poll(opaque); };
            h.poll_ready = [io_poll_ready, opaque] { io_poll_ready(opaque); };
        }
        c->set_fd_handler(fd, std::move(h), is_external);
    } catch (const std::system_error& e) {
        // QEMU's signature has no way to fail; say why nothing was registered.
        std::fprintf(stderr, "aio_set_fd_handler: %s\n", e.what());
    } catch (...) {
        fatal_exception(__func__);
    }
}

void aio_set_event_notifier(AioContext* ctx, EventNotifier* notifier, bool is_external,
                            EventNotifierHandler* io_read, AioPollFn* io_poll,
                            EventNotifierHandler* io_poll_ready)
{
    if (io_poll != nullptr && io_poll_ready == nullptr) {
        io_poll = nullptr;
    }
    aio::Context* c = cxx(ctx);
    const int fd = event_notifier_get_fd(notifier);
    if (io_read == nullptr && io_poll == nullptr) {
        c->clear_fd_handler(fd);
        return;
    }
    try {
        aio::FdHandlers h;
        if (io_read != nullptr) {
            h.read = [io_read, notifier] { io_read(notifier); };
        }
        if (io_poll != nullptr) {
            h.poll = [io_poll, notifier] { return io_poll(notifier); };
            h.poll_ready = [io_poll_ready, notifier] { io_poll_ready(notifier); };
        }
        c->set_fd_handler(fd, std::move(h), is_external);
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "aio_set_event_notifier: %s\n", e.what());
    } catch (...) {
        fatal_exception(__func__);
    }
}

void aio_disable_external(AioContext* ctx) { cxx(ctx)->disable_external(); }
void aio_enable_external(AioContext* ctx) { cxx(ctx)->enable_external(); }
bool aio_external_disabled(AioContext* ctx) { return cxx(ctx)->external_disabled(); }

// --- thread pool, parameters -------------------------------------------------------------

struct ThreadPool* aio_get_thread_pool(AioContext* ctx)
{
    try {
        return reinterpret_cast<struct ThreadPool*>(&cxx(ctx)->thread_pool());
    } catch (...) {
        fatal_exception(__func__);
    }
}

void aio_context_set_poll_params(AioContext* ctx, int64_t max_ns, int64_t grow,
                                 int64_t shrink, Error** errp)
{
    try {
        cxx(ctx)->set_poll_params(max_ns, grow, shrink);
    } catch (const std::invalid_argument& e) {
        error_setg(errp, "%s", e.what());
    }
}

void aio_context_set_aio_params(AioContext*, int64_t, Error**) {}

void aio_context_set_thread_pool_params(AioContext* ctx, int64_t min, int64_t max,
                                        Error** errp)
{
    if (min < 0 || min > max || max <= 0 || max > INT_MAX) {
        error_setg(errp, "bad thread-pool-min/thread-pool-max values");
        return;
    }
    try {
        cxx(ctx)->thread_pool().set_limits(static_cast<int>(min), static_cast<int>(max));
    } catch (const std::exception& e) {
        error_setg(errp, "%s", e.what());
    }
}

// --- the current thread's context, the main loop ------------------------------------------

AioContext* qemu_get_current_aio_context(void) { return c_ctx(aio::Context::current()); }

void qemu_set_current_aio_context(AioContext* ctx)
{
    aio::ContextImpl* cur = aio::ContextImpl::get_current();
    if (cur != nullptr && cur != impl(ctx)) {
        fatal(__func__, "this thread already has a current AioContext ('%s')",
              cur->name().c_str());
    }
    aio::ContextImpl::set_current(impl(ctx));
}

int qemu_init_main_loop(Error** errp)
{
    if (g_main_ctx.load(std::memory_order_acquire) != nullptr) {
        return 0;
    }
    AioContext* ctx = aio_context_new(errp);
    if (ctx == nullptr) {
        return -EMFILE;
    }
    qemu_set_current_aio_context(ctx);
    GSource* src = aio_get_g_source(ctx);
    g_source_set_name(src, "aio-context");
    g_source_attach(src, nullptr);
    g_source_unref(src);
    for (int i = 0; i < QEMU_CLOCK_MAX; ++i) {
        main_loop_tlg.tl[i] = reinterpret_cast<QEMUTimerList*>(
            &impl(ctx)->tlg_.list(static_cast<aio::Clock>(i)));
    }
    g_main_ctx.store(cxx(ctx), std::memory_order_release);
    return 0;
}

AioContext* qemu_get_aio_context(void)
{
    return c_ctx(g_main_ctx.load(std::memory_order_acquire));
}

void qemu_notify_event(void)
{
    if (aio::Context* c = g_main_ctx.load(std::memory_order_acquire)) {
        c->notify();
    }
}

QEMUBH* qemu_bh_new_full(QEMUBHFunc* cb, void* opaque, const char* name)
{
    return aio_bh_new_full(c_ctx(main_ctx_or_die(__func__)), cb, opaque, name);
}

// --- AIO_WAIT_WHILE ---------------------------------------------------------------------

namespace {

using WaitScope = aio::detail::WaitScope;
static_assert(sizeof(WaitScope) <= sizeof(AioWaitScope_::impl_));
static_assert(alignof(WaitScope) <= alignof(AioWaitScope_));

}  // namespace

AioContext* aio_wait_scope_begin_(AioWaitScope_* scope, AioContext* ctx)
{
    aio::Context* target = ctx != nullptr ? cxx(ctx) : aio::Context::current();
    if (target == nullptr) {
        target = main_ctx_or_die("AIO_WAIT_WHILE");
    }
    try {
        aio::Context& poll_ctx = aio::detail::waiting_context(*target);
        // Counted as a waiter before the caller first reads its condition.
        new (static_cast<void*>(scope->impl_.bytes_)) WaitScope(poll_ctx);
        return c_ctx(&poll_ctx);
    } catch (...) {
        fatal_exception("AIO_WAIT_WHILE");
    }
}

void aio_wait_scope_end_(AioWaitScope_* scope)
{
    std::launder(reinterpret_cast<WaitScope*>(scope->impl_.bytes_))->~WaitScope();
}

void aio_wait_kick(void) { aio::kick(); }

void aio_wait_bh_oneshot(AioContext* ctx, QEMUBHFunc* cb, void* opaque)
{
    try {
        aio::run_in(*cxx(ctx), [cb, opaque] { cb(opaque); });
    } catch (...) {
        fatal_exception(__func__);
    }
}

// --- iothread.h ---------------------------------------------------------------------------

struct IOThread {
    std::shared_ptr<aio::IOThread> thread;
};

IOThread* iothread_new(void)
{
    try {
        return new IOThread{aio::IOThread::create("iothread")};
    } catch (...) {
        fatal_exception(__func__);
    }
}

void iothread_join(IOThread* iothread)
{
    iothread->thread->stop();
    delete iothread;  // drops the thread's context reference
}

AioContext* iothread_get_aio_context(IOThread* iothread)
{
    return c_ctx(&iothread->thread->context());
}

GMainContext* iothread_get_g_main_context(IOThread* iothread)
{
    try {
        return iothread->thread->g_main_context();
    } catch (...) {
        fatal_exception(__func__);
    }
}
