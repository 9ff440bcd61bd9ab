#!/usr/bin/env bash
# Provide the servers the test suite needs, on loopback only:
#   PostgreSQL 127.0.0.1:5432 (trust, database test), MariaDB 127.0.0.1:3306 (root, no password,
#   database test), and the OpenSSH sshd and vsftpd binaries (tests start their own sshd and vsftpd
#   on free ports, with throw-away configurations).
# Servers that already answer are left alone; missing ones are installed with apt and started.
set -euo pipefail

answers() { # host port
  python3 - "$1" "$2" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
except OSError:
    sys.exit(1)
PY
}

apt_ready=""
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "test-servers: need root to apt-get install $*" >&2
    return 1
  fi
  if [ -z "$apt_ready" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_ready=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! answers 127.0.0.1 5432; then
  echo "test-servers: PostgreSQL is not answering; installing and starting it"
  command -v pg_ctlcluster >/dev/null || apt_install postgresql postgresql-client
  version=$(ls /etc/postgresql | sort -n | tail -1)
  conf=/etc/postgresql/$version/main
  sed -i "s/^#\?listen_addresses.*/listen_addresses = '127.0.0.1'/" "$conf/postgresql.conf"
  cat > "$conf/pg_hba.conf" <<'HBA'
local all all trust
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
HBA
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 30); do answers 127.0.0.1 5432 && break; sleep 1; done
  su postgres -c "psql -qc \"CREATE ROLE root SUPERUSER LOGIN\"" 2>/dev/null || true
  su postgres -c "createdb -O root test" 2>/dev/null || true
fi
command -v pg_dump >/dev/null || apt_install postgresql-client

if ! answers 127.0.0.1 3306; then
  echo "test-servers: MariaDB is not answering; installing and starting it"
  command -v mariadbd >/dev/null || apt_install mariadb-server mariadb-client
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --bind-address=127.0.0.1
  for _ in $(seq 30); do answers 127.0.0.1 3306 && break; sleep 1; done
  mariadb -uroot -e "CREATE DATABASE IF NOT EXISTS test" || true
fi
command -v mariadb-dump >/dev/null || command -v mysqldump >/dev/null || apt_install mariadb-client

[ -x /usr/sbin/sshd ] || apt_install openssh-server
if [ ! -x /usr/sbin/vsftpd ]; then
  # Only the binary is wanted: the package's own service (port 21 on every address) is not started.
  apt_install vsftpd
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now vsftpd >/dev/null 2>&1 || true
  elif command -v invoke-rc.d >/dev/null; then
    invoke-rc.d vsftpd stop >/dev/null 2>&1 || true
  fi
fi
echo "test-servers: PostgreSQL, MariaDB, sshd and vsftpd are available"
