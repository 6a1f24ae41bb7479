#!/usr/bin/env bash
# Prints, one per line, the Debian packages that hold the shared libraries the given programs and
# libraries load (ldd), leaving out the ones under the given files' own folders. The Dockerfile's
# runtime stage installs exactly these, so its list follows the code's link lines.
#
#   scripts/runtime-packages.sh FILE...
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 FILE..." >&2; exit 2; }

declare -A own=()
for f in "$@"; do own["$(cd "$(dirname "$f")" && pwd)"]=1; done

# ldd fails on scripts among the files; what it prints for the others is all that counts.
libs="$({ ldd "$@" 2>/dev/null || true; } | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u)"
for lib in $libs; do
  [ -z "${own["$(dirname "$lib")"]:-}" ] || continue
  real="$(realpath "$lib")"
  # With merged /usr, dpkg may have registered the file under /lib or /usr/lib, and by its
  # link name or its real name: ask for each exact path (a bare file name would also match
  # other architectures' copies, such as lib32stdc++6).
  pkg=""
  for p in "$real" "$lib"; do
    for q in "$p" "${p#/usr}" "/usr$p"; do
      pkg="$(dpkg -S "$q" 2>/dev/null | head -n 1 | cut -d: -f1)" || true
      [ -z "$pkg" ] || break 2
    done
  done
  [ -n "$pkg" ] || { echo "runtime-packages: no package holds $real" >&2; exit 1; }
  echo "$pkg"
done | sort -u
