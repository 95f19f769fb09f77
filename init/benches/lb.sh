#!/usr/bin/env bash
# Load-balancer benchmark: one client VM running Kiln's IPVS load balancer in front of two
# backend VMs (busybox httpd on :6443) on one unprivileged L2 hub, all under QEMU (TCG here).
# Measures, inside the client: requests/s through the VIP vs direct to a backend; failover
# (backend power cut → last request IPVS still sent to it) and recovery (backend ready →
# back in rotation) with Kiln's defaults and with lvscare's defaults modelled by the same
# load balancer (5 s interval, 10 s timeout, act on one probe); a soak with a healthy set
# (no transition allowed). Prints the figures and rewrites the LB section of BENCHMARKS.md.
# Usage: init/benches/lb.sh   [LB_SOAK_S=600 soak seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${BENCH_DIR:-$PWD/target/bench-lb}
mkdir -p "$W"
export LB_BENCH_OUT=$W/result.json LB_SOAK_S=${LB_SOAK_S:-600}
load0=$(cut -d' ' -f1-3 /proc/loadavg)
cargo test -j2 -p qemu-tests --test lb -- --ignored --nocapture lb_bench
load1=$(cut -d' ' -f1-3 /proc/loadavg)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
section=$(python3 - "$LB_BENCH_OUT" "$(nproc)" "$cpu" "$(free -g | awk '/Mem:/{print $2}')" "$load0" "$load1" <<'PY'
import json, sys, statistics, datetime
r = json.load(open(sys.argv[1])); ncpu, cpu, ram, l0, l1 = sys.argv[2:]
vip, direct = statistics.median(r["vip_rps"]), statistics.median(r["direct_rps"])
vb, db = statistics.median(r["vip_mib_s"]), statistics.median(r["direct_mib_s"])
k, l = r["kiln"], r["lvscare_model"]
print(f"""## Load balancer: failover, recovery, throughput (vs lvscare's defaults)

Measured {datetime.date.today()} on {ncpu} cores ({cpu}), {ram} GiB RAM, by `init/benches/lb.sh`;
accelerator {r['accel']}; load average {l0} before, {l1} after.

Method. Three VMs from one `kiln build` image (+ Debian's ipvsadm and busybox) on an L2 hub
(`qemu_tests::hub`, QEMU dgram netdevs): a client running Kiln's load balancer (route mode,
VIP 10.103.97.2:6443, rr, HTTP /healthz checks) and two backends serving /healthz and /id with
busybox httpd. Throughput, 5 alternating rounds: 100 sequential `busybox wget` of a tiny /id
(each a new process and TCP connection: connection rate) and 2 downloads of a 16 MiB file (one
connection: bulk rate), through the VIP and direct to one backend. Failover and recovery: a probe
loop in the client starts, every 0.1 s and each in the background, one request through the VIP
and one straight to the second backend (1 s timeouts), logging the client's clock; that
backend's QEMU is killed (power cut) and later booted again. Failover = from its last direct
answer to the last VIP request IPVS still sent to it (failed); recovery = from its first direct
answer after the restart to its first answer through the VIP. The lvscare row is the same load
balancer reloaded with lvscare's defaults (interval 5 s, timeout 10 s, rise 1, fall 1) — a model
of its timing, not lvscare itself. Soak: {r['soak_s']} s with both backends healthy and Kiln's
defaults; every `lb_backend` event counts as a false transition.

| figure | Kiln (1 s / 1 s, rise 2, fall 2) | lvscare model (5 s / 10 s, 1 / 1) | lvscare / Kiln |
|---|---|---|---|
| failover (s) | {k['failover_s']:.2f} | {l['failover_s']:.2f} | {l['failover_s']/max(k['failover_s'],1e-3):.1f}× |
| failed requests during failover | {k['failed_requests']} | {l['failed_requests']} | |
| recovery (s) | {k['recovery_s']:.2f} | {l['recovery_s']:.2f} | |

| throughput (median) | through VIP | direct | VIP / direct |
|---|---|---|---|
| new connections: sequential wget of /id (requests/s, 5×100) | {vip:.1f} | {direct:.1f} | **{vip/direct:.2f}** |
| one connection: 16 MiB download (MiB/s, 5×2) | {vb:.1f} | {db:.1f} | **{vb/db:.2f}** |

Soak: {r['soak_transitions']} transitions in {r['soak_s']} s (target 0). Raw requests/s: VIP {', '.join(f'{x:.1f}' for x in r['vip_rps'])}; direct {', '.join(f'{x:.1f}' for x in r['direct_rps'])}. Raw MiB/s: VIP {', '.join(f'{x:.1f}' for x in r['vip_mib_s'])}; direct {', '.join(f'{x:.1f}' for x in r['direct_mib_s'])}.""")
PY
)
echo "$section"
echo "$section" | imager/benches/section.py 'Load balancer: '
