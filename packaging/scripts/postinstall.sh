#!/bin/sh
# After installing or upgrading symroute (deb: configure; rpm: 1 or 2): apply the host description when there is
# one. Applying never fails the package: symroute apply restores the previous files itself when the result does
# not verify, and an invalid description changes nothing.
#
# For image builders and tests: SYMROUTE_CONFIG (default /etc/symroute/host.yaml), SYMROUTE_ROOT (default /) and
# SYMROUTE_APPLY_ARGS (extra flags, e.g. --timeout 60s), from the environment or /etc/default/symroute.
set -e
case "$1" in configure|1|2) ;; *) exit 0 ;; esac

[ -r /etc/default/symroute ] && . /etc/default/symroute
config="${SYMROUTE_CONFIG:-/etc/symroute/host.yaml}"
root="${SYMROUTE_ROOT:-/}"

if command -v systemctl >/dev/null 2>&1; then
	# Undoes at boot, before networkd starts, a try left unconfirmed or a run the power cut.
	systemctl enable symroute-recover.service >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	systemctl enable --now symroute-verify.timer || true
fi

if [ ! -f "$config" ]; then
	echo "symroute: no $config, nothing applied. Write one (an example is in /usr/share/doc/symroute/examples/host.yaml, or run symroute discover > host.yaml), then run symroute apply."
	exit 0
fi

echo "symroute: applying $config"
status=0
# shellcheck disable=SC2086 # SYMROUTE_APPLY_ARGS is a list of flags
/usr/bin/symroute apply -c "$config" --root "$root" $SYMROUTE_APPLY_ARGS || status=$?
case $status in
0) echo "symroute: applied and verified." ;;
1) echo "symroute: $config was not applied (see above: refused, did not verify, or a try is waiting); the previous configuration is in place. Run symroute apply once the cause is fixed." ;;
2) echo "symroute: $config is invalid; nothing was changed. Fix it, then run symroute apply." ;;
*) echo "symroute: could not apply $config (exit status $status; see above). Run symroute apply once the cause is fixed." ;;
esac
exit 0
