"""Busybox images with a chosen build time and extra files, loaded with ``docker load`` (no registry, no build).

``docker import`` stamps an image with the time of the import; ``docker load`` takes the image's config
as given, ``created`` included. So the tar ``docker save`` would write is made here: the busybox root
filesystem (plus the extra files) as the one layer, a config whose ``created`` is the chosen time, and
the manifest that names them.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import tarfile
from datetime import UTC, datetime
from typing import Any

from tests.helpers.docker_engine import busybox_tar

ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(platform.machine(), platform.machine())


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def rootfs(files: dict[str, tuple[str, int]], links: dict[str, str] | None = None) -> bytes:
    """busybox's root filesystem plus ``files`` (path -> (text, mode)) and symbolic ``links`` (path -> target)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(busybox_tar())) as base, tarfile.open(fileobj=out, mode="w") as tar:
        have = set()
        for member in base.getmembers():
            tar.addfile(member, base.extractfile(member) if member.isfile() else None)
            have.add(member.name)
        for path, (text, mode) in files.items():
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                folder = "/".join(parts[:i])
                if folder not in have:
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                    have.add(folder)
            _add(tar, "/".join(parts), text.encode(), mode)
        for path, target in (links or {}).items():
            info = tarfile.TarInfo(path.strip("/"))
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return out.getvalue()


def load_image(
    client: Any, ref: str, *, created: datetime, files: dict[str, tuple[str, int]] | None = None,
    links: dict[str, str] | None = None,
) -> str:
    """Load ``ref`` (``repo:tag``) built at ``created`` with ``files`` and ``links`` added; its image id."""
    layer = rootfs(files or {}, links)
    stamp = created.astimezone(UTC).isoformat().replace("+00:00", "Z")
    config = json.dumps({
        "architecture": ARCH, "os": "linux", "created": stamp,
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created": stamp, "created_by": "opsbot tests"}],
    }).encode()  # fmt: skip
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [ref], "Layers": ["layer/layer.tar"]}]).encode()
    bundle = io.BytesIO()
    with tarfile.open(fileobj=bundle, mode="w") as tar:
        _add(tar, config_name, config)
        _add(tar, "layer/layer.tar", layer)
        _add(tar, "manifest.json", manifest)
    client.images.load(bundle.getvalue())
    return str(client.images.get(ref).id)
