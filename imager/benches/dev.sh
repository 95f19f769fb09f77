#!/usr/bin/env bash
# `kiln dev` benchmark: wall time of `kiln dev up` (generate the cluster, start one QEMU per
# node, wait for every node's `ready`) for 1 control plane + 1 worker and for 3 control
# planes, and of `kiln dev down`, with the built-in node + Debian's etcd (control planes run
# etcd). Prints the figures and rewrites the "kiln dev" section of BENCHMARKS.md.
# Usage: imager/benches/dev.sh   [DEV_BENCH_ROUNDS=2]
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${BENCH_DIR:-$PWD/target/bench-dev}
R=${DEV_BENCH_ROUNDS:-2}
rm -rf "$W"; mkdir -p "$W/state"
cargo build -j2 --release -p kiln-imager >/dev/null
KILN=$PWD/target/release/kiln
sed 's/^  "dash",$/  "dash",\n  "etcd-server",\n  "etcd-client",/' imager/default-spec.toml >"$W/node.toml"
grep -q etcd-server "$W/node.toml" || { echo "default-spec.toml changed: no dash entry" >&2; exit 1; }
"$KILN" build -q --spec "$W/node.toml" --out "$W/out" >"$W/build.log"
img=$(ls "$W"/out/*.qcow2)
export XDG_STATE_HOME=$W/state
load0=$(cut -d' ' -f1-3 /proc/loadavg)
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >>"$W/dev.log" 2>&1; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}'; }
declare -a a b d
for i in $(seq "$R"); do
  echo "== round $i: 1 control plane + 1 worker"
  a+=("$(secs "$KILN" dev up --name bench --control-planes 1 --workers 1 --image "$img" --memory 1024)")
  d+=("$(secs "$KILN" dev down --name bench)")
  echo "== round $i: 3 control planes"
  b+=("$(secs "$KILN" dev up --name bench --control-planes 3 --workers 0 --image "$img" --memory 1024)")
  d+=("$(secs "$KILN" dev down --name bench)")
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
accel=$(grep -q 'using TCG' "$W/dev.log" && echo TCG || echo KVM)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
section=$(python3 - "${a[*]}" "${b[*]}" "${d[*]}" "$accel" "$(nproc)" "$cpu" \
  "$(free -g | awk '/Mem:/{print $2}')" "$load0" "$load1" <<'PY'
import sys, statistics, datetime
a, b, d = ([float(x) for x in s.split()] for s in sys.argv[1:4])
accel, ncpu, cpu, ram, l0, l1 = sys.argv[4:]
f = lambda xs: f"{min(xs):.1f} / {statistics.median(xs):.1f} / {max(xs):.1f}"
print(f"""## kiln dev: dev cluster up and down

Measured {datetime.date.today()} on {ncpu} cores ({cpu}), {ram} GiB RAM, by `imager/benches/dev.sh`;
accelerator {accel}; load average {l0} before, {l1} after; {len(a)} rounds.

Method. `kiln build` of the built-in node + Debian trixie etcd-server/etcd-client (control planes
run etcd), then the release `kiln dev up` as an ordinary command: `kiln cluster gen` in-process,
one qcow2 overlay, NoCloud seed and QEMU per node (1024 MiB, 2 vCPUs; an unprivileged UDP L2 hub;
user networking with 6443/2379 forwarded on control planes), until every node's `ready` event.
Wall clock of the whole command; all nodes share this 2-core host, so 3 nodes boot slower than
1+1. `down` = ACPI power-off of every node, waiting for the QEMUs to exit, removing the state.
No peer is named in the issue for this figure (kind, k3d and Talos' `talosctl cluster create`
need Docker or root and were not run here).

| figure (min / median / max, s) | value |
|---|---|
| `kiln dev up`, 1 control plane + 1 worker | {f(a)} |
| `kiln dev up`, 3 control planes | {f(b)} |
| `kiln dev down` (any of the above) | {f(d)} |""")
PY
)
echo "$section"
echo "$section" | imager/benches/section.py 'kiln dev: '
