#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run a GTK demo's --self-test and check the screenshot it saved.

    check_demo.py --kind fractal|monitor --png PATH [--timeout S] -- COMMAND...

COMMAND (for example `xvfb-run -a dbus-run-session -- build/demos/fractal`) gets
`--self-test --screenshot=PATH` appended. Passes when it exits 0 within the timeout and
the PNG is not blank:
  fractal  more than 50 distinct colours (the Mandelbrot image has hundreds);
  monitor  the plot's lines: at least 600 pixels near each of the first three thread
           colours (the table's legend squares alone are far fewer).
Only the standard library: a small PNG decoder (8-bit RGB/RGBA, non-interlaced).
"""
import argparse
import os
import struct
import subprocess
import sys
import zlib

THREAD_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44)]  # monitor.cpp kColours


def read_png(path):
    """Returns (width, height, channels, rows) with rows as bytes objects."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype not in (2, 6) or interlace != 0:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {ctype}, "
                         f"interlace {interlace}")
    ch = 4 if ctype == 6 else 3
    raw = zlib.decompress(b"".join(idat))
    stride = width * ch
    rows, prev = [], bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ftype == 1:
            for i in range(ch, stride):
                line[i] = (line[i] + line[i - ch]) & 0xFF
        elif ftype == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 0xFF
        elif ftype == 3:
            for i in range(stride):
                left = line[i - ch] if i >= ch else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                a = line[i - ch] if i >= ch else 0
                b = prev[i]
                c = prev[i - ch] if i >= ch else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        elif ftype != 0:
            raise ValueError(f"bad PNG filter {ftype} on row {y}")
        rows.append(bytes(line))
        prev = line
    return width, height, ch, rows


def pixels(rows, ch):
    for row in rows:
        for i in range(0, len(row), ch):
            yield row[i], row[i + 1], row[i + 2]


def check(kind, png):
    w, h, ch, rows = read_png(png)
    print(f"check: {png}: {w}x{h}")
    if w < 400 or h < 300:
        return f"image too small ({w}x{h})"
    if kind == "fractal":
        colours = set(pixels(rows, ch))
        print(f"check: {len(colours)} distinct colours")
        if len(colours) <= 50:
            return f"only {len(colours)} distinct colours (want > 50): blank or unpainted"
        return None
    counts = [0] * len(THREAD_COLOURS)
    for r, g, b in pixels(rows, ch):
        for k, (cr, cg, cb) in enumerate(THREAD_COLOURS):
            if abs(r - cr) + abs(g - cg) + abs(b - cb) < 60:
                counts[k] += 1
    print(f"check: pixels in the first three thread colours: {counts}")
    if min(counts) < 600:
        return f"plot lines missing (pixels per thread colour {counts}, want >= 600 each)"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=["fractal", "monitor"], required=True)
    ap.add_argument("--png", required=True)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("command", nargs="+")
    args = ap.parse_args()
    if os.path.exists(args.png):
        os.unlink(args.png)
    cmd = args.command + ["--self-test", f"--screenshot={args.png}"]
    print("check: running", " ".join(cmd), flush=True)
    try:
        rc = subprocess.run(cmd, timeout=args.timeout).returncode
    except subprocess.TimeoutExpired:
        print(f"check: FAIL: no exit after {args.timeout:.0f} s")
        return 1
    if rc != 0:
        print(f"check: FAIL: self-test exited with {rc}")
        return 1
    if not os.path.exists(args.png):
        print(f"check: FAIL: no screenshot at {args.png}")
        return 1
    try:
        err = check(args.kind, args.png)
    except (ValueError, OSError, zlib.error) as e:
        err = f"cannot read the screenshot: {e}"
    if err:
        print(f"check: FAIL: {err}")
        return 1
    print("check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
