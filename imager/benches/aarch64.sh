#!/usr/bin/env bash
# aarch64 next to x86_64: warm `kiln build` time (median of 3), image and root sizes, and
# QEMU start → `ready` under the local accelerator (TCG for aarch64 on an x86_64 host:
# qemu-system-aarch64 -M virt -cpu cortex-a57 with AAVMF; x86_64: q35 + OVMF) of the
# built-in node for both architectures (and aarch64 with `--layout mbr`), built by the same
# kiln binary. Prints the figures
# and rewrites the aarch64 section of BENCHMARKS.md. Usage: imager/benches/aarch64.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${BENCH_DIR:-$PWD/target/bench-aarch64}
rm -rf "$W"; mkdir -p "$W"
cargo build -j2 --release -p kiln-imager -p qemu-tests >/dev/null
KILN=target/release/kiln
declare -A build size sq ready
for arch in x86_64 aarch64 aarch64-mbr; do
  args=(--arch "${arch%-mbr}")
  [[ $arch == *-mbr ]] && args+=(--layout mbr)
  "$KILN" build -q "${args[@]}" --out "$W/$arch" >/dev/null   # primes the cache
  ts=()
  for i in 1 2 3; do
    t0=$(date +%s.%N); "$KILN" build -q "${args[@]}" --out "$W/$arch" >/dev/null; t1=$(date +%s.%N)
    ts+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')")
  done
  build[$arch]=$(printf '%s\n' "${ts[@]}" | sort -n | sed -n 2p)
  size[$arch]=$(( $(stat -c %s "$W/$arch/kiln-node.qcow2") >> 20 ))
  raw=$W/$arch/kiln-node.raw
  sq[$arch]=$(( $(stat -c %b "$raw") * 512 >> 20 ))
  echo "== boot $arch"
  ready[$arch]=$(KILN_BOOT_ARCH=${arch%-mbr} target/release/kiln-boot "$W/$arch/kiln-node.qcow2" |
    grep '"ready_s"' | sed -n 's/.*"ready_s":\([0-9.]*\).*/\1/p')
done
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
section=$(python3 - "${build[x86_64]}" "${build[aarch64]}" "${size[x86_64]}" "${size[aarch64]}" \
  "${sq[x86_64]}" "${sq[aarch64]}" "${ready[x86_64]}" "${ready[aarch64]}" "$(nproc)" "$cpu" \
  "${build[aarch64-mbr]}" "${size[aarch64-mbr]}" "${sq[aarch64-mbr]}" "${ready[aarch64-mbr]}" \
  "$(free -g | awk '/Mem:/{print $2}')" <<'PY'
import sys, datetime
bx, ba, qx, qa, rx, ra, tx, ta, ncpu, cpu, bm, qm, rm, tm, ram = sys.argv[1:]
print(f"""## aarch64: build, size and boot next to x86_64

Measured {datetime.date.today()} on {ncpu} cores ({cpu}), {ram} GiB RAM, by `imager/benches/aarch64.sh`.

Method. One release `kiln` (carrying both inits) builds the built-in node with `--arch x86_64` and
`--arch aarch64` (Debian trixie amd64/arm64 packages); build = warm cache, median of 3 runs.
Boot = `kiln-boot`: QEMU start → `ready`, x86_64 under q35 + OVMF, aarch64 under
`-M virt -cpu cortex-a57` + AAVMF, both TCG on this x86_64 host (aarch64 is fully emulated;
x86_64 is TCG too because KVM does not work here). One boot each. "aarch64 mbr" is the same
aarch64 build with `--layout mbr` (first boot grows KILN-STATE in the MBR).

| figure | x86_64 | aarch64 | ratio aarch64/x86_64 | aarch64 mbr | ratio mbr/gpt |
|---|---|---|---|---|---|
| warm build (s) | {bx} | {ba} | {float(ba)/float(bx):.2f} | {bm} | {float(bm)/float(ba):.2f} |
| qcow2 (MiB) | {qx} | {qa} | {int(qa)/int(qx):.2f} | {qm} | {int(qm)/int(qa):.2f} |
| raw, allocated (MiB) | {rx} | {ra} | {int(ra)/int(rx):.2f} | {rm} | {int(rm)/int(ra):.2f} |
| QEMU start → ready (s) | {tx} | {ta} | {float(ta)/float(tx):.2f} | {tm} | {float(tm)/float(ta):.2f} |""")
PY
)
echo "$section"
echo "$section" | imager/benches/section.py 'aarch64: '
