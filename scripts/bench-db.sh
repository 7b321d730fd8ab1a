# Private database servers for the live benchmarks (sourced, not run: bench-binlog.sh,
# bench-latency.sh). Both trade durability for speed — MariaDB with
# innodb_flush_log_at_trx_commit=2 and sync_binlog=0, PostgreSQL with fsync=off — so the
# 2-core box measures fundguard rather than fsync.

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_mariadb() { # dir port: MariaDB on 127.0.0.1:port, ROW binlog with FULL images and metadata; data and log in dir
    local dir=$1 port=$2
    mariadb-install-db --no-defaults --datadir="$dir/db" --user=root --auth-root-authentication-method=normal >/dev/null
    mariadbd --no-defaults --datadir="$dir/db" --user=root --port="$port" --bind-address=127.0.0.1 \
        --socket="$dir/db.sock" --pid-file="$dir/db.pid" --log-bin=mysql-bin --binlog-format=ROW --server-id=1 \
        --binlog-row-image=FULL --binlog-row-metadata=FULL --innodb-flush-log-at-trx-commit=2 --sync-binlog=0 \
        --innodb-buffer-pool-size=1G --max-binlog-size=1G 2> "$dir/db.log" &
    for _ in $(seq 60); do mariadb -h127.0.0.1 -P"$port" -uroot -e 'SELECT 1' >/dev/null 2>&1 && return; sleep 0.5; done
    echo "MariaDB did not start:" >&2; cat "$dir/db.log" >&2; return 1
}

stop_mariadb() { # dir
    [ -f "$1/db.pid" ] && kill "$(cat "$1/db.pid")" 2>/dev/null || true
}

start_postgres() { # dir port: PostgreSQL 15 on 127.0.0.1:port, wal_level=logical, wal2json allowed; runs as `postgres`
    local dir=$1 port=$2
    mkdir -p "$dir/pg"
    chown postgres "$dir/pg"
    chmod a+x "$dir"
    runuser -u postgres -- initdb -D "$dir/pg/data" -A trust -U postgres >/dev/null
    runuser -u postgres -- pg_ctl -D "$dir/pg/data" -l "$dir/pg/server.log" -w start -o "-p $port -k $dir/pg \
        -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10 \
        -c output_plugin_libraries='pgoutput, test_decoding, wal2json' -c fsync=off -c shared_buffers=1GB" >/dev/null
}

stop_postgres() { # dir
    [ -d "$1/pg/data" ] && runuser -u postgres -- pg_ctl -D "$1/pg/data" -m immediate stop >/dev/null 2>&1 || true
}
