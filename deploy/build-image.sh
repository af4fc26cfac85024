#!/usr/bin/env bash
# Builds the `swarmkeep:latest` image with no registry: a rootfs of
# busybox-static, our release binaries and the shared libraries they link,
# handed to `docker import`.
#
#   ./deploy/build-image.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /bin/busybox ]; then
  apt-get install -y busybox-static >/dev/null
fi
cargo build --release --bins

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,usr/local/bin,etc,tmp,run,var/lib/swarmkeep,lib64,lib/x86_64-linux-gnu}
cp /bin/busybox "$root/bin/busybox"
for tool in sh cat ls mkdir sleep echo grep cut sed test hostname ip ps kill rm; do
  ln -sf busybox "$root/bin/$tool"
done
for bin in swarmkeepd swarmkeep; do
  cp "target/release/$bin" "$root/usr/local/bin/$bin"
  # The shared libraries each binary links, at the same paths.
  ldd "target/release/$bin" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
cp deploy/node-entrypoint.sh "$root/usr/local/bin/node-entrypoint"
chmod +x "$root/usr/local/bin/node-entrypoint"
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/bin:/bin' \
  -c 'ENTRYPOINT ["/usr/local/bin/node-entrypoint"]' \
  - swarmkeep:latest
echo "built swarmkeep:latest"
