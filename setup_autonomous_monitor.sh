#!/usr/bin/env bash
# Install Autonomiq Monitor as a systemd service (run with sudo from the checkout). Idempotent:
# running it twice gives the same result.
#
#   sudo ./setup_autonomous_monitor.sh              install or update
#   sudo ./setup_autonomous_monitor.sh --uninstall  remove the service, rule, venv and user;
#                                                   .env, data/ and logs/ are kept
#
# Environment: SERVICE_USER (default autonomiq-monitor), PYTHON (default python3).
# SETUP_ROOT=/some/dir stages the install for a test: files are written below that folder and
# commands that change the system (useradd, chown, pip, systemctl) are printed, not run.
set -euo pipefail

UNIT_NAME="autonomiq-autonomous-monitor.service"
TEMPLATE_DIR="/opt/autonomiq-monitor"
TEMPLATE_USER="autonomiq-monitor"
SERVICE_USER="${SERVICE_USER:-autonomiq-monitor}"
PYTHON="${PYTHON:-python3}"
SETUP_ROOT="${SETUP_ROOT:-}"
INSTALL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
UNIT_PATH="$SETUP_ROOT/etc/systemd/system/$UNIT_NAME"
VENV_MARK=".created-by-setup"
DROPIN_PATH="$UNIT_PATH.d/10-pipeline-paths.conf"
RULE_PATH="$SETUP_ROOT/etc/polkit-1/rules.d/50-autonomiq-monitor.rules"

die() { printf 'setup_autonomous_monitor: %s\n' "$*" >&2; exit 1; }
say() { printf '%s\n' "$*"; }

# Run a command that changes the system, or print it when staging.
run() {
    if [[ -n "$SETUP_ROOT" ]]; then
        printf '+ %s\n' "$*"
    else
        "$@"
    fi
}

preflight() {
    [[ -d "$SETUP_ROOT/run/systemd/system" ]] ||
        die "this machine is not running systemd (no /run/systemd/system): install the service on a systemd host, or run 'python autonomous_monitor.py run' under your own supervisor"
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: install Python 3.11 or newer (or set PYTHON=/path/to/python3.11)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$("$PYTHON" -V 2>&1) is too old: Autonomiq Monitor needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)"
    if [[ -z "$SETUP_ROOT" && "$(id -u)" -ne 0 ]]; then
        die "run me with sudo: I create a user and install a systemd unit"
    fi
    case "$INSTALL_DIR" in
        /home/* | /root/* | /run/user/*)
            die "$INSTALL_DIR is hidden from the service (ProtectHome=yes): move the checkout to e.g. /opt/autonomiq-monitor" ;;
    esac
}

# Write a file only when its content changed (keeps re-runs quiet and idempotent).
put_file() {
    local target="$1" mode="$2" content="$3"
    mkdir -p "$(dirname "$target")"
    if [[ -f "$target" ]] && [[ "$(cat "$target")" == "$content" ]]; then
        say "unchanged: $target"
    else
        printf '%s\n' "$content" >"$target"
        say "wrote: $target"
    fi
    chmod "$mode" "$target"
}

# A setting of .env as the monitor reads it (its own reader: quotes and "# comments" mean the
# same here as for the daemon, which reads .env itself; the unit has no EnvironmentFile=).
env_value() {
    local name="$1"
    [[ -f "$INSTALL_DIR/.env" ]] || return 0
    (cd "$INSTALL_DIR" && PYTHONDONTWRITEBYTECODE=1 .venv/bin/python -m utils.env_file .env "$name") ||
        die "cannot read $name from $INSTALL_DIR/.env with $INSTALL_DIR/.venv/bin/python"
}

install_service() {
    if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
        run useradd --system --user-group --no-create-home --home-dir "$INSTALL_DIR" \
            --shell /usr/sbin/nologin "$SERVICE_USER"
    fi
    if [[ ! -x "$INSTALL_DIR/.venv/bin/python" ]]; then
        run "$PYTHON" -m venv "$INSTALL_DIR/.venv"
        run touch "$INSTALL_DIR/.venv/$VENV_MARK"
    fi
    run "$INSTALL_DIR/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$INSTALL_DIR/requirements.txt"
    run install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$INSTALL_DIR/data" "$INSTALL_DIR/logs"
    if [[ ! -f "$INSTALL_DIR/.env" ]]; then
        [[ -f "$INSTALL_DIR/.env.example" ]] || die "neither .env nor .env.example found in $INSTALL_DIR"
        install -m 0600 "$INSTALL_DIR/.env.example" "$INSTALL_DIR/.env"
        say "created $INSTALL_DIR/.env from .env.example: fill in the X API keys"
    fi
    chmod 0600 "$INSTALL_DIR/.env"
    run chown "$SERVICE_USER:$SERVICE_USER" "$INSTALL_DIR/.env"
    put_file "$UNIT_PATH" 0644 "$(sed -e "s#$TEMPLATE_DIR#$INSTALL_DIR#g" \
        -e "s#^User=$TEMPLATE_USER\$#User=$SERVICE_USER#" -e "s#^Group=$TEMPLATE_USER\$#Group=$SERVICE_USER#" \
        "$INSTALL_DIR/$UNIT_NAME")"
    install_paths_dropin
    install_polkit_rule
    run systemctl daemon-reload
    run systemctl enable "$UNIT_NAME"
    say "installed. Start it:  sudo systemctl start ${UNIT_NAME%.service}"
    say "watch it:            journalctl -u ${UNIT_NAME%.service} -f"
    say "after editing .env:  sudo systemctl reload ${UNIT_NAME%.service}"
}

# The pipeline's SQLite folder must be writable (the monitor updates its rows; WAL needs the
# folder), and pipeline files under /home must be visible: a drop-in says so, only when needed.
install_paths_dropin() {
    local db dir lines=() item
    db="$(env_value DATABASE_URL)"
    if [[ "$db" == sqlite:////* ]]; then
        dir="$(dirname "/${db#sqlite:////}")"
        [[ "$dir" == "$INSTALL_DIR/data" ]] || lines+=("ReadWritePaths=-$dir")
    fi
    for item in "$db" $(env_value PIPELINE_LOG_FILES | tr ',' ' ') "$(env_value SCHEDULER_HEARTBEAT_FILE)"; do
        case "$item" in
            */home/* | /root/*) lines+=("ProtectHome=read-only"); break ;;
        esac
    done
    if [[ ${#lines[@]} -eq 0 ]]; then
        rm -f "$DROPIN_PATH"
        return 0
    fi
    put_file "$DROPIN_PATH" 0644 "$(printf '[Service]\n'; printf '%s\n' "${lines[@]}")"
}

install_polkit_rule() {
    local unit
    unit="$(env_value SCHEDULER_SERVICE)"
    if [[ -z "$unit" ]]; then
        say "SCHEDULER_SERVICE is not set in .env: no polkit rule installed (re-run after setting it)"
        return 0
    fi
    [[ "$unit" == *.* ]] || unit="$unit.service"
    [[ "$unit" =~ ^[A-Za-z0-9:_.@-]+$ ]] || die "SCHEDULER_SERVICE=$unit is not a unit name"
    put_file "$RULE_PATH" 0644 "$(sed -e "s#@SCHEDULER_SERVICE@#$unit#g" -e "s#@SERVICE_USER@#$SERVICE_USER#g" \
        "$INSTALL_DIR/polkit/50-autonomiq-monitor.rules")"
}

uninstall_service() {
    if [[ -f "$UNIT_PATH" ]]; then
        run systemctl disable --now "$UNIT_NAME" || true
        rm -f "$UNIT_PATH" "$DROPIN_PATH"
        rmdir "$UNIT_PATH.d" 2>/dev/null || true
        say "removed: $UNIT_PATH"
    fi
    if [[ -f "$RULE_PATH" ]]; then
        rm -f "$RULE_PATH"
        say "removed: $RULE_PATH"
    fi
    run systemctl daemon-reload
    if [[ -f "$INSTALL_DIR/.venv/$VENV_MARK" ]]; then  # only a venv this script made
        run rm -rf "$INSTALL_DIR/.venv"
    fi
    if id -u "$SERVICE_USER" >/dev/null 2>&1; then
        run userdel "$SERVICE_USER"
    fi
    say "uninstalled; kept $INSTALL_DIR/.env, data/ and logs/"
}

main() {
    case "${1:-}" in
        "") preflight; install_service ;;
        --uninstall) preflight; uninstall_service ;;
        -h | --help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
        *) die "unknown option $1 (use --uninstall or --help)" ;;
    esac
}

main "$@"
