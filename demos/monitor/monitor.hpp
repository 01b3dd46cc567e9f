// SPDX-License-Identifier: LGPL-2.1-or-later
// The loop monitor window: 1 to 8 IOThreads pass a token around a ring of contexts while
// a timer on the main context samples them into a live plot.
#pragma once

#include "../common/demo.hpp"

#include <atomic>

namespace monitor {

// IOThreads created and IOThreads stopped and joined, over the whole process.
extern std::atomic<int> iothreads_started;
extern std::atomic<int> iothreads_joined;

// Opens a monitor window on `app` (GTK thread, main context created). With a self-test
// `opts`, the window runs the scripted scenario and quits the application at the end,
// leaving its verdict in opts->exit_code. Returns the window; its IOThreads live as long
// as it does.
GtkWidget* open_window(GtkApplication* app, demo::Options* opts = nullptr);

}  // namespace monitor
