// SPDX-License-Identifier: LGPL-2.1-or-later
// aio::BottomHalf: a persistent callback that any thread can schedule to run once in its
// context's home thread.
//
// Scheduling is idempotent until the callback runs; a BH rescheduled from its own callback
// runs again in the next poll iteration, never twice in one. Destroying the handle deletes
// the BH: it never runs afterwards, even if it was scheduled (delete beats schedule), and
// its memory is reclaimed by the loop. The handle keeps its context alive.
//
// Thread safety: schedule(), schedule_idle() and cancel() may be called from any thread,
// concurrently; they are wait-free and allocate nothing. Moving or destroying a handle
// needs exclusive access to that handle (destruction may race with the loop; that is safe).
// The callback runs in the home thread, and sees every write the scheduling thread made
// before schedule().
#pragma once

#include <aio/export.hpp>

namespace aio {

class Context;
struct BhNode;

class AIO_EXPORT BottomHalf {
public:
    BottomHalf() noexcept = default;
    BottomHalf(BottomHalf&& other) noexcept;
    BottomHalf& operator=(BottomHalf&& other) noexcept;
    BottomHalf(const BottomHalf&) = delete;
    BottomHalf& operator=(const BottomHalf&) = delete;
    ~BottomHalf();

    // Run the callback in the next iteration; wakes the loop. Counts as progress. A BH
    // already scheduled with schedule_idle() and not yet run stays idle (as in QEMU).
    void schedule() noexcept;
    // Like schedule() but the loop may wait up to 10 ms before running it, and running it
    // is not progress.
    void schedule_idle() noexcept;
    // Unschedules. A dispatch already in progress on the home thread may still run it.
    void cancel() noexcept;
    // Deletes now (what the destructor does); the handle becomes empty.
    void reset() noexcept;

    explicit operator bool() const noexcept { return node_ != nullptr; }
    Context* context() const noexcept;

private:
    friend class Context;
    friend class ContextImpl;
    explicit BottomHalf(BhNode* node) noexcept : node_(node) {}
    BhNode* node_ = nullptr;
};

}  // namespace aio
