// SPDX-License-Identifier: LGPL-2.1-or-later
// monitor: the loop monitor on its own (the fractal explorer opens the same window from
// its "Loop monitor" button). See monitor.cpp.
#include "../common/demo.hpp"
#include "monitor.hpp"

int main(int argc, char** argv)
{
    static demo::Options opts;
    GApplicationFlags flags = G_APPLICATION_DEFAULT_FLAGS;
    if (demo::wants_self_test(argc, argv)) {
        flags = static_cast<GApplicationFlags>(flags | G_APPLICATION_NON_UNIQUE);
    }
    GtkApplication* app = gtk_application_new("org.aiocontext.demo.Monitor", flags);
    demo::add_options(G_APPLICATION(app), opts);
    g_signal_connect(app, "startup", G_CALLBACK(+[](GApplication*, gpointer) {
                         demo::create_main_context();
                     }),
                     nullptr);
    g_signal_connect(app, "activate", G_CALLBACK(+[](GApplication* a, gpointer) {
                         GtkWindow* w = gtk_application_get_active_window(GTK_APPLICATION(a));
                         if (w != nullptr) {
                             gtk_window_present(w);
                         } else {
                             monitor::open_window(GTK_APPLICATION(a),
                                                  opts.self_test ? &opts : nullptr);
                         }
                     }),
                     nullptr);
    g_signal_connect(app, "shutdown", G_CALLBACK(+[](GApplication* a, gpointer) {
                         demo::destroy_windows(GTK_APPLICATION(a));  // joins the IOThreads
                         demo::destroy_main_context();
                     }),
                     nullptr);
    const int status = g_application_run(G_APPLICATION(app), argc, argv);
    g_object_unref(app);

    const int started = monitor::iothreads_started.load();
    const int joined = monitor::iothreads_joined.load();
    if (opts.self_test || started != joined) {
        g_print("monitor: %s: every IOThread stopped and joined (%d of %d)\n",
                started == joined ? "ok  " : "FAIL", joined, started);
    }
    if (opts.self_test) {
        const int rc = opts.exit_code == 0 && status == 0 && started == joined ? 0 : 1;
        g_print("monitor: self-test %s\n", rc == 0 ? "PASSED" : "FAILED");
        return rc;
    }
    return status != 0 ? status : (started == joined ? 0 : 1);
}
