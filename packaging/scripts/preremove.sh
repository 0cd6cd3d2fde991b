#!/bin/sh
# Before the package goes (deb prerm: remove; rpm %preun: 0, an erase): stop and disable symroute's units, as
# deb-systemd-helper and %systemd_preun do, so nothing starts a binary that is about to be gone; then take
# symroute's configuration away with symroute remove, which undoes what its record says and keeps each of its own
# .network files, stripped of the routing, while it gives a link its addresses. An upgrade changes nothing here.
#
# Where systemd does not run (an image build, a chroot), symroute remove --offline changes only the files. For
# tests: SYMROUTE_ROOT (default /) and SYMROUTE_OFFLINE (auto, yes or no).
set -e
case "$1" in remove|0) ;; *) exit 0 ;; esac

[ -r /etc/default/symroute ] && . /etc/default/symroute
root="${SYMROUTE_ROOT:-/}"

if [ -d /run/systemd/system ]; then
	systemctl stop symroute-verify.timer symroute-verify.service symroute.service >/dev/null 2>&1 || true
fi
if command -v systemctl >/dev/null 2>&1; then
	systemctl --no-reload disable symroute-verify.timer symroute.service symroute-recover.service >/dev/null 2>&1 || true
fi

offline="${SYMROUTE_OFFLINE:-auto}"
if [ "$offline" = auto ]; then
	if [ -d /run/systemd/system ]; then offline=no; else offline=yes; fi
fi
set -- --root "$root"
[ "$offline" = yes ] && set -- "$@" --offline
if /usr/bin/symroute remove "$@"; then
	exit 0
fi
echo "symroute: removing its configuration failed (see above). The package stays installed: fix the cause, then remove it again (run symroute remove yourself to see it; --force cuts the connections it protects)."
exit 1
