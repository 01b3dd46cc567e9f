#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds a C program against an installed copy of the library, as an outside user
# would: `meson install --destdir` into a temporary directory, then the compiler flags
# from `pkg-config --cflags --libs aiocontext-qemu`, then runs it.
#
# usage: check-pkgconfig.sh MESON BUILD_DIR PREFIX SOURCE.c CC [FLAGS...]
# The .pc files name the final prefix; the copies used here are rewritten to point into
# the destdir (prefix=DESTDIR/PREFIX), the rest is pkg-config's own resolution.
set -eu

meson=$1 build=$2 prefix=$3 src=$4
shift 4

tmp=$(mktemp -d "${TMPDIR:-/tmp}/aiocontext-pc.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

"$meson" install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" >"$tmp/install.log" 2>&1 || {
    cat "$tmp/install.log" >&2
    echo "check-pkgconfig: meson install failed" >&2
    exit 1
}

pc=$(find "$tmp/root" -name aiocontext-qemu.pc | head -n 1)
if [ -z "$pc" ]; then
    echo "check-pkgconfig: aiocontext-qemu.pc was not installed" >&2
    exit 1
fi
mkdir "$tmp/pc"
for f in "$(dirname "$pc")"/*.pc; do
    sed "s|^prefix=.*|prefix=$tmp/root$prefix|" "$f" >"$tmp/pc/$(basename "$f")"
done

export PKG_CONFIG_PATH="$tmp/pc"
cflags=$(pkg-config --cflags aiocontext-qemu)
libs=$(pkg-config --libs aiocontext-qemu)
libdir=$(pkg-config --variable=libdir aiocontext-qemu)
echo "pkg-config --cflags --libs aiocontext-qemu: $cflags $libs"
case "$cflags" in
    *"$tmp/root$prefix/include/aiocontext-qemu"*) ;;
    *) echo "check-pkgconfig: Cflags lack the installed include/aiocontext-qemu" >&2; exit 1 ;;
esac

# shellcheck disable=SC2086 # word splitting of pkg-config output is intended
"$@" -std=c11 $cflags -o "$tmp/prog" "$src" $libs
LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$tmp/prog"
