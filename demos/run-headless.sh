#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# `make demo` without a display: runs both GTK demos' --self-test under Xvfb (and a private
# D-Bus session), saves their screenshots in BUILD and says so. Exits non-zero if either
# self-test fails.
#
#   bash demos/run-headless.sh [BUILD]
set -u
build=${1:-build}

# Software rendering and no desktop services: repeatable, and nothing to reach outside.
export G_DEBUG=fatal-criticals GSK_RENDERER=cairo GTK_A11Y=none NO_AT_BRIDGE=1 \
  GSETTINGS_BACKEND=memory GDK_BACKEND=x11

echo "No display (DISPLAY and WAYLAND_DISPLAY are unset): running the GTK demos headless"
echo "under Xvfb, each for a few seconds, with its scripted --self-test."
rc=0
for demo in fractal monitor; do
  echo
  echo "== $build/demos/$demo --self-test"
  # dbus-daemon, run as root, complains that it cannot raise its fd limit: harmless.
  xvfb-run -a -s "-screen 0 1280x1024x24 -nolisten tcp" \
    dbus-run-session -- "$build/demos/$demo" --self-test --screenshot="$build/demo-$demo.png" \
    2> >(grep -v 'Failed to set fd limit' >&2) || rc=1
done
wait  # for the stderr filters
echo
if [ "$rc" -eq 0 ]; then
  echo "Both self-tests passed. Screenshots of the two windows:"
else
  echo "A self-test FAILED (see above). Screenshots taken so far:"
fi
for f in "$build/demo-fractal.png" "$build/demo-fractal-progress.png" "$build/demo-monitor.png"; do
  [ -f "$f" ] && echo "  $f"
done
echo "With a display, \`make demo\` opens the fractal explorer instead."
exit "$rc"
