#!/bin/sh
# Regenerates the SFrame fixtures from prog.c (see README.md). The tests read
# only the files this writes; they never run a compiler or readelf.
#
# Needs this machine's gcc 12 with binutils 2.40 (SFrame v1) and the SFrame
# tools of the steering repo (v2: binutils 2.44, v3: a 2.47 snapshot), by
# default in /work/shared/tools; SFRAME_TOOLS overrides that.
set -eu
cd "$(dirname "$0")"
T=${SFRAME_TOOLS:-/work/shared/tools}

CFLAGS="-O2 -fomit-frame-pointer"
# Small files: no separate code pages, no RELRO padding, no build-id.
LDFLAGS="-Wl,-z,noseparate-code -Wl,-z,norelro -Wl,--build-id=none"

# v1 (binutils 2.40 on this machine), v2 (trixie's 2.44), v2 with
# SFRAME_F_FDE_FUNC_START_PCREL (rewritten from v2: no packaged binutils 2.45
# exists), v3 (forky's 2.47 snapshot). gas warns that v1 and v2 skip the FDEs
# of realign, flexfp (CFA in r10): that is expected.
gcc -Wa,--gsframe $CFLAGS $LDFLAGS -o prog.v1 prog.c
"$T"/sframe-gcc $CFLAGS $LDFLAGS -o prog.v2 prog.c
"$T"/sframe-v2-pcrel prog.v2 prog.v2pcrel
SFRAME_VERSION=3 "$T"/sframe-gcc $CFLAGS $LDFLAGS -o prog.v3 prog.c
strip --strip-debug prog.v1 prog.v2 prog.v2pcrel prog.v3

# The oracle: readelf of a binutils that decodes each version (2.40 only v1,
# 2.44 only v2 without PCREL, the 2.47 snapshot v2+PCREL and v3).
readelf --sframe prog.v1 > prog.v1.sframe.txt
SFRAME_VERSION=2 "$T"/sframe-readelf --sframe prog.v2 > prog.v2.sframe.txt
SFRAME_VERSION=3 "$T"/sframe-readelf --sframe prog.v2pcrel > prog.v2pcrel.sframe.txt
SFRAME_VERSION=3 "$T"/sframe-readelf --sframe prog.v3 > prog.v3.sframe.txt
