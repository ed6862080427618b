#!/usr/bin/env bash
# Builds the Debian package raftkv_<version>_<arch>.deb from built binaries, in the shape of
# Debian's etcd-server: /usr/bin/raftkv and raftkvctl, the systemd unit
# (contrib/raftkv.service), /etc/default/raftkv (a conffile), and maintainer scripts that make
# a `raftkv` system user owning /var/lib/raftkv (contrib/debian/).
#
# dpkg-deb rather than cargo-deb: the package is six files and four scripts, dpkg-deb and
# dpkg-shlibdeps (the dependencies, from the binaries' libraries) are on every Debian machine,
# and nothing has to be built or installed first.
#
# usage: scripts/build-deb.sh BIN_DIR OUT_DIR [COMPRESSION]
#   BIN_DIR      where raftkv and raftkvctl are (e.g. $CARGO_TARGET_DIR/release)
#   OUT_DIR      where the .deb goes; its path is printed
#   COMPRESSION  dpkg-deb's -Z: xz (the default), gzip, or none (fast, for tests)
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir=${1:?usage: scripts/build-deb.sh BIN_DIR OUT_DIR [COMPRESSION]}
out_dir=${2:?usage: scripts/build-deb.sh BIN_DIR OUT_DIR [COMPRESSION]}
compression=${3:-xz}

command -v dpkg-shlibdeps > /dev/null || { echo "build-deb: needs dpkg-shlibdeps (apt-get install dpkg-dev)" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/raftkv

install -D -m 755 "$bin_dir/raftkv" "$root/usr/bin/raftkv"
install -D -m 755 "$bin_dir/raftkvctl" "$root/usr/bin/raftkvctl"
install -D -m 644 contrib/raftkv.service "$root/lib/systemd/system/raftkv.service"
install -D -m 644 contrib/debian/default "$root/etc/default/raftkv"
install -D -m 644 README.md "$root/usr/share/doc/raftkv/README.md"
cat > "$root/usr/share/doc/raftkv/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: raftkv

Files: *
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF

mkdir -p "$root/DEBIAN"
install -m 755 contrib/debian/postinst contrib/debian/prerm contrib/debian/postrm "$root/DEBIAN/"
echo /etc/default/raftkv > "$root/DEBIAN/conffiles"

# dpkg-shlibdeps reads the package name from a debian/control beside it.
mkdir -p "$stage/debian"
printf 'Source: raftkv\n\nPackage: raftkv\nArchitecture: any\n' > "$stage/debian/control"
depends=$(cd "$stage" && dpkg-shlibdeps -O -e raftkv/usr/bin/raftkv -e raftkv/usr/bin/raftkvctl 2> /dev/null \
    | sed -n 's/^shlibs:Depends=//p')
installed_kib=$(du -sk --exclude=DEBIAN "$root" | cut -f1)

cat > "$root/DEBIAN/control" <<EOF
Package: raftkv
Version: $version
Architecture: $arch
Maintainer: raftkv developers <raftkv-dev@localhost>
Installed-Size: $installed_kib
Depends: ${depends:+$depends, }adduser
Section: database
Priority: optional
Description: etcd-compatible, Raft-replicated key-value store
 raftkv serves etcd 3.4's v3 API (gRPC and the JSON gateway) on one port, replicated with
 Raft on RocksDB, as a synchronous, threaded Rust program. etcdctl, clientv3 and Kubernetes
 talk to it unchanged; it reads etcd's flags, ETCD_* variables and config file.
EOF

mkdir -p "$out_dir"
deb="$out_dir/raftkv_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"$compression" --build "$root" "$deb" > /dev/null
echo "$deb"
