// SPDX-License-Identifier: LGPL-2.1-or-later
// fd monitor: poll(2) over the live handlers. Cheapest for a handful of fds (no epoll
// round trip per wait), O(registered) per wait, so poll() switches to epoll above 64.
#include "../context_impl.hpp"

#include <cerrno>
#include <ctime>

namespace aio {


void ContextImpl::fdmon_poll_wait(ReadyList& ready, std::int64_t timeout_ns) noexcept
{
    pollfds_.clear();
    pollnodes_.clear();
    for (FdNode* n = handlers_.load(std::memory_order_acquire); n != nullptr;
         n = n->next.load(std::memory_order_acquire)) {
        if (n->deleted.load(std::memory_order_acquire) || !node_enabled(n)) {
            continue;
        }
        pollfds_.push_back(pollfd{n->fd, n->events, 0});
        pollnodes_.push_back(n);
    }
    timespec ts{};
    if (timeout_ns >= 0) {
        ts = ns_to_timespec(timeout_ns);
    }
    int r = ppoll(pollfds_.data(), pollfds_.size(), timeout_ns >= 0 ? &ts : nullptr, nullptr);
    if (r <= 0) {
        return;  // timeout, or EINTR: the caller's loop re-evaluates everything anyway
    }
    for (std::size_t i = 0; i < pollfds_.size(); ++i) {
        // POLLNVAL (the fd was closed while registered) matches no callback; skip it.
        if ((pollfds_[i].revents & ~POLLNVAL) != 0) {
            ready.add(pollnodes_[i], pollfds_[i].revents);
        }
    }
}

}  // namespace aio
