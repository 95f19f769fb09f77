#!/usr/bin/env bash
# Imager benchmark: cold and warm `kiln build` of the built-in node image, peak RSS, image
# sizes, QEMU start → `ready` under the local accelerator, and the mkosi peer's warm build
# of the same package set in the same run. Prints the figures and rewrites the imager
# section of BENCHMARKS.md. Usage (as root, for the mkosi peer): imager/benches/build.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${BENCH_DIR:-$PWD/target/bench-imager}
PEER=${PEER_DIR:-$PWD/../shared/peers/mkosi}
rm -rf "$W"; mkdir -p "$W"
cargo build -j2 --release -p kiln-imager -p qemu-tests >/dev/null
KILN=target/release/kiln
t() { /usr/bin/time -f '%e %M' -o "$W/$1.time" "${@:2}" >"$W/$1.log" 2>&1; cat "$W/$1.time"; }

echo "== kiln cold (empty cache)"
read -r cold cold_rss < <(XDG_CACHE_HOME="$W/cache" t cold "$KILN" build -q --out "$W/out")
echo "== kiln warm (full cache) x3"
warm=()
for i in 1 2 3; do
  read -r s rss < <(XDG_CACHE_HOME="$W/cache" t "warm$i" "$KILN" build -q --out "$W/out")
  warm+=("$s"); warm_rss=$rss
done
warm_med=$(printf '%s\n' "${warm[@]}" | sort -n | sed -n 2p)
raw=$W/out/kiln-node.raw; q=$W/out/kiln-node.qcow2
raw_used=$(( $(stat -c %b "$raw") * 512 )); qsize=$(stat -c %s "$q")
sq=$(grep -o 'squashfs [0-9.]* MiB' "$W/warm3.log" | awk '{print $2}')
echo "== boot to ready"
bootline=$(target/release/kiln-boot "$q" | grep '"ready_s"')
boot=$(echo "$bootline" | sed -n 's/.*"ready_s":\([0-9.]*\).*/\1/p')
accel=$(echo "$bootline" | sed -n 's/.*"accel":"\([A-Za-z]*\)".*/\1/p')

mk=skipped; ratio="n/a"
if [ -x "$PEER/build.sh" ] && [ "$(id -u)" = 0 ]; then
  echo "== mkosi peer: cold (primes its package cache), then warm"
  "$PEER/build.sh" "$W/mkosi" cold -f >/dev/null
  mk=$("$PEER/build.sh" "$W/mkosi" warm -f | sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' |
       awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  ratio=$(awk -v a="$mk" -v b="$warm_med" 'BEGIN{printf "%.1f", a/b}')
fi
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
table=$(cat <<T
## Imager: \`kiln build\` (default node image)

Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($cpu), $(free -g | awk '/Mem:/{print $2}') GiB RAM, by \`imager/benches/build.sh\`.
Method: release build of kiln; cold = empty download cache; warm = full cache (median of 3);
wall time and peak RSS from /usr/bin/time; boot = QEMU start → \`ready\` event ($accel as the
harness chose it: KVM only where a probe boot works; OVMF, 2 vCPU, 1 GiB); peer = Debian's mkosi (shared/peers/mkosi) on the same package set, warm
package cache, same run.

| figure | kiln | mkosi (peer) |
|---|---|---|
| cold build | ${cold} s | |
| warm build | ${warm_med} s (runs: ${warm[*]}) | ${mk} s |
| warm ratio (mkosi / kiln) | **${ratio}×** | |
| peak RSS (cold / warm) | $((cold_rss/1024)) / $((warm_rss/1024)) MiB | |
| raw image, allocated | $((raw_used/1048576)) MiB of 2048 MiB | |
| qcow2 | $((qsize/1048576)) MiB | |
| squashfs root | ${sq} MiB | |
| QEMU start → ready | ${boot} s | |
T
)
echo "$table"
echo "$table" | imager/benches/section.py 'Imager: '
