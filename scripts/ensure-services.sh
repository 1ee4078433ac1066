#!/usr/bin/env bash
# Make sure the external programs the test suite uses (PostgreSQL, Mosquitto, NATS, jq) are installed.
#
# The tests start their own throwaway servers on loopback, so this script only installs Debian packages;
# it never starts a service, and it stops any system service that a package installed here started
# anyway. Idempotent: when everything is present it prints nothing and exits 0 at once.
set -euo pipefail

log() { printf 'ensure-services: %s\n' "$*" >&2; }

have_postgres() {
    # pg_config alone is not enough (libpq-dev ships it): the tests need initdb and postgres.
    local dir
    if command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir 2>/dev/null || true)"
        [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/postgres" ]] && return 0
    fi
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/initdb" && -x "$dir/postgres" ]] && return 0
    done
    return 1
}

# /usr/sbin is not on a normal user's PATH on Debian, hence the explicit paths.
have_mosquitto() { command -v mosquitto >/dev/null 2>&1 || [[ -x /usr/sbin/mosquitto ]]; }
have_nats() { command -v nats-server >/dev/null 2>&1 || [[ -x /usr/sbin/nats-server ]]; }

missing=()
have_postgres || missing+=(postgresql)
have_mosquitto || missing+=(mosquitto)
have_nats || missing+=(nats-server)
# The README quick start (run as a test) picks fields out of --json output with jq.
command -v jq >/dev/null 2>&1 || missing+=(jq)
((${#missing[@]} == 0)) && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    log "missing: ${missing[*]}; no apt-get here, install them with your package manager."
    exit 1
fi
SUDO=()
if ((EUID != 0)); then
    if ! command -v sudo >/dev/null 2>&1; then
        log "missing: ${missing[*]}; run as root or install sudo:"
        log "  apt-get install --no-install-recommends ${missing[*]}"
        exit 1
    fi
    SUDO=(sudo)
fi

# Packages' maintainer scripts start their service through invoke-rc.d/deb-systemd-invoke, which ask
# policy-rc.d first; exit 101 ("forbidden") keeps a system broker off port 1883 and a cluster off 5432.
# An existing policy (Docker images ship one) is left untouched.
POLICY=/usr/sbin/policy-rc.d
own_policy=0
cleanup() {
    if ((own_policy)); then
        "${SUDO[@]}" rm -f "$POLICY"
    fi
    if [[ -n "${apt_log:-}" ]]; then
        rm -f "$apt_log"
    fi
}
trap cleanup EXIT
if [[ ! -e "$POLICY" ]]; then
    printf '#!/bin/sh\n# Temporary, from instamsg scripts/ensure-services.sh\nexit 101\n' |
        "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    own_policy=1
fi

log "installing ${missing[*]} (Debian packages)"
apt_log="$(mktemp)"
# apt's output is only interesting when it fails.
# DPkg::Lock::Timeout: wait for an apt run already in progress (unattended-upgrades) instead of failing.
if ! { "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq &&
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
        install -y -qq --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    log "apt-get failed"
    exit 1
fi

# Belt and braces: if a service started anyway (policy-rc.d ignored), stop it. Only services of the
# packages installed just now are touched; a developer's own, older services are left alone.
for pkg in "${missing[@]}"; do
    case "$pkg" in
        postgresql) units=(postgresql) pidfiles=(/run/postgresql/*.pid) ;;
        mosquitto) units=(mosquitto) pidfiles=(/run/mosquitto/mosquitto.pid) ;;
        nats-server) units=(nats-server) pidfiles=(/run/nats-server/*.pid) ;;
        *) continue ;;
    esac
    if [[ -d /run/systemd/system ]]; then
        for unit in "${units[@]}"; do
            if systemctl is-active --quiet "$unit" 2>/dev/null; then
                log "stopping the system service $unit started by the package"
                "${SUDO[@]}" systemctl stop "$unit" || true
            fi
        done
    fi
    for pidfile in "${pidfiles[@]}"; do
        [[ -f "$pidfile" ]] || continue
        for unit in "${units[@]}"; do
            if [[ -x "/etc/init.d/$unit" ]]; then
                log "stopping the system service $unit started by the package"
                "${SUDO[@]}" "/etc/init.d/$unit" stop >/dev/null 2>&1 || true
            fi
        done
    done
done

still=()
have_postgres || still+=(postgresql)
have_mosquitto || still+=(mosquitto)
have_nats || still+=(nats-server)
if ((${#still[@]} != 0)); then
    log "still missing after apt-get install: ${still[*]}"
    exit 1
fi
log "ready"
