#!/usr/bin/env bash
# PXE benchmark: `kiln build --format qcow2,pxe` of the built-in node, then
#  - boot: host seconds from QEMU start to `ready` for 1 and for 3 diskless VMs booted at
#    once (SeaBIOS → iPXE ROM → TFTP chain script → HTTP kernel/initrd → stage 1 downloads
#    and checks root.squashfs), next to the same image booted from its qcow2 disk (UEFI);
#  - server: root.squashfs downloads per second on loopback, 4 clients (curl) at a time,
#    `kiln pxe serve` (release) next to `python3 -m http.server` on the same folder.
# Prints the figures and rewrites the PXE section of BENCHMARKS.md.
# Usage: imager/benches/pxe.sh   [PXE_BENCH_DOWNLOADS=40]
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${BENCH_DIR:-$PWD/target/bench-pxe}
N=${PXE_BENCH_DOWNLOADS:-40}
rm -rf "$W"; mkdir -p "$W"
cargo build -j2 --release -p kiln-imager -p qemu-tests >/dev/null
KILN=target/release/kiln
"$KILN" build -q --format qcow2,pxe --out "$W/out" >"$W/build.log"
B=$W/out
root_mib=$(( $(stat -c %s "$B/root.squashfs") >> 20 ))
load0=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== PXE boots: 1 node, then 3 at once"
PXE_BENCH_BUNDLE=$B PXE_BENCH_OUT=$W/boot.json \
  cargo test -j2 --release -p qemu-tests --test pxe -- --ignored --nocapture pxe_bench
echo "== disk boot of the same image"
disk=$(target/release/kiln-boot "$B"/*.qcow2 | grep '"ready_s"' | sed -n 's/.*"ready_s":\([0-9.]*\).*/\1/p')

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Prints "<downloads/s> <MiB/s>" for N downloads of root.squashfs, 4 at a time, from port $1.
throughput() {
  local port=$1 t0 t1
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/boot.ipxe" && break; sleep 0.1; done
  t0=$(date +%s.%N)
  seq "$N" | xargs -P4 -I{} curl -sf -o /dev/null "http://127.0.0.1:$port/root.squashfs"
  t1=$(date +%s.%N)
  awk -v n="$N" -v a="$t0" -v b="$t1" -v m="$root_mib" 'BEGIN{printf "%.2f %.0f\n", n/(b-a), n*m/(b-a)}'
}
echo "== server throughput: kiln pxe serve"
p=$(free_port); "$KILN" pxe serve --dir "$B" --listen "127.0.0.1:$p" 2>"$W/serve.log" & sp=$!
read -r kd km < <(throughput "$p"); kill "$sp"; wait "$sp" 2>/dev/null || true
echo "== server throughput: python3 -m http.server (peer)"
p=$(free_port); python3 -m http.server "$p" --bind 127.0.0.1 --directory "$B" 2>"$W/py.log" >/dev/null & pp=$!
read -r pd pm < <(throughput "$p"); kill "$pp"; wait "$pp" 2>/dev/null || true
load1=$(cut -d' ' -f1-3 /proc/loadavg)
logged=$(grep -c 'GET /root.squashfs 200' "$W/serve.log" || true)

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
section=$(python3 - "$W/boot.json" "$disk" "$kd" "$km" "$pd" "$pm" "$N" "$root_mib" "$logged" \
  "$(nproc)" "$cpu" "$(free -g | awk '/Mem:/{print $2}')" "$load0" "$load1" <<'PY'
import json, sys, datetime
r = json.load(open(sys.argv[1]))
disk, kd, km, pd, pm, n, mib, logged, ncpu, cpu, ram, l0, l1 = sys.argv[2:]
runs = {x["nodes"]: x for x in r["runs"]}
one, three = runs[1], runs[3]
f = lambda xs: " / ".join(f"{x:.1f}" for x in xs)
print(f"""## PXE: diskless boot to ready, and the bundle server

Measured {datetime.date.today()} on {ncpu} cores ({cpu}), {ram} GiB RAM, by `imager/benches/pxe.sh`;
accelerator {r['accel']}; load average {l0} before, {l1} after.

Method. `kiln build --format qcow2,pxe` of the built-in node (root.squashfs {mib} MiB). Boot: each VM
is QEMU (1536 MiB, 2 vCPUs, no disk) with SeaBIOS and the virtio NIC's iPXE ROM; QEMU's user
networking serves a two-line chain script over its TFTP (`tftp=`, `bootfile=`) that sets
`kiln-base` to one `kiln pxe serve` (library, same code as the CLI) and chains boot.ipxe; iPXE
loads vmlinuz and initrd over HTTP, stage 1 runs DHCP, downloads root.squashfs into RAM, checks
its sha256 and mounts it through a loop device. Figure = host clock from QEMU start to the node's
`ready` event (polled every 0.1 s); the 3-node run starts all three at once on this 2-core host.
The same image booted from its qcow2 disk (UEFI/OVMF, `kiln-boot`) is the reference; no peer is
named in the issue for PXE. Server: {n} downloads of root.squashfs, 4 curl clients at a time,
over loopback, `kiln pxe serve` (release build) and then `python3 -m http.server` (the ad-hoc
server people reach for) on the same folder.

| figure | value |
|---|---|
| PXE, 1 node: QEMU start → ready (s) | {one['ready_s'][0]:.1f} (root download {one['root_fetch_s'][0]:.1f} s) |
| PXE, 3 nodes at once: QEMU start → ready (s, per node) | {f(three['ready_s'])} (root downloads {f(three['root_fetch_s'])} s) |
| disk boot of the same image (UEFI): QEMU start → ready (s) | {float(disk):.1f} |
| ratio PXE 1 node / disk boot | {one['ready_s'][0] / float(disk):.2f} |
| `kiln pxe serve`: root.squashfs downloads/s (MiB/s) | {kd} ({km}) |
| `python3 -m http.server`: downloads/s (MiB/s) | {pd} ({pm}) |
| ratio kiln / python | {float(kd) / float(pd):.1f} |

The server logged {logged} of the {n} root downloads as `GET /root.squashfs 200` (one access-log line each).""")
PY
)
echo "$section"
echo "$section" | imager/benches/section.py 'PXE: '
