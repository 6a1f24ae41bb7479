#!/usr/bin/env bash
# Builds a local Docker image tagged debian:bookworm-slim from Debian's packages with debootstrap,
# for machines whose Docker engine cannot pull images. The repository's Dockerfile starts FROM that
# tag, so it builds the same here as where the official image can be pulled.
#
# The packages come from the machine's own apt source (the first Debian bookworm entry of
# /etc/apt/sources.list or /etc/apt/sources.list.d/), so the image is made wherever apt-get
# already works; MIR_DEBIAN_MIRROR=URL overrides it. The image's apt points at the same source,
# so that a build stage can apt-get install from it.
#
#   scripts/docker-base-image.sh           # no-op when the tag already exists
#   scripts/docker-base-image.sh --force   # build again and replace the tag
#
# Needs root (or sudo) for debootstrap; installs debootstrap with apt-get if it is missing.
# Exit status: 0 when the image exists at the end, 1 otherwise.
set -euo pipefail

tag="${MIR_BASE_IMAGE:-debian:bookworm-slim}"
suite=bookworm
force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

die() { echo "docker-base-image: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker not found"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (docker info failed)"
if [ "$force" -eq 0 ] && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "docker-base-image: $tag already exists ($(docker image inspect -f '{{.Id}}' "$tag" | cut -c8-19))"
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "debootstrap needs root: run as root or install sudo"
  sudo_cmd=(sudo)
fi

# Prints "URI SUITE" for every deb entry of the apt configuration, one-line and deb822 formats.
apt_entries() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -n 's/^[[:space:]]*deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\)[[:space:]]\+\([^[:space:]]\+\).*/\2 \3/p' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # A deb822 file is paragraphs of fields; print every URI with every suite of its paragraph.
    awk 'BEGIN { RS = ""; FS = "\n" }
         {
           types = ""; uris = ""; suites = ""; enabled = "yes"
           for (i = 1; i <= NF; i++) {
             line = $i
             if (line ~ /^[[:space:]]*#/) continue
             if (line ~ /^Types:/)   { sub(/^Types:[[:space:]]*/, "", line); types = line }
             if (line ~ /^URIs:/)    { sub(/^URIs:[[:space:]]*/, "", line); uris = line }
             if (line ~ /^Suites:/)  { sub(/^Suites:[[:space:]]*/, "", line); suites = line }
             if (line ~ /^Enabled:/) { sub(/^Enabled:[[:space:]]*/, "", line); enabled = line }
           }
           if (enabled == "no" || types !~ /(^|[[:space:]])deb($|[[:space:]])/) next
           nu = split(uris, u, /[[:space:]]+/); ns = split(suites, s, /[[:space:]]+/)
           for (a = 1; a <= nu; a++) for (b = 1; b <= ns; b++) if (u[a] != "" && s[b] != "") print u[a], s[b]
         }' "$f"
  done
}

mirror="${MIR_DEBIAN_MIRROR:-}"
security=""
while read -r uri s; do
  if [ -z "$mirror" ] && [ "$s" = "$suite" ]; then mirror="$uri"; fi
  if [ -z "$security" ] && [ "$s" = "$suite-security" ]; then security="$uri"; fi
done < <(apt_entries)
[ -n "$mirror" ] || die "no apt source for Debian $suite in /etc/apt/sources.list(.d); set MIR_DEBIAN_MIRROR=URL"
echo "docker-base-image: Debian $suite from $mirror"

if ! command -v debootstrap >/dev/null 2>&1; then
  echo "docker-base-image: installing debootstrap"
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
    die "could not install debootstrap (apt-get install debootstrap)"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/mir-base-image.XXXXXX")"
cleanup() { "${sudo_cmd[@]}" rm -rf "$work"; }
trap cleanup EXIT
root="$work/rootfs"

# minbase: essential packages and apt only, as in the official slim image.
echo "docker-base-image: debootstrap (a few minutes)"
if ! "${sudo_cmd[@]}" debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 20 "$work/debootstrap.log" >&2
  die "debootstrap failed (log above)"
fi

# apt inside the image uses the same source (and the security one, when the machine has it).
{
  echo "Types: deb"
  echo "URIs: $mirror"
  echo "Suites: $suite $suite-updates"
  echo "Components: main"
  echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
  if [ -n "$security" ]; then
    echo
    echo "Types: deb"
    echo "URIs: $security"
    echo "Suites: $suite-security"
    echo "Components: main"
    echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
  fi
} | "${sudo_cmd[@]}" tee "$root/etc/apt/sources.list.d/debian.sources" >/dev/null
"${sudo_cmd[@]}" rm -f "$root/etc/apt/sources.list"

# A source that serves a frozen snapshot has Release files past their Valid-Until date; where
# the machine's apt accepts that, the image's must too, or apt-get update fails in the build.
if apt-config dump 2>/dev/null | grep -q '^Acquire::Check-Valid-Until "false"'; then
  echo 'Acquire::Check-Valid-Until "false";' |
    "${sudo_cmd[@]}" tee "$root/etc/apt/apt.conf.d/99check-valid-until" >/dev/null
fi

# What the slim image leaves out: documentation, manuals, locales, apt's caches and lists.
"${sudo_cmd[@]}" sh -c "cd '$root' && rm -rf usr/share/doc/* usr/share/man/* usr/share/info/* \
  usr/share/locale/* var/cache/apt/*.bin var/cache/apt/archives/*.deb var/lib/apt/lists/* \
  var/log/*.log var/log/apt/* tmp/*"
printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n' |
  "${sudo_cmd[@]}" tee "$root/etc/dpkg/dpkg.cfg.d/01-slim" >/dev/null

echo "docker-base-image: importing as $tag"
"${sudo_cmd[@]}" tar -C "$root" --numeric-owner -c . |
  docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' - "$tag" >/dev/null
docker image inspect "$tag" >/dev/null 2>&1 || die "docker import did not make $tag"
size="$(docker image inspect -f '{{.Size}}' "$tag")"
echo "docker-base-image: $tag ready ($((size / 1000000)) MB)"
