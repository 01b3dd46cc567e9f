// SPDX-License-Identifier: LGPL-2.1-or-later
// Shared test fixture: every AioContext behaviour runs under each driver.
#pragma once

#include <aio/context.hpp>

#include <glib.h>
#include <gtest/gtest.h>

#include <string>

#include <sys/resource.h>

namespace aio::test {

enum class Driver { PollAuto, PollPoll, PollEpoll, GLib };

inline std::string driver_name(const ::testing::TestParamInfo<Driver>& info)
{
    switch (info.param) {
    case Driver::PollAuto:
        return "PollAuto";
    case Driver::PollPoll:
        return "PollPoll";
    case Driver::PollEpoll:
        return "PollEpoll";
    case Driver::GLib:
        return "GLib";
    }
    return "?";
}

// Raises the soft fd limit to the hard one (tests with 1000 fds need more than 1024).
inline void raise_fd_limit()
{
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

class DriverTest : public ::testing::TestWithParam<Driver> {
protected:
    void SetUp() override
    {
        ctx = Context::create("test-ctx");
        switch (GetParam()) {
        case Driver::PollAuto:
            break;
        case Driver::PollPoll:
            ctx->set_fd_monitor(FdMonitor::poll);
            break;
        case Driver::PollEpoll:
            ctx->set_fd_monitor(FdMonitor::epoll);
            break;
        case Driver::GLib:
            mc = g_main_context_new();
            ctx->attach(mc);
            break;
        }
        drain();
    }

    void TearDown() override
    {
        if (ctx) {
            drain();
        }
        if (mc != nullptr) {
            if (ctx) {
                g_source_destroy(ctx->gsource());
            }
            ctx.reset();
            g_main_context_unref(mc);
            mc = nullptr;
        }
        ctx.reset();
    }

    bool glib() const { return GetParam() == Driver::GLib; }

    // One iteration by the driver under test.
    bool iter(bool blocking)
    {
        return glib() ? g_main_context_iteration(mc, blocking) != FALSE : ctx->poll(blocking);
    }

    void drain()
    {
        while (iter(false)) {
        }
    }

    ContextPtr ctx;
    GMainContext* mc = nullptr;
};

#define AIO_INSTANTIATE_DRIVERS(suite)                                                    \
    INSTANTIATE_TEST_SUITE_P(, suite,                                                      \
                             ::testing::Values(::aio::test::Driver::PollAuto,             \
                                               ::aio::test::Driver::PollPoll,             \
                                               ::aio::test::Driver::PollEpoll,            \
                                               ::aio::test::Driver::GLib),                \
                             ::aio::test::driver_name)

}  // namespace aio::test
