// SPDX-License-Identifier: LGPL-2.1-or-later
// Shared plumbing for the GTK demos: the main loop's aio::Context, command-line options,
// the self-test bookkeeping and the in-process window screenshot.
//
// Threading rule the demos keep: widgets are touched only in the GTK thread, i.e. in GTK
// signal handlers and in callbacks of the main aio::Context (bottom halves, pool
// completions, timers), which is attached to GTK's default GMainContext. Worker threads and
// IOThreads never call GTK.
#pragma once

#include <aio/context.hpp>

#include <gtk/gtk.h>

#include <functional>
#include <string>

namespace demo {

// What the command line asked for (see add_options()).
struct Options {
    bool self_test = false;    // run the scripted scenario, screenshot, quit
    std::string screenshot;    // where the self-test saves its PNG ("" = nowhere)
    int exit_code = 1;         // the self-test's verdict; 0 only if every check held
};

// True if argv holds --self-test: such runs must not claim (or forward to) a unique
// instance on the session bus, so main() adds G_APPLICATION_NON_UNIQUE.
bool wants_self_test(int argc, char** argv);

// Registers --self-test and --screenshot=PATH on the application; fills `opts` when GIO
// parses the command line (handle-local-options).
void add_options(GApplication* app, Options& opts);

// The main loop's context: created in the application's startup handler and attached to
// GTK's default GMainContext, so every callback on it runs in the GTK thread. Destroyed in
// shutdown (after the windows, which drain their own work first).
aio::Context& main_context();
void create_main_context();
void destroy_main_context();

// Renders `widget` (a realized window) through its own GSK renderer into a texture and
// saves it as PNG. In-process, so it needs no X screenshot tool. GTK thread.
bool save_png(GtkWidget* widget, const char* path);

// save_png() right after the window's next paint, when its layout is complete (a window
// whose labels just changed has no valid snapshot until then); then done(saved).
void save_png_after_paint(GtkWidget* window, std::string path,
                          std::function<void(bool)> done = {});

// Destroys every window of `app` (their "destroy" handlers stop threads and drain work).
// Call from the shutdown handler.
void destroy_windows(GtkApplication* app);

// "12 345" style thousands grouping for status lines.
std::string group_digits(unsigned long long v);

}  // namespace demo
