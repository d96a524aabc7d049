#!/usr/bin/env bash
# Build (once) a Debian root that holds a real GIMP 3 for the plug-in tests
# (docs/design.md section 3): GIMP 3.0 from Debian 13 "trixie", GIMP 3.2 from
# Debian "forky". The host may be Debian 12, whose GIMP is 2.10 without Python.
#
#   tests/gimp/make-root.sh                  build or reuse the GIMP 3.0 root (run as root)
#   tests/gimp/make-root.sh --gimp 3.2       the same for the GIMP 3.2 root
#   tests/gimp/make-root.sh --gimp 3.2 --print    print where that root is, build nothing
#   tests/gimp/make-root.sh --rebuild        throw the cached root away and build it again
#
# Each root lives outside the clone: the 3.0 one in $DEEPDREAM_GIMP_ROOT or else
# /var/cache/deepdream/gimp-root, the 3.2 one in $DEEPDREAM_GIMP_3_2_ROOT or else
# /var/cache/deepdream/gimp-root-3.2. A root is reused while its stamp file
# matches the suite and package list below: a second run takes well under a
# second. The first run takes two to four minutes and about 1.3 GB. The Debian
# mirror is the one the host's own apt sources name (or $DEEPDREAM_DEBIAN_MIRROR).
set -euo pipefail

version=3.0
action=build
while [ $# -gt 0 ]; do
    case "$1" in
        --gimp) version="${2:?--gimp needs a version: 3.0 or 3.2}"; shift ;;
        --print) action=print ;;
        --rebuild) action=rebuild ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) printf 'make-root: unknown option %s (see --help)\n' "$1" >&2; exit 1 ;;
    esac
    shift
done

# debootstrap_script: bookworm's debootstrap has no script for forky; sid's fits it.
case "$version" in
    3.0) root="${DEEPDREAM_GIMP_ROOT:-/var/cache/deepdream/gimp-root}"; suite=trixie; debootstrap_script="" ;;
    3.2) root="${DEEPDREAM_GIMP_3_2_ROOT:-/var/cache/deepdream/gimp-root-3.2}"; suite=forky
         debootstrap_script=/usr/share/debootstrap/scripts/sid ;;
    *) printf 'make-root: no root for GIMP %s (3.0 or 3.2)\n' "$version" >&2; exit 1 ;;
esac
packages=(gimp python3-gi gir1.2-gimp-3.0 xvfb xauth xdotool imagemagick fonts-dejavu-core)
# The 3.0 root's Python has pyzmq and msgpack (a distro GIMP set up by hand); the 3.2 root's has neither, like
# every official GIMP build (Windows, macOS, Flatpak, Snap): the plug-in speaks ZMTP itself and brings msgpack's
# pure-Python files. The two roots cover both of the client library's transports.
if [ "$version" = 3.0 ]; then packages+=(python3-zmq python3-msgpack); fi
stamp="$root/.deepdream-root"
want="deepdream gimp root v1: $suite ${packages[*]}"

say() { printf '==> make-root: %s\n' "$*"; }
die() { printf 'make-root: %s\n' "$*" >&2; exit 1; }

[ "$action" = print ] && { echo "$root"; exit 0; }

if [ "$action" = build ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "reusing $root"
    exit 0
fi
[ "$(id -u)" = 0 ] || die "building the GIMP root needs root (debootstrap, chroot); run it as root or with sudo"

# The mirror the host already uses: deb822 .sources first, then sources.list.
host_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # first URIs line of a stanza whose suites are not the security ones
        uri="$(awk '
            /^[[:space:]]*$/ { if (u != "" && s !~ /security/) { print u; exit } u = ""; s = ""; next }
            /^URIs:/ { u = $2 }
            /^Suites:/ { s = $0 }
            END { if (u != "" && s !~ /security/) print u }' "$f" | head -n1)"
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri="$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' "$f")"
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
}
mirror="${DEEPDREAM_DEBIAN_MIRROR:-$(host_mirror)}"
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*; set DEEPDREAM_DEBIAN_MIRROR"

if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

work="$root.partial"
mounted=""
cleanup() {
    if [ -n "$mounted" ]; then umount "$mounted" 2>/dev/null || umount -l "$mounted" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM

start=$SECONDS
mkdir -p "$(dirname "$root")"
if [ -d "$work" ] && mountpoint -q "$work/proc"; then umount -l "$work/proc"; fi
rm -rf "$work"
say "debootstrap $suite into $work (from $mirror)"
debootstrap --variant=minbase "$suite" "$work" "$mirror" ${debootstrap_script:+"$debootstrap_script"} >"$work.log" 2>&1 \
    || { tail -n 20 "$work.log" >&2; die "debootstrap failed (log: $work.log)"; }

cp -L /etc/resolv.conf "$work/etc/resolv.conf"
# Mirrors that are frozen snapshots carry expired Release dates; apt on the
# host is told to accept them, so the root is too. Proxies follow the host.
{
    echo 'Acquire::Check-Valid-Until "false";'
    echo 'APT::Install-Recommends "false";'
    apt-config dump 2>/dev/null | grep -i '^Acquire::[a-z]*::Proxy ' || true
} >"$work/etc/apt/apt.conf.d/90deepdream"
printf '#!/bin/sh\nexit 101\n' >"$work/usr/sbin/policy-rc.d"; chmod +x "$work/usr/sbin/policy-rc.d"

mount -t proc proc "$work/proc"; mounted="$work/proc"
say "installing ${packages[*]}"
chroot "$work" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get update -qq >>"$work.log" 2>&1 \
    || { tail -n 20 "$work.log" >&2; die "apt-get update in the root failed (log: $work.log)"; }
chroot "$work" env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >>"$work.log" 2>&1 \
    || { tail -n 20 "$work.log" >&2; die "apt-get install in the root failed (log: $work.log)"; }
chroot "$work" apt-get clean
umount "$work/proc"; mounted=""

chroot "$work" gimp-console-"$version" --version >/dev/null || die "gimp-console-$version does not run in the root"
if [ "$version" = 3.0 ]; then
    chroot "$work" python3 -c 'import gi, zmq, msgpack' || die "python3-gi / zmq / msgpack missing in the root"
else  # the root stands for the official builds: neither module may be there, or the tests would use it
    chroot "$work" python3 -c 'import importlib.util as u, sys, gi; sys.exit(u.find_spec("zmq") or u.find_spec("msgpack"))' \
        || die "python3-gi missing, or zmq / msgpack present, in the root"
fi

if [ -d "$root" ]; then
    mountpoint -q "$root/proc" && umount -l "$root/proc"
    rm -rf "$root"
fi
mv "$work" "$root"
mv "$work.log" "$root/var/log/deepdream-make-root.log"
echo "$want" >"$stamp"
say "built $root in $((SECONDS - start)) s ($(chroot "$root" gimp-console-"$version" --version | head -n1))"
