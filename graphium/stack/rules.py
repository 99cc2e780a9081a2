"""Rules for values whose type alone says too little: image references, host IPs, bind mounts,
environment names, replica counts, host addresses and engine URLs.

Each rule exists because the value used to be accepted and then did harm: a ``hostIP`` typo made
the engine publish on every interface, 10,000 replicas planned for seconds, a bind mount of ``/``
handed the host to a container. Rules raise ValueError with what is expected, which the loader
reports at the value's JSON path. A value holding a ``${VAR}`` reference is checked once the
variable is filled (the model is validated again then), never before.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from urllib.parse import urlsplit

MAX_REPLICAS = 1000  # of one container
MAX_STACK_REPLICAS = 2000  # of all containers of a stack together

_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
# distribution/reference's grammar: [domain/]path[:tag][@digest]
_IMAGE_RE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?$"
)
_IMAGE_EXAMPLES = "e.g. 'nginx:1.27', 'ghcr.io/team/app:v2' or 'app@sha256:<64 hex digits>'"

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_HOSTNAME_RE = re.compile(rf"^{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*\.?$")

# Host paths a container may see only read-only: writing to them changes the host itself (the
# trees, and everything under them; the directories, as a whole).
_READ_ONLY_ROOTS = ("/proc", "/sys", "/dev", "/boot")
_READ_ONLY_DIRS = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/var", "/root", "/home")
_ENGINE_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock")


def has_template(value: str) -> bool:
    """Whether ``value`` holds a ``${VAR}`` reference, filled (and checked) at plan time."""
    return "${" in value


def check_image(value: str) -> str:
    """An image reference: ``[registry[:port]/]name[:tag][@digest]``, lowercase name, no spaces."""
    if has_template(value) or (_IMAGE_RE.match(value) and len(value) <= 512):
        return value
    if not value.strip():
        raise ValueError("an image reference cannot be empty")
    if any(char.isspace() for char in value):
        reason = "it contains whitespace"
    elif re.search("[A-Z]", _repository(value)):
        reason = "repository names are lowercase"
    elif "://" in value:
        reason = "it is a URL; give the registry without a scheme"
    else:
        reason = "it does not follow the reference grammar"
    raise ValueError(
        f"invalid image reference {value!r} ({reason}): expected name[:tag][@digest], {_IMAGE_EXAMPLES}"
    )


def _repository(reference: str) -> str:
    """The path of a reference without registry, tag and digest (``Team/App`` of ``r.io/Team/App:v1``)."""
    name = reference.split("@")[0]
    head, _, tail = name.rpartition(":")
    if head and "/" not in tail:
        name = head
    first, _, rest = name.partition("/")
    return rest if rest and ("." in first or ":" in first or first == "localhost") else name


def check_host_ip(value: str | None) -> str | None:
    """The address a port is published on: an IPv4 or IPv6 address (omit it for every interface)."""
    if value is None or has_template(value):
        return value
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        raise ValueError(
            f"hostIP must be an IP address such as 127.0.0.1 or ::1, got {value!r} "
            "(omit hostIP to publish on every interface)"
        ) from None


def check_bind_source(source: str, read_only: bool) -> None:
    """Refuse bind mounts that hand the host to the container: ``/`` always; the host's system
    trees and the engine's socket unless read-only."""
    if has_template(source):
        return
    path = posixpath.normpath("/" + source.lstrip("/"))
    if path == "/":
        raise ValueError(
            "a bind mount of the host's root '/' gives the container the whole host; mount only "
            "the directory it needs"
        )
    if read_only:
        return
    if path in _ENGINE_SOCKETS:
        raise ValueError(
            f"a writable bind mount of {path} gives the container root on the host through the "
            "container engine; if it must watch the engine, set 'readOnly': true (and know that "
            "the engine's API stays reachable through the socket)"
        )
    for root in (*_READ_ONLY_ROOTS, *_READ_ONLY_DIRS):
        if path == root or (root in _READ_ONLY_ROOTS and path.startswith(root + "/")):
            raise ValueError(
                f"a writable bind mount of {path} lets the container change the host's {root}; "
                "set 'readOnly': true, or mount a directory of its own"
            )


def check_env_name(name: str) -> str:
    """An environment variable name: letters, digits, ``_``, ``.``, ``-``, not starting with a digit."""
    if not _ENV_NAME_RE.match(name):
        raise ValueError(
            f"invalid environment variable name {name!r}: expected letters, digits, '_', '.' or "
            "'-', not starting with a digit (no '=', no spaces)"
        )
    return name


def check_replicas(count: int) -> int:
    """Replicas of one container: at most :data:`MAX_REPLICAS`."""
    if count > MAX_REPLICAS:
        raise ValueError(
            f"at most {MAX_REPLICAS} replicas of one container, got {count}; a stack holds at most "
            f"{MAX_STACK_REPLICAS} containers in all"
        )
    return count


def check_stack_replicas(counts: list[int]) -> str | None:
    """Why a stack asks for too many containers in all, or None."""
    total = sum(counts)
    if total > MAX_STACK_REPLICAS:
        return (
            f"the stack asks for {total} containers in all (replicas summed); at most "
            f"{MAX_STACK_REPLICAS} per stack: split it into several stacks"
        )
    return None


def check_address(value: str | None) -> str | None:
    """A host's address: an IP address or a DNS name, nothing else (no user, port or scheme)."""
    if value is None:
        return value
    hint = ""
    if "://" in value:
        hint = "; give the name or IP alone, without a scheme"
    elif "@" in value:
        hint = "; give the user as 'sshUser'"
    elif value.count(":") == 1:
        hint = "; give the port as 'sshPort'"
    else:
        try:
            ipaddress.ip_address(value.strip("[]"))
            return value.strip("[]")
        except ValueError:
            if _HOSTNAME_RE.match(value) and len(value) <= 253:
                return value
    raise ValueError(f"address must be an IP address or a DNS name, got {value!r}{hint}")


def check_docker_host(value: str | None, over_ssh: bool) -> str | None:
    """A host's engine URL: ``unix:///path`` or ``tcp://host:port`` (also ``http(s)://``, and
    ``ssh://`` for local hosts); over ssh, as seen from the host itself."""
    if value is None:
        return value
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
        parts = parts._replace(netloc="")
    if parts.scheme == "unix" and parts.path.startswith("/") and not parts.netloc:
        return value
    remote = ("tcp",) if over_ssh else ("tcp", "http", "https", "ssh")
    if parts.scheme in remote and parts.hostname and (port or parts.scheme != "tcp" or not over_ssh):
        return value
    expected = (
        "unix:///path/to/docker.sock or tcp://ADDR:PORT as seen from the host"
        if over_ssh
        else "unix:///path/to/docker.sock, tcp://HOST:PORT, https://HOST:PORT or ssh://USER@HOST"
    )
    raise ValueError(f"dockerHost must be an engine URL, {expected}; got {value!r}")


_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")


def check_volume_name(name: str) -> None:
    """A named volume: letters, digits, ``_``, ``.``, ``-``, starting with a letter or digit."""
    if not has_template(name) and not _NAME_RE.match(name):
        raise ValueError(
            f"invalid volume name {name!r}: expected letters, digits, '_', '.' or '-', starting with a "
            "letter or digit (a host path needs 'type': 'bind' and an absolute 'source')"
        )


def check_mount_target(target: str) -> None:
    """Where a mount appears in the container: an absolute path, not the container's root."""
    if has_template(target):
        return
    if not target.startswith("/"):
        raise ValueError("'target' must be an absolute path inside the container")
    if posixpath.normpath(target) == "/":
        raise ValueError("'target' cannot be the container's root '/'; mount on a directory inside it")


def check_distinct_targets(targets: list[str]) -> None:
    """Two mounts on one path of a container: the engine refuses the container at apply time."""
    seen: set[str] = set()
    for target in targets:
        path = posixpath.normpath(target)
        if path in seen:
            raise ValueError(f"two mounts share the target {path!r}; each mount needs its own path")
        seen.add(path)


def check_user(value: str | None) -> str | None:
    """The container's user: ``name``, ``uid``, ``name:group`` or ``uid:gid``."""
    if value is None or has_template(value) or _USER_RE.match(value):
        return value
    raise ValueError(f"user must be a name or uid, optionally with ':group' or ':gid', got {value!r}")


def check_working_dir(value: str | None) -> str | None:
    """The container's working directory: an absolute path (the engine refuses a relative one)."""
    if value is None or has_template(value) or value.startswith("/"):
        return value
    raise ValueError(f"workingDir must be an absolute path inside the container, got {value!r}")


def check_network(subnet: str | None, gateway: str | None, ip_range: str | None) -> None:
    """A network's addressing: a CIDR subnet, a gateway address in it, an IP range inside it."""
    net = _network(subnet, "subnet", "a CIDR network such as 10.20.0.0/24") if subnet else None
    gate = None
    if gateway:
        try:
            gate = ipaddress.ip_address(gateway)
        except ValueError:
            raise ValueError(f"gateway must be an IP address such as 10.20.0.1, got {gateway!r}") from None
    pool = _network(ip_range, "ipRange", "a CIDR range such as 10.20.0.128/25") if ip_range else None
    if (gate or pool) and net is None:
        raise ValueError("'gateway' and 'ipRange' need 'subnet', the network they belong to")
    if net is not None and gate is not None and gate not in net:
        raise ValueError(f"gateway {gateway} is not in subnet {net}")
    if net is not None and pool is not None and (pool.version != net.version or not pool.subnet_of(net)):  # type: ignore[arg-type]
        raise ValueError(f"ipRange {pool} is not inside subnet {net}")


def _network(value: str, what: str, expected: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{what} must be {expected}, got {value!r}") from None
