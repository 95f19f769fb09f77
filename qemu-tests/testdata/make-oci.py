#!/usr/bin/env python3
"""Writes a one-layer OCI image archive (oci-layout + index.json + blobs) holding a static
busybox, named docker.io/kiln/busybox:test. Usage: make-oci.py BUSYBOX OUT.tar
Deterministic: fixed mtimes, owners and order."""
import hashlib, io, json, sys, tarfile

busybox, out = sys.argv[1], sys.argv[2]


def tar_bytes(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.uid, ti.gid = 0, 0, 0
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            elif kind == "link":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, data, 0o777
                t.addfile(ti)
            else:
                ti.size, ti.mode = len(data), kind
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest(), len(data)


layer = tar_bytes(
    [("bin", "dir", None), ("bin/busybox", 0o755, open(busybox, "rb").read())]
    + [("bin/" + n, "link", "busybox") for n in ("sh", "echo", "cat", "uname")]
)
config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "config": {"Cmd": ["/bin/echo", "hello"], "Env": ["PATH=/bin"]},
    "rootfs": {"type": "layers", "diff_ids": [blob(layer)[0]]},
}, sort_keys=True).encode()
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": blob(config)[0], "size": blob(config)[1]},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": blob(layer)[0], "size": blob(layer)[1]}],
}, sort_keys=True).encode()
index = json.dumps({
    "schemaVersion": 2,
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": blob(manifest)[0], "size": blob(manifest)[1],
                   "annotations": {"io.containerd.image.name": "docker.io/kiln/busybox:test",
                                   "org.opencontainers.image.ref.name": "test"}}],
}, sort_keys=True).encode()
files = [("oci-layout", 0o644, b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", 0o644, index),
         ("blobs", "dir", None), ("blobs/sha256", "dir", None)]
files += [("blobs/sha256/" + blob(d)[0][7:], 0o644, d) for d in (layer, config, manifest)]
open(out, "wb").write(tar_bytes(files))
