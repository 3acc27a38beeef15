#!/usr/bin/env bash
# Installs the Debian packages that tests/deploy.rs and tests/proxy.rs run: systemd
# (systemd-analyze, systemctl --root), nginx, caddy and openssl. Only what is missing; the
# packages' services are not needed (the tests start their own nginx and Caddy).
set -euo pipefail

need=()
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v caddy >/dev/null 2>&1 || need+=(caddy)
if [[ ${#need[@]} -eq 0 ]]; then
	echo "proxy-deps: systemd-analyze, openssl, nginx and caddy are installed"
	exit 0
fi
echo "proxy-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
