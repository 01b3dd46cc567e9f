// SPDX-License-Identifier: LGPL-2.1-or-later
// Misuse that cannot be reported as a value aborts with a message naming the object.
#include <aio/context.hpp>
#include <aio/task.hpp>
#include <aio/timer.hpp>

#include <glib.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace aio::test {
namespace {

class ContextDeathTest : public ::testing::Test {
protected:
    void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(ContextDeathTest, FinalizedWithAScheduledOneShotNamesTheBh)
{
    EXPECT_DEATH(
        {
            ContextPtr ctx = Context::create("leaky-ctx");
            ctx->schedule([] {}, "forgotten-bh");
            ctx.reset();
        },
        "aio::Context 'leaky-ctx': BH 'forgotten-bh' leaked");
}

TEST_F(ContextDeathTest, PollFromASecondThreadWhileAnotherDrivesIt)
{
    EXPECT_DEATH(
        {
            ContextPtr ctx = Context::create("shared-ctx");
            std::atomic<bool> inside{false};
            // The first thread blocks inside poll() (inside a BH callback, so the state
            // is deterministic), then a second thread polls the same context.
            ctx->schedule([&] {
                inside = true;
                for (;;) {
                    std::this_thread::yield();  // parked inside the driver until the abort
                }
            });
            std::thread driver([&] { ctx->poll(true); });
            while (!inside.load()) {
                std::this_thread::yield();
            }
            ctx->poll(false);
        },
        "aio::Context 'shared-ctx': poll\\(\\) called from thread [0-9]+ while thread [0-9]+ "
        "is driving the context");
}

TEST_F(ContextDeathTest, PollWhileGLibDispatchesElsewhere)
{
    EXPECT_DEATH(
        {
            ContextPtr ctx = Context::create("glib-ctx");
            GMainContext* mc = g_main_context_new();
            ctx->attach(mc);
            std::atomic<bool> inside{false};
            ctx->schedule([&] {
                inside = true;
                for (;;) {
                    std::this_thread::yield();
                }
            });
            std::thread glib([&] { g_main_context_iteration(mc, TRUE); });
            while (!inside.load()) {
                std::this_thread::yield();
            }
            ctx->poll(false);
        },
        "aio::Context 'glib-ctx': poll\\(\\) called from thread [0-9]+ while thread [0-9]+ "
        "is driving");
}

TEST_F(ContextDeathTest, EnableExternalWithoutDisable)
{
    EXPECT_DEATH(
        {
            ContextPtr ctx = Context::create("ext-ctx");
            ctx->enable_external();
        },
        "aio::Context 'ext-ctx': enable_external\\(\\) without a matching disable_external");
}

TEST_F(ContextDeathTest, CallbackThatThrowsTerminates)
{
    EXPECT_DEATH(
        {
            ContextPtr ctx = Context::create("throwing-ctx");
            ctx->schedule([] { throw std::runtime_error("boom"); });
            ctx->poll(false);
        },
        "boom|terminate");
}

TEST_F(ContextDeathTest, DisablingTheVirtualClockFromItsOwnTimer)
{
    EXPECT_DEATH(
        {
            ContextPtr ctx = Context::create("vclock-ctx");
            Timer t(*ctx, Clock::virtual_, [] { set_virtual_clock_enabled(false); });
            t.arm_after(-1);
            ctx->poll(false);
        },
        "aio::Context 'vclock-ctx': set_virtual_clock_enabled\\(false\\) called from a "
        "virtual-clock timer callback");
}

Task<void> schedules_itself_twice(Context& ctx)
{
    CoHandle me = co_await current_coroutine();
    co_schedule(ctx, me, "first");
    co_schedule(ctx, me, "second");  // still queued from the first: a bug
    co_return;
}

TEST_F(ContextDeathTest, SchedulingACoroutineTwiceAborts)
{
    EXPECT_DEATH(
        {
            ContextPtr ctx = Context::create("co-ctx");
            spawn(*ctx, schedules_itself_twice(*ctx));
            ctx->poll(false);
        },
        "aio::Context 'co-ctx': coroutine already scheduled \\(by 'first'; now 'second'\\)");
}

}  // namespace
}  // namespace aio::test
