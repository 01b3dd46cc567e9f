// SPDX-License-Identifier: LGPL-2.1-or-later
// aio::IOThread: a context and the named thread that drives it (QEMU's IOThread).
//
// The thread runs `while (running) ctx.poll(true)`. Asking for g_main_context() gives
// the thread a private GMainContext, pushed as its thread default, with the context
// attached; the thread then runs a GMainLoop on it, so GLib sources (GIO, GDBus) can live
// in the I/O thread next to bottom halves, fd handlers and timers.
//
// Thread safety: every member may be called from any thread. stop() and the destructor
// called from the I/O thread itself (for example by a callback that drops the last
// reference) do not join: the thread finishes its current iteration and exits by itself.
#pragma once

#include <aio/context.hpp>
#include <aio/export.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <thread>

typedef struct _GMainContext GMainContext;  // NOLINT: GLib's own spelling

namespace aio {

class AIO_EXPORT IOThread {
public:
    // Starts the thread (named "IO <name>") and returns once it is running. The context
    // gets adaptive busy polling with a 32 µs window by default.
    // Throws std::system_error if the thread or the context cannot be created.
    static std::shared_ptr<IOThread> create(std::string_view name = "iothread");

    IOThread(const IOThread&) = delete;
    IOThread& operator=(const IOThread&) = delete;
    // Stops and joins (see stop()).
    ~IOThread();

    Context& context() const noexcept { return *ctx_; }
    const ContextPtr& context_ptr() const noexcept { return ctx_; }
    const std::string& name() const noexcept { return name_; }

    // The thread's private GMainContext, created on first call; from then on the thread
    // runs a GMainLoop on it. Owned by the IOThread.
    GMainContext* g_main_context();

    // Stops the thread through a one-shot BH, so every BH scheduled before stop() still
    // runs, then joins it. A second call is a no-op. Scheduling onto the context after
    // the thread exited is a lifecycle bug: the context aborts at finalization, naming
    // the BH.
    // In a process forked from the one that created the IOThread, stop() and the
    // destructor only forget the thread (it exists in the parent alone).
    void stop();
    bool running() const noexcept;
    std::thread::id thread_id() const noexcept { return thread_.get_id(); }

    struct State;  // shared with the thread; private

private:
    IOThread() = default;
    std::string name_;
    ContextPtr ctx_;
    std::shared_ptr<State> state_;
    std::thread thread_;
    bool stopped_ = false;  // guarded by the caller's exclusive access for stop()
};

}  // namespace aio
