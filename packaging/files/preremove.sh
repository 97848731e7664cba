#!/bin/sh
# Stop the units before their programs go. On an upgrade (deb: "upgrade",
# rpm: $1 = 1) they keep running and restart with the new programs.
case "$1" in
upgrade | 1) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
	systemctl stop zfw-router.service zfw-tunnel.service >/dev/null 2>&1 || true
	systemctl disable zfw-router.service zfw-tunnel.service >/dev/null 2>&1 || true
fi
exit 0
