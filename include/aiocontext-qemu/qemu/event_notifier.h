/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qemu/event_notifier.h: a level-triggered wake-up flag backed by an eventfd (or a pipe
 * where eventfd is unavailable), as in QEMU 7.2. Embed an EventNotifier in your own
 * structures; the library keeps its aio::EventNotifier in place in rfd/wfd.
 */
#ifndef AIOCONTEXT_QEMU_EVENT_NOTIFIER_H
#define AIOCONTEXT_QEMU_EVENT_NOTIFIER_H

#include "qemu/osdep.h"
#include "qemu/typedefs.h"

#ifdef __cplusplus
extern "C" {
#endif

struct EventNotifier {
    int rfd;          /* read end, the fd to poll */
    int wfd;          /* write end (the same fd for an eventfd) */
    bool initialized;
};

typedef void EventNotifierHandler(EventNotifier *);

/* Creates the notifier, set if active. Returns 0 or a negative errno. */
int event_notifier_init(EventNotifier *e, int active);
/* Closes the fds; safe on a cleaned-up or never-initialised (zeroed) notifier. */
void event_notifier_cleanup(EventNotifier *e);
/* Signals it. Any thread. Returns 0, a negative errno, or -1 if uninitialised. */
int event_notifier_set(EventNotifier *e);
/* Clears it; returns whether it was set (0 if uninitialised). */
int event_notifier_test_and_clear(EventNotifier *e);
int event_notifier_get_fd(const EventNotifier *e);
int event_notifier_get_wfd(const EventNotifier *e);

#ifdef __cplusplus
}
#endif

#endif /* AIOCONTEXT_QEMU_EVENT_NOTIFIER_H */
