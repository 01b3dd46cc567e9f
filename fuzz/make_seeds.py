#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes the hand-made seeds fuzz/corpus/hand-* (the rest of the corpus is fuzzer-found).

fuzz_api.cpp reads its input with FuzzedDataProvider, which takes integers from the END of
the buffer, one byte for every range below 256: a seed is the list of values the harness
consumes, reversed. Each value here is the byte itself (value % (range + 1) is what the
harness sees)."""
import os
import sys

# op codes (fuzz_api.cpp, Harness::run)
BH_CREATE, BH_SCHED, ONESHOT, TIMER_CREATE, TIMER_ARM = 0, 1, 5, 6, 7
FD_OPEN, FD_SET, FD_WRITE, FD_CLOSE, FD_HANGUP, FD_BAD = 10, 11, 13, 14, 15, 16
POOL_SUBMIT, POOL_CANCEL, NOTIFY, POLL, BLOCKING, IDLE = 17, 18, 19, 20, 21, 22
EXT_OFF, EXT_ON, INTROSPECT, VCLOCK = 23, 24, 25, 26
NONE, RESCHED, DEL_SELF, NESTED = 0, 1, 2, 6


def acts(a1=NONE, a2=None, arg=0):
    """Harness::read_acts(): first action, has-a-second, [second action], argument."""
    return [a1, 0, arg] if a2 is None else [a1, 1, a2, arg]


def seed(mode, busy, *ops):
    vals = [mode] + ([busy] if mode != 3 else [])
    for op in ops:
        vals += op
    return bytes(reversed(vals))


SEEDS = {
    # poll(true) with nothing to do: sleeps until the 50 us guard timer
    'hand-blocking-timer': seed(0, 0, [BLOCKING], [BLOCKING], [POLL]),
    # the same through epoll and through GLib (g_main_context_iteration(TRUE))
    'hand-blocking-epoll': seed(2, 0, [BLOCKING], [BLOCKING]),
    'hand-blocking-glib': seed(3, 0, [BLOCKING, 1], [BLOCKING, 0]),
    # an eventfd with poll/poll_ready callbacks, busy polling on: found by busy polling
    'hand-busy-poll': seed(1, 1, [FD_OPEN, 0, 0], [FD_SET, 0] + acts() + [4], [FD_WRITE, 0],
                           [BLOCKING], [FD_WRITE, 0], [BLOCKING], [POLL]),
    # a readable fd wakes a blocking poll (poll(2) monitor), external clients on and off
    'hand-fd-wake': seed(1, 0, [FD_OPEN, 1, 1], [FD_SET, 1] + acts() + [1], [FD_WRITE, 1],
                         [EXT_OFF], [POLL], [EXT_ON], [BLOCKING], [FD_HANGUP, 1], [POLL]),
    # a pool job's completion wakes a blocking poll
    'hand-pool-wake': seed(0, 0, [POOL_SUBMIT, 7, 0] + acts(), [BLOCKING], [BLOCKING],
                           [POOL_SUBMIT, 9, 1] + acts(), [BLOCKING], [POLL]),
    # BHs: schedule, idle, self-reschedule with a nested poll, one-shots
    'hand-bh-nested': seed(0, 0, [BH_CREATE, 0] + acts(RESCHED, NESTED, 0), [BH_SCHED, 0],
                           [ONESHOT] + acts(NESTED), [POLL], [IDLE, 0], [BLOCKING],
                           [INTROSPECT, 0], [POLL]),
    # timers on every clock with extreme deadlines, the virtual clock stopped and restarted
    'hand-timers': seed(0, 0, [TIMER_CREATE, 0, 0, 0] + acts(), [TIMER_ARM, 0, 0, 3, 0],
                        [TIMER_CREATE, 1, 1, 1] + acts(DEL_SELF), [TIMER_ARM, 1, 1, 0],
                        [TIMER_CREATE, 2, 2, 2] + acts(), [TIMER_ARM, 2, 0, 6, 0],
                        [VCLOCK], [POLL], [VCLOCK], [POLL], [BLOCKING]),
    # bad fds, close while registered, notifier kinds
    'hand-bad-fds': seed(2, 0, [FD_BAD, 0], [FD_BAD, 1], [FD_BAD, 2], [FD_BAD, 3], [FD_BAD, 4],
                         [FD_OPEN, 0, 2], [FD_SET, 0] + acts() + [0], [FD_WRITE, 0], [POLL],
                         [FD_OPEN, 1, 3], [FD_SET, 1] + acts() + [0], [FD_WRITE, 1],
                         [FD_CLOSE, 1], [POLL], [NOTIFY], [BLOCKING]),
}

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), 'corpus')
os.makedirs(out, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(out, name), 'wb') as f:
        f.write(data)
print(f'{len(SEEDS)} seeds written to {out}')
