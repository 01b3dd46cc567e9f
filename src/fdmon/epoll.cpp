// SPDX-License-Identifier: LGPL-2.1-or-later
// fd monitor: epoll. The set is maintained by set_fd_handler(); a wait costs O(ready).
// epoll_wait takes milliseconds, so a finite wait first sleeps in ppoll on the epoll fd
// (nanosecond timeout) and then harvests without blocking.
#include "../context_impl.hpp"

#include <cerrno>
#include <ctime>

#include <sys/epoll.h>

namespace aio {

namespace {

short poll_events_from_epoll(std::uint32_t ev) noexcept
{
    short r = 0;
    if ((ev & EPOLLIN) != 0) {
        r |= POLLIN;
    }
    if ((ev & EPOLLOUT) != 0) {
        r |= POLLOUT;
    }
    if ((ev & EPOLLHUP) != 0) {
        r |= POLLHUP;
    }
    if ((ev & EPOLLERR) != 0) {
        r |= POLLERR;
    }
    return r;
}

}  // namespace

void ContextImpl::fdmon_epoll_harvest(ReadyList& ready, int timeout_ms) noexcept
{
    constexpr int kMaxEvents = 128;
    epoll_event events[kMaxEvents];
    int r = epoll_wait(epfd_, events, kMaxEvents, timeout_ms);
    for (int i = 0; i < r; ++i) {
        // Nodes in the set are alive: removal during a walk (we hold a count) is deferred.
        auto* n = static_cast<FdNode*>(events[i].data.ptr);
        (void)n->epoll_publish.load(std::memory_order_acquire);  // pairs with epoll_update()
        if (!n->deleted.load(std::memory_order_acquire)) {
            ready.add(n, poll_events_from_epoll(events[i].events));
        }
    }
}

void ContextImpl::fdmon_epoll_wait(ReadyList& ready, std::int64_t timeout_ns) noexcept
{
    if (timeout_ns > 0) {
        pollfd pfd{epfd_, POLLIN, 0};
        const timespec ts = ns_to_timespec(timeout_ns);
        if (ppoll(&pfd, 1, &ts, nullptr) <= 0) {
            return;
        }
        timeout_ns = 0;
    }
    fdmon_epoll_harvest(ready, timeout_ns == 0 ? 0 : -1);
}

void ContextImpl::fdmon_wait(ReadyList& ready, std::int64_t timeout_ns) noexcept
{
    constexpr int kEpollThreshold = 64;
    bool use_epoll = false;
    switch (fdmon_) {
    case FdMonitor::poll:
        use_epoll = false;
        break;
    case FdMonitor::epoll:
        use_epoll = true;
        break;
    case FdMonitor::automatic:
        use_epoll = glib_mode_.load(std::memory_order_relaxed) ||
                    live_handlers_.load(std::memory_order_relaxed) >= kEpollThreshold;
        break;
    }
    if (use_epoll) {
        fdmon_epoll_wait(ready, timeout_ns);
    } else {
        fdmon_poll_wait(ready, timeout_ns);
    }
}

}  // namespace aio
