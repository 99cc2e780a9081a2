"""Test images made locally from busybox-static (no registry is reachable).

One `docker save`-format tarball holds every test image: a shared busybox layer plus a tiny layer
with /www/index.html naming the image. It is built once (deterministically, so every engine gets
the same image ids) and cached; loading it into an engine that already has the tags is a no-op.
The images serve HTTP on port 80 like `docker import -c 'CMD ["/bin/httpd",...]'` would, and stop on
SIGKILL (busybox httpd as pid 1 ignores SIGTERM, which would make every stop wait 10 s).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import platform
import shutil
import tarfile
from pathlib import Path
from typing import Any

from ._proc import STATE_DIR, LabError, run

#: Every test image name → the body its web server answers with (GET /).
IMAGES: dict[str, str] = {
    name: f"{name}\n"
    for name in (
        "graphium-test/web:1",
        "graphium-test/web:2",
        "nginx:alpine",
        "redis:7-alpine",
        "postgres:15-alpine",
        "node:18-alpine",
    )
}
CMD = ["/bin/httpd", "-f", "-p", "80", "-h", "/www"]
_FORMAT = "graphium-lab-images/1"
_CREATED = "2024-01-01T00:00:00Z"


def _busybox() -> Path:
    found = shutil.which("busybox") or "/bin/busybox"
    if not Path(found).exists():
        raise LabError("busybox not found: run lab/install.sh (apt-get install busybox-static)")
    return Path(found)


def _add(tar: tarfile.TarFile, name: str, *, data: bytes | None = None, mode: int = 0o644,
         kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.mtime = kind, mode, link, 0
    if data is not None:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def _layer(build: Any) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        build(tar)
    return buf.getvalue()


def _base_layer(busybox: Path) -> bytes:
    applets = run([str(busybox), "--list"]).stdout.split()

    def build(tar: tarfile.TarFile) -> None:
        for d, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777), ("www", 0o755), ("root", 0o700),
                        ("usr", 0o755), ("usr/bin", 0o755), ("proc", 0o755), ("sys", 0o755), ("dev", 0o755)):
            _add(tar, d, kind=tarfile.DIRTYPE, mode=mode)
        _add(tar, "bin/busybox", data=busybox.read_bytes(), mode=0o755)
        for applet in sorted(set(applets) - {"busybox"}):
            _add(tar, f"bin/{applet}", kind=tarfile.SYMTYPE, link="busybox", mode=0o777)
        _add(tar, "usr/bin/env", kind=tarfile.SYMTYPE, link="/bin/busybox", mode=0o777)
        _add(tar, "etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
        _add(tar, "etc/group", data=b"root:x:0:\nnogroup:x:65534:\n")

    return _layer(build)


def _www_layer(body: str) -> bytes:
    return _layer(lambda tar: (_add(tar, "www", kind=tarfile.DIRTYPE, mode=0o755),
                               _add(tar, "www/index.html", data=body.encode())))


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def expected_ids() -> dict[str, str]:
    """Image name → image id the cached tarball gives it."""
    return dict(json.loads(_meta_path(tarball()).read_text()))


@functools.cache
def _cache_key(busybox: Path) -> str:
    h = hashlib.sha256(_FORMAT.encode())
    h.update(hashlib.sha256(busybox.read_bytes()).digest())
    h.update(json.dumps([IMAGES, CMD], sort_keys=True).encode())
    return h.hexdigest()[:16]


def _meta_path(tar: Path) -> Path:
    return tar.with_suffix(".ids.json")


def tarball() -> Path:
    """Path of the cached image tarball, building it first if needed."""
    busybox = _busybox()
    path = STATE_DIR / "cache" / f"test-images-{_cache_key(busybox)}.tar"
    if path.exists() and _meta_path(path).exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    base = _base_layer(busybox)
    files: dict[str, bytes] = {}
    manifest, ids = [], {}
    base_id = hashlib.sha256(base).hexdigest()
    files[f"{base_id}/layer.tar"] = base
    for name, body in IMAGES.items():
        www = _www_layer(body)
        www_id = hashlib.sha256(www).hexdigest()
        files[f"{www_id}/layer.tar"] = www
        config = {
            "architecture": _arch(), "os": "linux", "created": _CREATED,
            "config": {"Cmd": CMD, "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "WorkingDir": "/",
                       "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGKILL",
                       "Labels": {"org.graphium.test-image": name}},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{base_id}", f"sha256:{www_id}"]},
            "history": [{"created": _CREATED, "created_by": "graphium lab: busybox rootfs"},
                        {"created": _CREATED, "created_by": f"graphium lab: /www/index.html for {name}"}],
        }
        raw = json.dumps(config, sort_keys=True).encode()
        config_id = hashlib.sha256(raw).hexdigest()
        files[f"{config_id}.json"] = raw
        ids[name] = f"sha256:{config_id}"
        manifest.append({"Config": f"{config_id}.json", "RepoTags": [name],
                         "Layers": [f"{base_id}/layer.tar", f"{www_id}/layer.tar"]})
    files["manifest.json"] = json.dumps(manifest).encode()
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            _add(tar, name, data=data)
    _meta_path(path).write_text(json.dumps(ids, indent=1))
    tmp.rename(path)
    return path


def preload(docker_url: str) -> bool:
    """Load the test images into the engine at docker_url unless it has them all; True if loaded."""
    import docker  # the lab's only docker-py use; imported lazily so `lab down` works without it

    tar = tarball()
    want = expected_ids()
    api = docker.APIClient(base_url=docker_url, version="1.41", timeout=120)
    try:
        have = {tag: img["Id"] for img in api.images() for tag in img.get("RepoTags") or ()}
        if all(have.get(name) == image_id for name, image_id in want.items()):
            return False
        with open(tar, "rb") as fh:
            api.load_image(fh)
        return True
    finally:
        api.close()
