#!/usr/bin/env bash
# Provide the servers the test suite needs, on loopback only:
#   PostgreSQL 127.0.0.1:5432 (trust, database test), MariaDB 127.0.0.1:3306 (root, no password,
#   database test), and the OpenSSH sshd, vsftpd and Pure-FTPd binaries (tests start their own on
#   free ports, with throw-away configurations; Pure-FTPd is unpacked into /opt/snapkeep-test), and
#   Debian's Chromium for the web panel's browser tests.
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
# Debian's Chromium for the web panel's browser tests (Playwright drives /usr/bin/chromium; no
# browser is ever downloaded by Playwright itself).
[ -x /usr/bin/chromium ] || apt_install chromium
# FTP servers: only the binaries are wanted (tests start their own on 127.0.0.1 with a throw-away
# configuration); the packages' own services (port 21 on every address) are stopped and disabled.
no_service() { # name
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now "$1" >/dev/null 2>&1 || true
  elif command -v invoke-rc.d >/dev/null; then
    invoke-rc.d "$1" stop >/dev/null 2>&1 || true
  fi
}
if [ ! -x /usr/sbin/vsftpd ]; then apt_install vsftpd; no_service vsftpd; fi
# Pure-FTPd (cPanel's FTP server, the one that lists with MLSD) conflicts with vsftpd as a Debian
# package (both are "ftp-server"): its binaries are unpacked from the package into PURE_FTPD_DIR,
# nothing is installed as a service. tests/ftp_servers.py looks there.
PURE_FTPD_DIR=/opt/snapkeep-test/pure-ftpd
if [ ! -x "$PURE_FTPD_DIR/usr/sbin/pure-ftpd" ]; then
  apt_install libsodium23 libcap2 libpam0g libssl3 libcrypt1
  unpack=$(mktemp -d)
  chown _apt "$unpack" 2>/dev/null || true  # apt downloads as _apt
  (cd "$unpack" && apt-get download -qq pure-ftpd)
  mkdir -p "$PURE_FTPD_DIR"
  dpkg-deb -x "$unpack"/pure-ftpd_*.deb "$PURE_FTPD_DIR"
  rm -rf "$unpack"
fi
echo "test-servers: PostgreSQL, MariaDB, sshd, vsftpd and pure-ftpd are available"
