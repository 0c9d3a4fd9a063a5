/*
 * glib-memory-monitor: a GLib client of GMemoryMonitor for the D-Bus scenario (issue 17).
 *
 * It does what a GLib/GTK application does: g_memory_monitor_dup_default() and the
 * "low-memory-warning" signal. Outside a sandbox GLib picks its D-Bus implementation,
 * GMemoryMonitorDBus, which watches org.freedesktop.LowMemoryMonitor on the system bus
 * and turns its LowMemoryWarning signal into "low-memory-warning". Nothing here talks
 * D-Bus itself.
 *
 * Prints the implementation GLib chose, then one line per warning:
 *   low-memory-warning 50|100|255
 * and exits 0 after a warning of at least LEVEL (first argument, default 255), or 1 after
 * SECONDS (second argument, default 120) without one.
 */
#include <stdio.h>
#include <stdlib.h>

#include <gio/gio.h>

static int until_level = 255;

static void on_warning(GMemoryMonitor *monitor, GMemoryMonitorWarningLevel level, gpointer loop)
{
    (void)monitor;
    printf("low-memory-warning %d\n", (int)level);
    fflush(stdout);
    if ((int)level >= until_level)
        g_main_loop_quit(loop);
}

static gboolean on_timeout(gpointer loop)
{
    printf("timed out\n");
    fflush(stdout);
    g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

int main(int argc, char **argv)
{
    int seconds = 120;
    if (argc > 1)
        until_level = atoi(argv[1]);
    if (argc > 2)
        seconds = atoi(argv[2]);

    GMainLoop *loop = g_main_loop_new(NULL, FALSE);
    GMemoryMonitor *monitor = g_memory_monitor_dup_default();
    printf("monitor %s\n", G_OBJECT_TYPE_NAME(monitor));
    fflush(stdout);
    g_signal_connect(monitor, "low-memory-warning", G_CALLBACK(on_warning), loop);
    guint timeout = g_timeout_add_seconds(seconds, on_timeout, loop);
    g_main_loop_run(loop);

    gboolean timed_out = g_main_context_find_source_by_id(NULL, timeout) == NULL;
    g_object_unref(monitor);
    g_main_loop_unref(loop);
    return timed_out ? 1 : 0;
}
