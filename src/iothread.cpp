// SPDX-License-Identifier: LGPL-2.1-or-later
// IOThread: a thread running `while (running) poll(true)`, switching to a GMainLoop on a
// private GMainContext once someone asks for one.
#include <aio/iothread.hpp>

#include "context_impl.hpp"

#include <glib.h>

#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <system_error>

#include <pthread.h>
#include <sys/prctl.h>

namespace aio {

// Everything the thread touches lives here, shared with the IOThread object, so the
// thread can outlive the object when the last reference is dropped from inside it.
struct IOThread::State {
    ContextPtr ctx;
    std::string name;
    std::atomic<bool> running{true};   // cleared only in the thread (by the stop BH)
    std::mutex mutex;                  // guards the fields below
    std::condition_variable started_cv;
    bool started = false;
    GMainContext* gctx = nullptr;      // created on demand, owned here
    GMainLoop* loop = nullptr;
    bool run_gcontext = false;

    ~State()
    {
        if (loop != nullptr) {
            g_main_loop_unref(loop);
        }
        if (gctx != nullptr) {
            g_main_context_unref(gctx);  // destroys the attached context source
        }
    }
};

namespace {

void thread_main(std::shared_ptr<IOThread::State> st) noexcept
{
    char tname[16];
    std::snprintf(tname, sizeof tname, "IO %s", st->name.c_str());
    pthread_setname_np(pthread_self(), tname);
    // The kernel's default 50 us timer slack would make every timed wait of this loop
    // late by that much; an I/O thread wants its nanosecond deadlines.
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    ContextImpl* c = ContextImpl::from(st->ctx.get());
    ContextImpl::set_current(c);
    // Claim the context before create() returns, so waiters elsewhere never mistake
    // themselves for its home thread.
    c->home_tid_.store(ContextImpl::current_tid(), std::memory_order_relaxed);
    {
        std::lock_guard lk(st->mutex);
        st->started = true;
    }
    st->started_cv.notify_all();

    while (st->running.load(std::memory_order_acquire)) {
        st->ctx->poll(true);
        GMainContext* gctx = nullptr;
        GMainLoop* loop = nullptr;
        {
            std::lock_guard lk(st->mutex);
            if (st->run_gcontext) {
                gctx = st->gctx;
                loop = st->loop;
            }
        }
        if (loop != nullptr && st->running.load(std::memory_order_acquire)) {
            // From now on GLib drives the context through its GSource, on this thread.
            g_main_context_push_thread_default(gctx);
            g_main_loop_run(loop);
            g_main_context_pop_thread_default(gctx);
        }
    }
    ContextImpl::set_current(nullptr);
}

}  // namespace

std::shared_ptr<IOThread> IOThread::create(std::string_view name)
{
    std::shared_ptr<IOThread> t(new IOThread());  // NOLINT: private constructor
    t->name_ = name;
    t->ctx_ = Context::create(std::string(name) + " aio-context");
    t->ctx_->set_poll_params(32768);
    t->state_ = std::make_shared<State>();
    t->state_->ctx = t->ctx_;
    t->state_->name = t->name_;
    t->thread_ = std::thread(thread_main, t->state_);
    std::unique_lock lk(t->state_->mutex);
    t->state_->started_cv.wait(lk, [&] { return t->state_->started; });
    return t;
}

GMainContext* IOThread::g_main_context()
{
    std::lock_guard lk(state_->mutex);
    if (state_->gctx == nullptr) {
        state_->gctx = g_main_context_new();
        state_->loop = g_main_loop_new(state_->gctx, FALSE);
        ctx_->attach(state_->gctx);
    }
    if (!state_->run_gcontext) {
        state_->run_gcontext = true;
        ctx_->notify();  // end the current poll(true) so the thread switches to the loop
    }
    return state_->gctx;
}

void IOThread::stop()
{
    if (stopped_) {
        return;
    }
    stopped_ = true;
    if (!thread_.joinable()) {
        return;  // create() failed before the thread started: nothing to stop
    }
    if (ContextImpl::from(ctx_.get())->forked()) {
        // A forked child's copy: the thread runs in the parent only, so there is nothing
        // to ask or to wait for here. Joining would wait forever, and detaching names a
        // thread that does not exist in this process: leak the handle instead (the process
        // is a child that typically exits or execs soon).
        (void)std::make_unique<std::thread>(std::move(thread_)).release();
        return;
    }
    std::shared_ptr<State> st = state_;
    // A one-shot BH, not a flag plus notify(): everything scheduled before it runs first,
    // and the flag is changed by the thread itself, so no wake-up can be lost.
    ctx_->schedule(
        [st] {
            st->running.store(false, std::memory_order_release);
            std::lock_guard lk(st->mutex);
            if (st->loop != nullptr) {
                g_main_loop_quit(st->loop);
            }
        },
        "iothread-stop");
    if (std::this_thread::get_id() == thread_.get_id()) {
        thread_.detach();  // stopped from inside: the thread finishes by itself
    } else {
        thread_.join();
    }
}

bool IOThread::running() const noexcept
{
    return !stopped_ && state_->running.load(std::memory_order_acquire);
}

IOThread::~IOThread() { stop(); }

}  // namespace aio
