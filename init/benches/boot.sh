#!/usr/bin/env bash
# Init benchmark: QEMU start → network online and → containerd ready on a first boot from a
# NoCloud seed, for Kiln and for the systemd + cloud-init peer (shared/peers/systemd-cloud-init),
# same seed, same run. Prints the figures and rewrites the init section of BENCHMARKS.md.
# Usage (as root, for the peer build): init/benches/boot.sh   [N boots each, default 3: BOOTS=N]
#
# Timing for Kiln: kiln-boot prints every event (guest `ts` = CLOCK_BOOTTIME seconds since kernel
# start) and `ready_s` (host seconds from QEMU spawn to the `ready` event). The host-side offset of
# the guest clock is therefore ready_s − ready.ts (firmware + bootloader time, plus the event
# transport delay), and an event E happened at host time ready_s − (ready.ts − E.ts).
# Init's own part is E.ts − stage1.ts (stage1 is emitted when PID 1 starts).
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${BENCH_DIR:-$PWD/target/bench-init}
PEER=${PEER_KIT:-$PWD/../shared/peers/systemd-cloud-init}
PW=${PEER_DIR:-$W/peer}
N=${BOOTS:-3}
mkdir -p "$W"; rm -rf "$W/img" "$W"/kiln-*.jsonl "$W/peer.jsonl" "$W/seed.img"
cargo build -j2 --release -p kiln-imager -p qemu-tests >/dev/null 2>&1
echo "== kiln build"
target/release/kiln build -q --out "$W/img" >/dev/null
Q=$W/img/kiln-node.qcow2
# One seed for both: the peer kit's user-data/meta-data (hostname, user + ssh key, write_files).
cloud-localds "$W/seed.img" "$PEER/user-data" "$PEER/meta-data"

# QEMU settings: kiln-boot gives q35 + OVMF, TCG single-threaded, -cpu max, 2 vCPU, 1 GiB; the
# peer's boot.sh uses default machine (pc), default CPU, TCG (multi-threaded default), 2 vCPU,
# 2 GiB and direct kernel boot (no firmware). We match the memory (-m 2048, last -m wins).
for i in $(seq 1 "$N"); do
  echo "== kiln boot $i (load $(cut -d' ' -f1-3 /proc/loadavg))"
  echo "{\"loadavg\":\"$(cut -d' ' -f1 /proc/loadavg)\"}" > "$W/kiln-$i.jsonl"
  target/release/kiln-boot "$Q" -m 2048 -drive "if=virtio,format=raw,readonly=on,file=$W/seed.img" \
    >> "$W/kiln-$i.jsonl" || echo "kiln boot $i failed (no ready); kept as a failed row"
done

if [ ! -f "$PW/disk.raw" ]; then
  echo "== peer build (once)"
  "$PEER/build.sh" "$PW" > "$W/peer-build.log" 2>&1
fi
echo "== peer boots x$N (load $(cut -d' ' -f1-3 /proc/loadavg))"
"$PEER/boot.sh" "$PW" "$N" "$W/seed.img" | tee "$W/peer.jsonl"

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
section=$(python3 - "$W" "$N" "$PW" "$(nproc)" "$cpu" "$(free -g | awk '/Mem:/{print $2}')" <<'PY'
import json, re, sys, statistics, datetime
W, N, PW, ncpu, cpu, ram = sys.argv[1], int(sys.argv[2]), sys.argv[3], *sys.argv[4:]
med = lambda xs: statistics.median(xs) if xs else float("nan")
kiln, failed = [], []
for i in range(1, N + 1):
    ev, summ, load = {}, None, "?"
    for ln in open(f"{W}/kiln-{i}.jsonl"):
        ln = ln.strip()
        if not ln.startswith("{"): continue
        o = json.loads(ln)
        if "loadavg" in o: load = o["loadavg"]
        elif "ready_s" in o: summ = o
        elif o.get("event") == "service_ready" and o.get("service") != "containerd": pass
        else: ev.setdefault(o["event"], o)
    if summ is None:
        failed.append(i); continue
    off = summ["ready_s"] - ev["ready"]["ts"]          # host time of guest ts 0
    host = lambda e: ev[e]["ts"] + off
    kib = ev["ready"].get("init_vmhwm_kib")
    kiln.append(dict(n=i, load=load, accel=summ["accel"], fw=off, net=host("network_online"),
        applied=host("config_applied"), ctrd=host("service_ready"), ready=summ["ready_s"],
        i_net=ev["network_online"]["ts"] - ev["stage1"]["ts"],
        i_ctrd=ev["service_ready"]["ts"] - ev["stage1"]["ts"],
        i_applied=ev["config_applied"]["ts"] - ev["stage1"]["ts"],
        rss=f"{kib/1024:.1f} MiB" if kib else "n/a"))
peer = []
for i, ln in enumerate(l for l in open(f"{W}/peer.jsonl") if l.startswith("{")):
    o = json.loads(ln)
    log = open(f"{PW}/boot-{i+1}.log", errors="replace").read()
    m = re.search(r"=== PID1 mem.*?VmHWM:\s*(\d+) kB", log, re.S)
    ok = re.search(r"hostname=peer-node-1 file=written-by-cloud-init", log) is not None
    peer.append(dict(init=o.get("run_init"), ci=o.get("cloudinit_finished"),
        ctrd=o.get("containerd_ready"), done=o.get("boot_done"),
        rss=f"{int(m.group(1))/1024:.1f} MiB" if m else "n/a", seed_ok=ok))
f = lambda x: "—" if x is None else f"{x:.2f}"
K = {k: med([b[k] for b in kiln]) for k in ("net", "applied", "ctrd", "ready", "i_net", "i_ctrd", "fw")}
P = {k: med([b[k] for b in peer if b[k] is not None]) for k in ("init", "ci", "ctrd", "done")}
r_ctrd, r_cfg = P["ctrd"] / K["ctrd"], P["ci"] / K["net"]
accel = kiln[0]["accel"]
out = f"""## Init: boot to network and containerd (vs systemd + cloud-init)

Measured {datetime.date.today()} on {ncpu} cores ({cpu}), {ram} GiB RAM, by `init/benches/boot.sh`; {N} first
boots each, same NoCloud seed (the peer kit's user-data/meta-data: hostname, user with ssh key,
write_files), same run. Accelerator: {accel} for both (KVM fails its probe on this host).

Method. Kiln: default image from `kiln build`, booted by `kiln-boot` (q35, OVMF, TCG single-threaded,
`-cpu max`, 2 vCPU, `-m 2048` to match the peer, qcow2 with snapshot=on so every boot is a first
boot, seed as a read-only virtio disk). Guest event `ts` is CLOCK_BOOTTIME since kernel start;
`ready_s` is host seconds from QEMU spawn to `ready`, so host time of event E = ready_s − (ready.ts − E.ts)
(the offset ready_s − ready.ts, median {K['fw']:.1f} s, is firmware + bootloader + kernel-entry).
Init's part = E.ts − stage1.ts (stage1 is emitted when PID 1 starts). Peer: `shared/peers/systemd-cloud-init`
(Debian trixie, systemd, cloud-init, containerd), `boot.sh` = QEMU `pc` machine, default CPU, TCG
(QEMU's default, multi-threaded), 2 vCPU, 2 GiB, **direct kernel boot (no firmware)**, fresh qcow2 overlay;
host seconds from QEMU start to each serial marker. containerd ready = `ctr version` answers (peer) /
`service_ready` for containerd (Kiln: its readiness probe on the socket).
Pairing for "config + network": cloud-init's `finished` line comes after its network stage (waits for
network-online) and all config modules, so the fair Kiln counterpart is the first point where both are
done: `network_online` (Kiln applies config before starting the network; `config_applied` shown too).
Differences that favour the peer: no OVMF (Kiln pays ~{K['fw']:.0f} s of firmware under TCG before the kernel),
multi-threaded TCG. The host was shared with other jobs (load average per boot below); treat as indicative.

| figure (median, host s from QEMU start) | Kiln | systemd + cloud-init | peer / Kiln |
|---|---|---|---|
| config applied + network up | {K['net']:.2f} (network_online) | {P['ci']:.2f} (cloud-init finished) | **{r_cfg:.1f}×** |
| containerd ready | {K['ctrd']:.2f} | {P['ctrd']:.2f} | **{r_ctrd:.1f}×** |
| boot done | {K['ready']:.2f} (`ready`) | {P['done']:.2f} (system running) | {P['done']/K['ready']:.1f}× |
| init's part: PID 1 start → network / containerd | {K['i_net']:.2f} / {K['i_ctrd']:.2f} s | | |
| PID 1 peak RSS (VmHWM) | {kiln[0]['rss']} | {peer[0]['rss'] if peer else 'n/a'} | |

Raw, Kiln (host s; init's part in guest s since stage1):

| boot | load | fw+kernel offset | config_applied | network_online | containerd ready | ready | init: →net | init: →containerd | PID 1 VmHWM |
|---|---|---|---|---|---|---|---|---|---|
""" + "".join(f"| {b['n']} | {b['load']} | {b['fw']:.2f} | {b['applied']:.2f} | {b['net']:.2f} | {b['ctrd']:.2f} | {b['ready']:.2f} | {b['i_net']:.2f} | {b['i_ctrd']:.2f} | {b['rss']} |\n" for i, b in enumerate(kiln)) + "".join(f"| failed | (boot {i}: no `ready` within 180 s) |\n" for i in failed) + """
Raw, peer (host s):

| boot | run_init | cloud-init finished | containerd ready | boot done | PID 1 VmHWM | seed applied |
|---|---|---|---|---|---|---|
""" + "".join(f"| {i+1} | {f(b['init'])} | {f(b['ci'])} | {f(b['ctrd'])} | {f(b['done'])} | {b['rss']} | {'yes' if b['seed_ok'] else 'no'} |\n" for i, b in enumerate(peer))
print(out)
PY
)
echo "$section"
echo "$section" | imager/benches/section.py 'Init: boot to network and containerd'
