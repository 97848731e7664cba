#!/usr/bin/env bash
# Installs a zfw .deb, runs what it installed, checks its systemd units,
# then purges it and checks that nothing is left; checks that the .rpm
# holds the same files. Needs root.
set -euo pipefail
deb=${1:?usage: check.sh zfw_VERSION_amd64.deb zfw-VERSION.x86_64.rpm}
rpm=${2:?usage: check.sh zfw_VERSION_amd64.deb zfw-VERSION.x86_64.rpm}
installed=(
	/opt/openziti/bin/zfw /opt/openziti/bin/edge-router /opt/openziti/bin/ziti-tunnel
	/usr/sbin/zfw
	/usr/lib/systemd/system/zfw-router.service /usr/lib/systemd/system/zfw-tunnel.service
	/etc/default/zfw-router /etc/default/zfw-tunnel
	/opt/openziti/share/doc/zfw/operators.md /opt/openziti/share/doc/zfw/security.md
)
fail() { echo "package check: $*" >&2; exit 1; }

if dpkg -s zfw >/dev/null 2>&1; then
	fail "a zfw package is installed already; remove it first (dpkg --purge zfw)"
fi
for f in "${installed[@]}"; do
	[[ ! -e $f ]] || fail "$f exists before the install: this check would remove it"
done
work=$(mktemp -d)
trap 'dpkg --purge zfw >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

dpkg -i "$deb"
for f in "${installed[@]}"; do
	[[ -e $f ]] || fail "the package did not install $f"
done

/opt/openziti/bin/zfw -V | grep -q '^zfw ' || fail "zfw -V"
zfw -V >/dev/null || fail "zfw -V from the PATH"
# edge-router check reads a config as the unit's ExecStartPre does.
cat >"$work/ebpf_config.json" <<'JSON'
{"InternalInterfaces": [{"Name": "lo"}], "ExternalInterfaces": []}
JSON
/opt/openziti/bin/edge-router check --config "$work/ebpf_config.json" | tee "$work/check.out"
grep -q 'lo' "$work/check.out" || fail "edge-router check did not name lo"
if /opt/openziti/bin/edge-router check --config "$work/none.json" 2>/dev/null; then
	fail "edge-router check accepted a missing config"
fi

# The units as systemd reads them, with the programs they name.
systemd-analyze verify /usr/lib/systemd/system/zfw-router.service /usr/lib/systemd/system/zfw-tunnel.service

dpkg --purge zfw
for f in "${installed[@]}"; do
	[[ ! -e $f && ! -L $f ]] || fail "$f is left after the package was purged"
done
for d in /opt/openziti/bin /opt/openziti/share/doc/zfw; do
	if [[ -d $d ]] && [[ -n $(ls -A "$d") ]]; then
		fail "$d is left with: $(ls -A "$d")"
	fi
done

# The .rpm: the same files, the units and settings as the .deb's, and its
# scripts; rpm reads it without installing (this machine is Debian).
rpm -qp --queryformat '%{NAME} %{VERSION}\n' "$rpm"
listed=$(rpm -qlp "$rpm")
for f in "${installed[@]}"; do
	grep -qx "$f" <<<"$listed" || fail "the rpm does not hold $f"
done
rpm -qcp "$rpm" | grep -qx /etc/default/zfw-router || fail "the rpm's /etc/default/zfw-router is not a config file"
rpm -qp --scripts "$rpm" | grep -q 'systemctl daemon-reload' || fail "the rpm has no install scripts"
echo "package check: installed, ran, verified and purged $deb; $rpm holds the same files"
