"""What a replacement or one-off container is made of: the old container's own configuration, kept.

Pure functions of the engine's inspect data (``GET /containers/{id}/json``, ``GET /images/{id}/json``),
no SDK in them. The engine merges the image's configuration into a container's when it creates it
(environment, labels, command, entrypoint, user, working dir, health check, stop signal, exposed ports,
volumes), so what the service itself set is what differs from the image the container was made from;
that part is kept, and the new image supplies its own defaults for the rest -- as Compose does when it
recreates a container.
"""

from __future__ import annotations

import re
from typing import Any

from adapters.docker.info import NUMBER, ONEOFF
from adapters.docker.io import image_version
from adapters.errors import AdapterError

#: a kept old container is renamed ``<name>-opsbot-old-<short id>`` (and hidden from listings)
OLD_MARK = "-opsbot-old-"
#: Compose's label holding the id of the image a container was made from
IMAGE_LABEL = "com.docker.compose.image"
#: Compose's own version (of the tool), never an image version
COMPOSE_VERSION = "com.docker.compose.version"
IMAGE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}\Z")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}\Z")
#: network modes without endpoints of their own
SHARED_NETWORK = ("host", "none")
#: settings copied as they are (the engine does not merge them from the image)
PLAIN = ("Domainname", "Tty", "OpenStdin", "StdinOnce", "AttachStdin", "AttachStdout", "AttachStderr", "MacAddress")
#: settings the engine takes from the image unless the container set its own
MERGED = ("User", "WorkingDir", "StopSignal", "Healthcheck")


def check_image(image: object) -> str:
    """``image`` when it looks like an image reference, else ``AdapterError`` (it reaches the engine's URLs)."""
    if not isinstance(image, str) or not IMAGE_REF.match(image):
        raise AdapterError(f"{image!r} is not an image reference (name[:tag] or name@digest)")
    return image


def check_argv(argv: object, what: str) -> list[str]:
    """``argv`` as a list of strings, else ``AdapterError`` (a shell string is refused)."""
    if isinstance(argv, str) or not isinstance(argv, list | tuple) or not argv:
        raise AdapterError(f"{what} takes a non-empty list of arguments (argv), never a shell string")
    if not all(isinstance(a, str) for a in argv):
        raise AdapterError(f"{what} takes a non-empty list of arguments (argv), never a shell string")
    return list(argv)


def check_env(env: object) -> dict[str, str | None]:
    """Environment changes (name -> value, None removes it), checked: names as a shell allows them."""
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise AdapterError("environment changes are a mapping of name -> value (None removes the variable)")
    for name, value in env.items():
        if not isinstance(name, str) or not ENV_NAME.match(name):
            raise AdapterError(f"{name!r} is not an environment variable name")
        if value is not None and (not isinstance(value, str) or "\x00" in value):
            raise AdapterError(f"the value of {name} must be a string without NUL characters, or None")
    return dict(env)


def kept_name(name: str, container_id: str) -> str:
    """The name an old container is kept under until the replacement is committed or reverted."""
    return f"{name}{OLD_MARK}{container_id[:12]}"


def gone(kept_as: str) -> str:
    """Why a container cannot be put back: its kept old one was removed (by ``commit``)."""
    return f"its old container {kept_as} is gone (was the replacement committed?); the new one was left as it is"


def _pairs(items: list[str] | None) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in items or [])


def own_env(config: dict[str, Any], image: dict[str, Any]) -> dict[str, str]:
    """The variables the container set itself (not inherited unchanged from its image)."""
    inherited = _pairs(image.get("Env"))
    return {k: v for k, v in _pairs(config.get("Env")).items() if inherited.get(k) != v}


def own_labels(config: dict[str, Any], image: dict[str, Any]) -> dict[str, str]:
    """The labels the container set itself (Compose's among them)."""
    inherited = image.get("Labels") or {}
    return {k: v for k, v in (config.get("Labels") or {}).items() if inherited.get(k) != v}


def _declared(host: dict[str, Any]) -> set[str]:
    """Mount points the container asked for (binds and mounts), as opposed to anonymous volumes."""
    points = {bind.split(":")[1] for bind in host.get("Binds") or [] if bind.count(":") >= 1}
    return points | {m.get("Target", "") for m in host.get("Mounts") or []}


def host_config(attrs: dict[str, Any], *, keep_anonymous: bool = True) -> dict[str, Any]:
    """The container's HostConfig for a new container: binds, mounts, network mode, ports, restart policy...

    Anonymous volumes (an image's VOLUME, ``-v /data``) are passed on by name so the data stays
    (``keep_anonymous``); legacy links are turned back into ``name:alias``.
    """
    host = dict(attrs.get("HostConfig") or {})
    host["ContainerIDFile"] = ""
    if host.get("Links"):
        host["Links"] = [f"{src.lstrip('/')}:{dst.rsplit('/', 1)[-1]}" for src, _, dst in
                         (link.partition(":") for link in host["Links"])]  # fmt: skip
    if keep_anonymous:
        declared = _declared(host)
        extra = [
            f"{m['Name']}:{m['Destination']}" + ("" if m.get("RW", True) else ":ro")
            for m in attrs.get("Mounts") or []
            if m.get("Type") == "volume" and m.get("Name") and m.get("Destination") not in declared
        ]
        if extra:
            host["Binds"] = [*(host.get("Binds") or []), *extra]
    return host


def endpoints(attrs: dict[str, Any], *, aliases: bool = True) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """(primary network, network -> endpoint settings) to attach a new container as the old one was.

    None and nothing for the host/none/container: network modes. The engine's own alias (the old
    container's short id) is dropped; without ``aliases`` all are (a one-off takes no traffic).
    """
    mode = str((attrs.get("HostConfig") or {}).get("NetworkMode") or "default")
    if mode in SHARED_NETWORK or mode.startswith("container:"):
        return None, {}
    short = str(attrs.get("Id", ""))[:12]
    found: dict[str, dict[str, Any]] = {}
    for name, ep in ((attrs.get("NetworkSettings") or {}).get("Networks") or {}).items():
        kept = [a for a in ep.get("Aliases") or [] if a != short] if aliases else []
        settings = {"Aliases": kept or None, "Links": ep.get("Links"), "DriverOpts": ep.get("DriverOpts")}
        if aliases and ep.get("IPAMConfig"):
            settings["IPAMConfig"] = ep["IPAMConfig"]
        found[name] = {k: v for k, v in settings.items() if v}
    primary = "bridge" if mode == "default" else mode
    if primary not in found and found:
        primary = next(iter(found))
    return (primary if found else None), found


def _updated_labels(labels: dict[str, str], old: str | None, image: str, image_id: str) -> dict[str, str]:
    """Compose's image label points at the new image; a ``...version`` label equal to the old tag follows it."""
    out = dict(labels)
    if IMAGE_LABEL in out:
        out[IMAGE_LABEL] = image_id
    before, after = image_version(old or ""), image_version(image)
    if before and after:
        for key, value in labels.items():
            if key != COMPOSE_VERSION and key.lower().endswith("version") and value == before:
                out[key] = after
    return out


def container_body(
    attrs: dict[str, Any],
    old_image: dict[str, Any],
    image: str,
    new_image: dict[str, Any],
    *,
    env: dict[str, str | None] | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(create body, endpoints to connect after create) for a container like ``attrs`` on ``image``.

    ``old_image`` is the inspect data of the image the container was made from ({} when it is gone),
    ``new_image`` that of ``image``; ``env`` sets (a value) or removes (None) variables.
    """
    config = attrs.get("Config") or {}
    base = old_image.get("Config") or {}
    variables = own_env(config, base)
    for name, value in (env or {}).items():
        if value is None:
            variables.pop(name, None)
        else:
            variables[name] = value
    labels = _updated_labels(own_labels(config, base), config.get("Image"), image, str(new_image.get("Id", "")))
    body: dict[str, Any] = {"Image": image, "Env": [f"{k}={v}" for k, v in variables.items()], "Labels": labels}
    if config.get("Entrypoint") != base.get("Entrypoint"):  # its own entrypoint: the image's Cmd was not used
        body["Entrypoint"], body["Cmd"] = config.get("Entrypoint"), config.get("Cmd")
    elif config.get("Cmd") != base.get("Cmd"):
        body["Cmd"] = config.get("Cmd")
    for key in MERGED:
        if config.get(key) and config.get(key) != base.get(key):
            body[key] = config[key]
    for key in PLAIN:
        if config.get(key):
            body[key] = config[key]
    if isinstance(config.get("StopTimeout"), int):
        body["StopTimeout"] = config["StopTimeout"]
    for key in ("ExposedPorts", "Volumes"):
        own = {k: v for k, v in (config.get(key) or {}).items() if k not in (base.get(key) or {})}
        if own:
            body[key] = own
    host = host_config(attrs)
    body["HostConfig"] = host
    mode = str(host.get("NetworkMode") or "")
    hostname = config.get("Hostname")
    auto = hostname == str(attrs.get("Id", ""))[:12] or mode in SHARED_NETWORK or mode.startswith("container:")
    if hostname and not auto:
        body["Hostname"] = hostname
    primary, found = endpoints(attrs)
    if primary is not None:
        body["NetworkingConfig"] = {"EndpointsConfig": {primary: found.pop(primary)}}
    return body, found


def oneoff_body(
    attrs: dict[str, Any], old_image: dict[str, Any], image: str, new_image: dict[str, Any], argv: list[str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(create body, endpoints) of a one-off like Compose's ``run``: the service's configuration, ``argv``.

    Same environment, mounts (not the service's anonymous volumes), network mode, user and working
    dir; no published ports, no restart policy, no network aliases, no health check; Compose's
    labels with ``oneoff=True``.
    """
    body, _ = container_body(attrs, old_image, image, new_image)
    body["Cmd"] = argv
    for key in ("Hostname", "Healthcheck", "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "AttachStdin"):
        body.pop(key, None)
    body["Healthcheck"] = {"Test": ["NONE"]}
    labels = dict(body["Labels"])
    labels.pop(NUMBER, None)
    labels[ONEOFF] = "True"
    body["Labels"] = labels
    host = host_config(attrs, keep_anonymous=False)
    host.update(PortBindings={}, PublishAllPorts=False, RestartPolicy={"Name": "no"}, AutoRemove=False)
    body["HostConfig"] = host
    primary, found = endpoints(attrs, aliases=False)
    body.pop("NetworkingConfig", None)
    if primary is not None:
        body["NetworkingConfig"] = {"EndpointsConfig": {primary: found.pop(primary)}}
    return body, found
