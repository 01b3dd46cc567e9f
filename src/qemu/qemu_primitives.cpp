// SPDX-License-Identifier: LGPL-2.1-or-later
// qemu/event_notifier.h and qemu/thread.h (QemuLockCnt): the C++ objects kept in place
// in the caller's C structs.
#include "shim.hpp"

#include <aio/event_notifier.hpp>
#include <aio/lock_cnt.hpp>

#include <cstddef>
#include <new>
#include <system_error>
#include <type_traits>

namespace {

// EventNotifier {int rfd; int wfd; bool initialized;}: an aio::EventNotifier (two ints,
// read end first) lives in rfd/wfd, so the C fields always show its fds.
static_assert(sizeof(aio::EventNotifier) == 2 * sizeof(int));
static_assert(alignof(aio::EventNotifier) <= alignof(EventNotifier));
static_assert(std::is_standard_layout_v<aio::EventNotifier>);
static_assert(std::is_standard_layout_v<EventNotifier>);
static_assert(offsetof(EventNotifier, rfd) == 0 && offsetof(EventNotifier, wfd) == sizeof(int));

aio::EventNotifier* notifier(EventNotifier* e) noexcept
{
    return std::launder(reinterpret_cast<aio::EventNotifier*>(e));
}

#if defined(__linux__)
using CLockCnt = aio::LockCntFutex;  // QEMU's Linux QemuLockCnt: one futex word
#else
using CLockCnt = aio::LockCntMutex;
#endif
static_assert(sizeof(CLockCnt) <= sizeof(QemuLockCnt));
static_assert(alignof(CLockCnt) <= alignof(QemuLockCnt));

CLockCnt* lockcnt(QemuLockCnt* l) noexcept
{
    return std::launder(reinterpret_cast<CLockCnt*>(&l->impl_));
}

}  // namespace

// --- EventNotifier ------------------------------------------------------------------------

int event_notifier_init(EventNotifier* e, int active)
{
    try {
        new (static_cast<void*>(e)) aio::EventNotifier(active != 0);
    } catch (const std::system_error& ex) {
        e->rfd = e->wfd = -1;
        e->initialized = false;
        return -ex.code().value();
    }
    e->initialized = true;
    return 0;
}

void event_notifier_cleanup(EventNotifier* e)
{
    if (!e->initialized) {
        return;
    }
    notifier(e)->~EventNotifier();  // closes both fds
    e->rfd = e->wfd = -1;
    e->initialized = false;
}

int event_notifier_set(EventNotifier* e)
{
    return e->initialized ? notifier(e)->set() : -1;
}

int event_notifier_test_and_clear(EventNotifier* e)
{
    return e->initialized ? notifier(e)->test_and_clear() : 0;
}

int event_notifier_get_fd(const EventNotifier* e) { return e->rfd; }
int event_notifier_get_wfd(const EventNotifier* e) { return e->wfd; }

// --- QemuLockCnt ------------------------------------------------------------------------------

void qemu_lockcnt_init(QemuLockCnt* l) { new (static_cast<void*>(&l->impl_)) CLockCnt(); }
void qemu_lockcnt_destroy(QemuLockCnt* l) { lockcnt(l)->~CLockCnt(); }
void qemu_lockcnt_inc(QemuLockCnt* l) { lockcnt(l)->inc(); }
void qemu_lockcnt_dec(QemuLockCnt* l) { lockcnt(l)->dec(); }
bool qemu_lockcnt_dec_and_lock(QemuLockCnt* l) { return lockcnt(l)->dec_and_lock(); }
bool qemu_lockcnt_dec_if_lock(QemuLockCnt* l) { return lockcnt(l)->dec_if_lock(); }
void qemu_lockcnt_lock(QemuLockCnt* l) { lockcnt(l)->lock(); }
void qemu_lockcnt_unlock(QemuLockCnt* l) { lockcnt(l)->unlock(); }
void qemu_lockcnt_inc_and_unlock(QemuLockCnt* l) { lockcnt(l)->inc_and_unlock(); }
unsigned qemu_lockcnt_count(QemuLockCnt* l) { return lockcnt(l)->count(); }
