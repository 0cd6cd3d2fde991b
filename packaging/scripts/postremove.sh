#!/bin/sh
# After the package is gone (deb postrm: purge; rpm %postun: 0, an erase): symroute's preremove has taken its
# configuration away already; purging also drops its record of what it had applied. The description in
# /etc/symroute, and any own .network file symroute remove kept because it gives a link its addresses, stay.
set -e
case "$1" in purge|0) ;; *) exit 0 ;; esac

[ -r /etc/default/symroute ] && . /etc/default/symroute
root="${SYMROUTE_ROOT:-/}"
root="${root%/}/"
rm -rf "${root}var/lib/symroute"
exit 0
