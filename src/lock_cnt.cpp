// SPDX-License-Identifier: LGPL-2.1-or-later
// aio::LockCntFutex and aio::LockCntMutex; see include/aio/lock_cnt.hpp for the contract.
//
// The futex variant packs the mutex state and the visit count into one word so that
// "count is zero and the lock is held" is a single observable state: inc() can refuse to
// start a visit out of it without a second lock, and dec_and_lock()/dec_if_lock() can
// drop the last visit and take the lock in one atomic step. The lock half is Drepper's
// three-state futex mutex ("Futexes Are Tricky", mutex2); the only twist is that a thread
// woken for the lock may leave with a visit instead, and must then pass the wake-up on.

#include <aio/lock_cnt.hpp>

#include <cassert>
#include <climits>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AIO_LOCKCNT_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) && !defined(AIO_LOCKCNT_TSAN)
#define AIO_LOCKCNT_TSAN 1
#endif

#if defined(AIO_LOCKCNT_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace aio {

namespace {

using Word = std::uint32_t;

constexpr Word kStateMask = 3;
constexpr Word kFree = 0;
constexpr Word kLocked = 1;
constexpr Word kWaiting = 2;  // locked, and some thread may be asleep in futex_wait
constexpr Word kCountStep = 4;

static_assert(sizeof(std::atomic<Word>) == sizeof(Word), "futex needs a plain 32-bit word");
static_assert(std::atomic<Word>::is_always_lock_free);

constexpr Word state_of(Word v) noexcept { return v & kStateMask; }
constexpr Word count_of(Word v) noexcept { return v / kCountStep; }

void futex_wait(std::atomic<Word>& word, Word expected) noexcept {
#if defined(__linux__)
    // EAGAIN (word already changed) and EINTR are both "go and look again", which every
    // caller does, so the result is not inspected.
    ::syscall(SYS_futex, reinterpret_cast<Word*>(&word), FUTEX_WAIT_PRIVATE, expected,
              nullptr, nullptr, 0);
#else
    word.wait(expected, std::memory_order_relaxed);
#endif
}

void futex_wake_one(std::atomic<Word>& word) noexcept {
#if defined(__linux__)
    ::syscall(SYS_futex, reinterpret_cast<Word*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr,
              nullptr, 0);
#else
    word.notify_one();
#endif
}

// If the lock is free, try once to replace `val` with `desired` (which the caller built
// from `val`); success means the caller's transition happened. Otherwise sleep until the
// lock is released and return false with `val` refreshed, so the caller recomputes: while
// it slept the count may have moved and the transition it wants may have changed.
// `waited` records that this thread may have consumed a FUTEX_WAKE; the caller must either
// install kWaiting when it takes the lock (so its unlock wakes the next sleeper) or, if it
// leaves without the lock, wake one thread itself.
bool cmpxchg_or_wait(std::atomic<Word>& word, Word& val, Word desired, bool& waited) noexcept {
    if (state_of(val) == kFree) {
        // acq_rel: acquire because this may take the lock or start a visit; release because
        // dec_and_lock()/dec_if_lock() end a visit with this same exchange.
        return word.compare_exchange_strong(val, desired, std::memory_order_acq_rel,
                                            std::memory_order_relaxed);
    }
    for (;;) {
        if (state_of(val) == kLocked) {
            // Announce a sleeper before sleeping, or the holder's unlock would not wake us.
            const Word want = (val & ~kStateMask) | kWaiting;
            if (!word.compare_exchange_weak(val, want, std::memory_order_relaxed,
                                            std::memory_order_relaxed)) {
                continue;
            }
            val = want;
        }
        if (state_of(val) == kWaiting) {
            futex_wait(word, val);
            // Relaxed: nothing is acquired until the caller's final exchange succeeds.
            val = word.load(std::memory_order_relaxed);
            waited = true;
            continue;
        }
        return false;  // free now; let the caller decide what it wants from this value
    }
}

#if defined(AIO_LOCKCNT_TSAN)
// The annotations are placed after the real acquisition and before the real release, with
// nothing inside the pre/post brackets. TSan therefore models the lock as a mutex (lock
// order, double lock, mutex sets in reports) *and* still sees the acquire/release on the
// word, which is what gives inc() its happens-before edge from the last unlock. Wrapping the
// atomics instead would make TSan ignore them and report false races for visitors.
//
// The mutex is registered one byte into the word, not at its address: TSan keys sync state
// by address, and a mutex unlock *overwrites* that state, which would drop the release
// edges that dec() merged into the word and make a reaper's "count() == 0, so free" look
// racy against the visits it waited out.
void* tsan_key(std::atomic<Word>* word) noexcept {
    return reinterpret_cast<char*>(word) + 1;
}
void tsan_acquired(std::atomic<Word>* word, unsigned flags) noexcept {
    __tsan_mutex_pre_lock(tsan_key(word), flags);
    __tsan_mutex_post_lock(tsan_key(word), flags, 0);
}
void tsan_releasing(std::atomic<Word>* word) noexcept {
    __tsan_mutex_pre_unlock(tsan_key(word), 0);
    __tsan_mutex_post_unlock(tsan_key(word), 0);
}
constexpr unsigned kTsanTryLock = __tsan_mutex_try_lock;
#else
constexpr void tsan_acquired(std::atomic<Word>*, unsigned) noexcept {}
constexpr void tsan_releasing(std::atomic<Word>*) noexcept {}
constexpr unsigned kTsanTryLock = 0;
#endif

}  // namespace

// ---- LockCntFutex ---------------------------------------------------------------------

void LockCntFutex::inc() noexcept {
    Word val = word_.load(std::memory_order_relaxed);
    bool waited = false;
    for (;;) {
        if (count_of(val) >= 1) {
            // A visit already runs, so the lock state is irrelevant. Acquire: the visitor
            // must see what was published before the count it builds on.
            assert(val <= UINT32_MAX - kCountStep);
            if (word_.compare_exchange_weak(val, val + kCountStep, std::memory_order_acquire,
                                            std::memory_order_relaxed)) {
                break;
            }
        } else if (cmpxchg_or_wait(word_, val, val + kCountStep, waited)) {
            break;
        }
    }
    // A wake-up we took was meant for a lock acquirer; we leave without the lock.
    if (waited) {
        futex_wake_one(word_);
    }
}

void LockCntFutex::dec() noexcept {
    // Release: the visit's reads must happen before whoever sees the count reach zero and
    // frees what the visit looked at.
    [[maybe_unused]] const Word old = word_.fetch_sub(kCountStep, std::memory_order_release);
    assert(count_of(old) >= 1);
}

bool LockCntFutex::dec_and_lock() noexcept {
    Word val = word_.load(std::memory_order_relaxed);
    bool waited = false;
    for (;;) {
        assert(count_of(val) >= 1);
        if (count_of(val) >= 2) {
            // Not the last visit: no lock needed. Release as in dec().
            if (word_.compare_exchange_weak(val, val - kCountStep, std::memory_order_release,
                                            std::memory_order_relaxed)) {
                break;
            }
        } else {
            const Word desired = (val - kCountStep) | (waited ? kWaiting : kLocked);
            if (cmpxchg_or_wait(word_, val, desired, waited)) {
                tsan_acquired(&word_, kTsanTryLock);
                return true;
            }
        }
    }
    if (waited) {
        futex_wake_one(word_);
    }
    return false;
}

bool LockCntFutex::dec_if_lock() noexcept {
    Word val = word_.load(std::memory_order_relaxed);
    bool waited = false;
    while (count_of(val) < 2) {
        assert(count_of(val) == 1);
        const Word desired = (val - kCountStep) | (waited ? kWaiting : kLocked);
        if (cmpxchg_or_wait(word_, val, desired, waited)) {
            tsan_acquired(&word_, kTsanTryLock);
            return true;
        }
    }
    if (waited) {
        futex_wake_one(word_);
    }
    return false;
}

void LockCntFutex::lock() noexcept {
    Word val = word_.load(std::memory_order_relaxed);
    bool waited = false;
    for (;;) {
        // After sleeping we cannot know whether others still sleep; kWaiting errs on the
        // side of one spurious wake at unlock rather than a lost one.
        const Word desired = (val & ~kStateMask) | (waited ? kWaiting : kLocked);
        if (cmpxchg_or_wait(word_, val, desired, waited)) {
            break;
        }
    }
    tsan_acquired(&word_, 0);
}

void LockCntFutex::unlock() noexcept {
    tsan_releasing(&word_);
    // A single fetch_and is the CAS loop "clear the state bits, keep the count".
    const Word old = word_.fetch_and(~kStateMask, std::memory_order_release);
    assert(state_of(old) != kFree);
    if (state_of(old) == kWaiting) {
        futex_wake_one(word_);
    }
}

void LockCntFutex::inc_and_unlock() noexcept {
    tsan_releasing(&word_);
    Word val = word_.load(std::memory_order_relaxed);
    Word desired;
    do {
        assert(state_of(val) != kFree);
        desired = (val & ~kStateMask) + kCountStep;
        // Release: this both unlocks and starts a visit that is already covered by the
        // lock's own acquisition.
    } while (!word_.compare_exchange_weak(val, desired, std::memory_order_release,
                                          std::memory_order_relaxed));
    if (state_of(val) == kWaiting) {
        futex_wake_one(word_);
    }
}

unsigned LockCntFutex::count() const noexcept {
    // Acquire: "count() == 0 under the lock, so free it" must see every finished visit.
    return count_of(word_.load(std::memory_order_acquire));
}

// ---- LockCntMutex ---------------------------------------------------------------------

void LockCntMutex::inc() noexcept {
    unsigned old = count_.load(std::memory_order_relaxed);
    while (old != 0) {
        if (count_.compare_exchange_weak(old, old + 1, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
            return;
        }
    }
    // 0 -> 1 must not happen while a reaper holds the lock with the count at zero.
    const std::lock_guard guard(mutex_);
    count_.fetch_add(1, std::memory_order_acquire);
}

void LockCntMutex::dec() noexcept {
    [[maybe_unused]] const unsigned old = count_.fetch_sub(1, std::memory_order_release);
    assert(old >= 1);
}

bool LockCntMutex::dec_and_lock() noexcept {
    unsigned old = count_.load(std::memory_order_relaxed);
    while (old > 1) {
        if (count_.compare_exchange_weak(old, old - 1, std::memory_order_release,
                                         std::memory_order_relaxed)) {
            return false;
        }
    }
    // Possibly the last visit: take the lock first so that reaching zero and holding the
    // lock are one state as far as inc() is concerned.
    mutex_.lock();
    if (count_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        return true;
    }
    mutex_.unlock();
    return false;
}

bool LockCntMutex::dec_if_lock() noexcept {
    if (count_.load(std::memory_order_relaxed) > 1) {
        return false;
    }
    mutex_.lock();
    // A compare-exchange rather than decrement-then-undo: count() never shows a transient
    // value that no caller produced.
    unsigned expected = 1;
    if (count_.compare_exchange_strong(expected, 0, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
        return true;
    }
    mutex_.unlock();
    return false;
}

void LockCntMutex::lock() noexcept {
    mutex_.lock();
}

void LockCntMutex::unlock() noexcept {
    mutex_.unlock();
}

void LockCntMutex::inc_and_unlock() noexcept {
    // Release so that a later inc() that only CASes the count (never touching the mutex)
    // still sees what was done under the lock, as with the futex variant.
    count_.fetch_add(1, std::memory_order_release);
    mutex_.unlock();
}

unsigned LockCntMutex::count() const noexcept {
    return count_.load(std::memory_order_acquire);
}

}  // namespace aio
