// SPDX-License-Identifier: LGPL-2.1-or-later
// loop-tour: a terminal tour of aio::Context driven by a GLib main loop.
//
// An aio::Context is attached to GLib's default GMainContext and a GMainLoop runs it.
// Four worker threads hand work to the loop thread, each in its own way:
//   workers 1 and 2  schedule one-shot bottom halves (ctx->schedule)
//   worker 3         sets an aio::EventNotifier watched with set_event_notifier
//   worker 4         writes lines into a pipe whose read end has an fd handler
// Every line after the header is printed by the loop thread, from the callback, so the
// output is the order in which things ran. A GLib timeout quits the loop after 3 s; then
// the workers are stopped and joined, the handlers cleared, and the program exits 0.
#include <aio/context.hpp>
#include <aio/event_notifier.hpp>

#include <glib.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Tour {
    Clock::time_point t0 = Clock::now();
    GMainLoop* loop = nullptr;
    aio::ContextPtr ctx;
    std::thread::id loop_thread = std::this_thread::get_id();

    // Loop-thread counters.
    int bhs = 0;
    int wakeups = 0;
    int echoes = 0;
    int off_thread = 0;  // callbacks that ran outside the loop thread (should stay 0)

    // Workers wait on this so that quitting interrupts them at once.
    std::mutex mutex;
    std::condition_variable cv;
    bool stopping = false;

    aio::EventNotifier notifier;
    int pipe_r = -1;
    int pipe_w = -1;
    std::string pipe_buf;

    double since_start(Clock::time_point t = Clock::now()) const
    {
        return std::chrono::duration<double>(t - t0).count();
    }

    // One line of output, stamped with the time since start.
    __attribute__((format(printf, 3, 4))) void say(const char* tag, const char* fmt, ...)
    {
        if (std::this_thread::get_id() != loop_thread) {
            ++off_thread;
        }
        std::printf("%7.3f s  %-10s ", since_start(), tag);
        va_list ap;
        va_start(ap, fmt);
        std::vprintf(fmt, ap);
        va_end(ap);
        std::putchar('\n');
    }

    // Sleeps until `at` after start; false if the tour is stopping.
    bool wait_until(std::chrono::milliseconds at)
    {
        std::unique_lock lk(mutex);
        return !cv.wait_until(lk, t0 + at, [this] { return stopping; });
    }
};

// Workers 1 and 2: one-shot bottom halves, each carrying its message and send time.
void bh_worker(Tour* tour, int id, std::chrono::milliseconds first, std::chrono::milliseconds every)
{
    static const char* const kWords[] = {"hello", "how is the loop?", "still here", "bye"};
    constexpr int kCount = 4;
    for (int k = 1; k <= kCount; ++k) {
        if (!tour->wait_until(first + (k - 1) * every)) {
            return;
        }
        const Clock::time_point sent = Clock::now();
        tour->ctx->schedule(
            [tour, id, k, sent] {
                ++tour->bhs;
                const double lag_us = std::chrono::duration<double, std::micro>(Clock::now() - sent).count();
                tour->say("[bh]", "from worker %d: message %d of %d, \"%s\" (ran %.0f us after schedule)",
                          id, k, kCount, kWords[k - 1], lag_us);
            },
            id == 1 ? "tour-worker-1" : "tour-worker-2");
    }
}

// Worker 3: sets the notifier three times.
void notifier_worker(Tour* tour)
{
    const std::chrono::milliseconds at[] = {600ms, 1500ms, 2400ms};
    for (int k = 0; k < 3; ++k) {
        if (!tour->wait_until(at[k])) {
            return;
        }
        tour->notifier.set();
    }
}

// Worker 4: writes lines into the pipe; the loop's fd handler echoes them.
void pipe_worker(Tour* tour)
{
    const char* const lines[] = {"ping over a pipe\n", "partial li", "ne, completed later\n",
                                 "last words\n"};
    const std::chrono::milliseconds at[] = {900ms, 1800ms, 1850ms, 2600ms};
    for (int k = 0; k < 4; ++k) {
        if (!tour->wait_until(at[k])) {
            return;
        }
        const std::string s = lines[k];
        if (write(tour->pipe_w, s.data(), s.size()) < 0) {
            std::perror("loop-tour: write");
        }
    }
}

void on_notifier(Tour* tour)
{
    if (tour->notifier.test_and_clear()) {
        ++tour->wakeups;
        tour->say("[notifier]", "set by worker 3, handled by the loop (wake-up #%d)",
                  tour->wakeups);
    }
}

void on_pipe_readable(Tour* tour)
{
    char buf[256];
    ssize_t n;
    while ((n = read(tour->pipe_r, buf, sizeof(buf))) > 0) {
        tour->pipe_buf.append(buf, static_cast<std::size_t>(n));
    }
    std::size_t nl;
    while ((nl = tour->pipe_buf.find('\n')) != std::string::npos) {
        ++tour->echoes;
        tour->say("[fd]", "echo: \"%s\" (from worker 4, via fd %d)",
                  tour->pipe_buf.substr(0, nl).c_str(), tour->pipe_r);
        tour->pipe_buf.erase(0, nl + 1);
    }
    if (!tour->pipe_buf.empty()) {
        tour->say("[fd]", "(holding %zu bytes of an unfinished line)", tour->pipe_buf.size());
    }
}

gboolean on_quit(gpointer data)
{
    auto* tour = static_cast<Tour*>(data);
    tour->say("[main]", "3 s are up: quitting the main loop");
    g_main_loop_quit(tour->loop);
    return G_SOURCE_REMOVE;
}

}  // namespace

int main()
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);

    Tour tour;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        std::perror("loop-tour: pipe2");
        return 1;
    }
    tour.pipe_r = fds[0];
    tour.pipe_w = fds[1];
    if (fcntl(tour.pipe_r, F_SETFL, O_NONBLOCK) != 0) {
        std::perror("loop-tour: fcntl");
        return 1;
    }

    tour.loop = g_main_loop_new(nullptr, FALSE);
    tour.ctx = aio::Context::create("loop-tour");
    tour.ctx->attach(nullptr);  // GLib's default GMainContext; the loop below drives it
    tour.ctx->set_event_notifier(tour.notifier, aio::FdHandlers{.read = [&tour] { on_notifier(&tour); }});
    tour.ctx->set_fd_handler(tour.pipe_r, aio::FdHandlers{.read = [&tour] { on_pipe_readable(&tour); }});
    g_timeout_add(3000, on_quit, &tour);

    std::printf("loop-tour: a GMainLoop drives an aio::Context attached to it as a GSource.\n"
                "Worker threads hand work to the loop thread three ways: one-shot bottom\n"
                "halves [bh] (workers 1, 2), an EventNotifier [notifier] (worker 3) and a pipe\n"
                "with an fd handler [fd] (worker 4). Each line is printed by the loop thread\n"
                "as its callback runs, in order; times are seconds since start.\n"
                "----------------------------------------------------------------------------\n");
    tour.say("[main]", "loop thread running; 4 workers starting");

    std::vector<std::thread> workers;
    workers.emplace_back(bh_worker, &tour, 1, 100ms, 650ms);
    workers.emplace_back(bh_worker, &tour, 2, 300ms, 700ms);
    workers.emplace_back(notifier_worker, &tour);
    workers.emplace_back(pipe_worker, &tour);

    g_main_loop_run(tour.loop);

    {
        std::lock_guard lk(tour.mutex);
        tour.stopping = true;
    }
    tour.cv.notify_all();
    for (auto& t : workers) {
        t.join();
    }
    // Run whatever a worker handed over just before it stopped (a pending one-shot BH must
    // not outlive the context), then unregister and detach.
    while (g_main_context_iteration(nullptr, FALSE)) {
    }
    tour.ctx->clear_fd_handler(tour.pipe_r);
    tour.ctx->clear_event_notifier(tour.notifier);
    while (g_main_context_iteration(nullptr, FALSE)) {
    }
    tour.say("[main]", "%zu workers joined, handlers cleared", workers.size());
    g_source_destroy(tour.ctx->gsource());
    tour.ctx.reset();
    g_main_loop_unref(tour.loop);
    close(tour.pipe_r);
    close(tour.pipe_w);

    std::printf("----------------------------------------------------------------------------\n"
                "ran %d bottom halves, %d notifier wake-ups, %d fd echoes; %s\n",
                tour.bhs, tour.wakeups, tour.echoes,
                tour.off_thread == 0 ? "every callback ran in the loop thread"
                                     : "SOME CALLBACKS RAN OUTSIDE THE LOOP THREAD");
    return tour.off_thread == 0 ? 0 : 1;
}
