"""Normalising a stack's parts (containers, ports, mounts, environment, restart policy, resources,
health checks, deployment, network) from nodes into model-shaped dicts.

Each part has a field table: accepted spelling (canonical local name) -> model key. Every key has
an effect or is an error naming it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from graphium.stack.checks import warn_literal_secrets
from graphium.stack.inventory import json_type, string_map
from graphium.stack.jsonld import json_path
from graphium.stack.nodes import Field, Node, node_from_json
from graphium.stack.normaliser import Loc, Normaliser, accepted

#: Converts one field (at its model location) into its model value; None after reporting a problem.
Convert = Callable[[Field, Loc], Any]
_RESTART_NAMES = ("no", "always", "unless-stopped", "on-failure")

# Field tables (see :func:`accepted`): each model key as itself, plus the other spellings of it.
STACK_FIELDS = accepted(
    "name", "description", "locatedInHost", "deployment", "network", "pullPolicy", hasPart="containers"
)
_CONTAINER_FIELDS = accepted(
    "name", "image", "description", "command", "args", "environment", "sensitive", "ports", "mounts",
    "restartPolicy", "labels", "resources", "healthCheck", "dependsOn", "locatedInHost", "user",
    "workingDir", "replicas", "pullPolicy", "stopTimeout", "update",
    environmentVariable="environment", containerPort="ports",
    volumeMounts="mounts", volumeMount="mounts", volumes="mounts",
)  # fmt: skip
_PORT_FIELDS = accepted(
    "containerPort", "hostPort", "protocol", "hostIP", portNumber="containerPort", hostIp="hostIP"
)
_MOUNT_FIELDS = accepted(
    "type", "source", "target", "readOnly", "driver", "external", name="source", mountPath="target"
)
_ENV_ITEM_FIELDS = accepted("name", "value", "sensitive")
_RESTART_FIELDS = accepted("name", "maximumRetryCount")
_RESOURCES_FIELDS = accepted("limits", "reservations", "cpus", "memory", cpu="cpus")
_AMOUNT_FIELDS = accepted("cpus", "memory", cpu="cpus")
_HEALTH_FIELDS = accepted(
    "test", "interval", "timeout", "retries", "startPeriod", "http", "tcp", command="test"
)
_UPDATE_FIELDS = accepted("parallelism", "delay", "order", "failureAction", "monitor")
_HTTP_FIELDS = accepted("port", "path")
_TCP_FIELDS = accepted("port")
_DEPLOYMENT_FIELDS = accepted("placementStrategy", "constraints", "mode", "networkMode", "comment")
_CONSTRAINT_FIELDS = accepted("label", "op", "value")
_NETWORK_FIELDS = accepted("name", "driver", "subnet", "gateway", "ipRange", "labels")
_CONSTRAINT_RE = re.compile(r"^\s*([^=!\s]+)\s*(==|!=)\s*(.*?)\s*$")


class PartsNormaliser(Normaliser):
    """The converters of a stack's parts; :class:`graphium.stack.loader` drives them."""

    def _convert(
        self,
        node: Node,
        table: Mapping[str, str],
        what: str,
        loc: Loc,
        special: Mapping[str, Convert],
        ignored: frozenset[str] = frozenset({"description"}),
    ) -> dict[str, Any]:
        """Each accepted field of a node as plain JSON, or through its converter in ``special``
        (a converter returns None when it reported a problem: the key is then left out)."""
        out: dict[str, Any] = {}
        for key, field_ in self.fields(node, table, what, ignored).items():
            floc: Loc = (*loc, key)
            convert = special.get(key)
            if convert is None:
                out[key] = self.plain_field(field_, floc)
            elif (value := convert(field_, floc)) is not None:
                out[key] = value
        return out

    def _container(self, node: Node, loc: Loc) -> dict[str, Any]:
        sensitive: list[str] = []
        special: dict[str, Convert] = {
            "environment": lambda f, floc: self._environment(f, floc, sensitive),
            "labels": self._labels,
            "ports": lambda f, floc: self._list_of(f, floc, self._port, "a port"),
            "mounts": lambda f, floc: self._list_of(f, floc, self._mount, "a mount"),
            "restartPolicy": self._restart,
            "resources": lambda f, floc: self._object(f, floc, self._resources),
            "healthCheck": lambda f, floc: self._object(f, floc, self._health),
            "update": lambda f, floc: self._object(
                f, floc, lambda n, nloc: self._simple(n, _UPDATE_FIELDS, "an update policy", nloc)
            ),
            "locatedInHost": self._host_ref,
            "dependsOn": self._one_or_many,
            "sensitive": self._one_or_many,
        }
        data = self._convert(node, _CONTAINER_FIELDS, "a container", loc, special, frozenset())
        data = {k: v for k, v in data.items() if v is not None}  # None: a problem is already reported
        if sensitive:
            existing = data.get("sensitive")
            data["sensitive"] = [*(existing if isinstance(existing, list) else []), *sensitive]
        for required in ("name", "image"):
            if required not in data:
                self.problem(node.path, f"a container needs {required!r}")
        warn_literal_secrets(self, data, loc)
        return data

    def _labels(self, field_: Field, loc: Loc) -> dict[str, Any]:
        return string_map(self, field_.raw, loc, field_.path, "labels")

    def _one_or_many(self, field_: Field, loc: Loc) -> Any:
        """A list field given as a single value (``"dependsOn": "db"``) becomes a list of one."""
        if field_.is_list:
            return self.plain_field(field_, loc)
        value = [self.plain_field(field_, (*loc, 0))]
        self.mark(loc, field_.path)
        return value

    def _list_of(self, field_: Field, loc: Loc, convert: Any, what: str) -> list[Any]:
        self.mark(loc, field_.path)
        out = []
        for index, (path, value) in enumerate(field_.items()):
            item_loc = (*loc, index)
            self.mark(item_loc, path)
            if not isinstance(value, Node):
                self.problem(path, f"expected {what} object, got {json_type(value)}")
                continue
            out.append(convert(value, item_loc))
        return out

    def _object(self, field_: Field, loc: Loc, convert: Any) -> Any:
        self.mark(loc, field_.path)
        value = field_.value
        if field_.literal and isinstance(value, dict):
            value = node_from_json(value, field_.path)
        if not isinstance(value, Node):
            self.problem(field_.path, f"expected an object, got {json_type(value)}")
            return None
        return convert(value, loc)

    def _simple(self, node: Node, accepted: Mapping[str, str], what: str, loc: Loc) -> dict[str, Any]:
        self.mark(loc, node.path)
        return {key: self.plain_field(f, (*loc, key)) for key, f in self.fields(node, accepted, what).items()}

    def _port(self, node: Node, loc: Loc) -> dict[str, Any]:
        data = self._simple(node, _PORT_FIELDS, "a port", loc)
        if "containerPort" not in data:
            self.problem(
                node.path, "a port needs 'containerPort' (or 'portNumber'), the port inside the container"
            )
        return data

    def _mount(self, node: Node, loc: Loc) -> dict[str, Any]:
        data = self._simple(node, _MOUNT_FIELDS, "a mount", loc)
        if "target" not in data:
            self.problem(
                node.path,
                "a mount needs 'target' (or 'mountPath'), the absolute path inside the container; "
                "without it the volume cannot be mounted anywhere",
            )
        return data

    def _environment(self, field_: Field, loc: Loc, sensitive: list[str]) -> dict[str, Any]:
        self.mark(loc, field_.path)
        raw = field_.value
        if isinstance(raw, dict):
            return string_map(self, raw, loc, field_.path, "environment")
        items: list[tuple[str, Any]]
        if field_.literal and isinstance(raw, list):
            items = [(json_path(field_.path, i), v) for i, v in enumerate(raw)]
        elif isinstance(raw, Node):
            items = [(field_.path, raw)]
        elif isinstance(raw, list):
            items = list(field_.items())
        else:
            self.problem(
                field_.path, f"environment must be a map or a list of name/value, got {json_type(raw)}"
            )
            return {}
        out: dict[str, Any] = {}
        for path, item in items:
            name, value, secret = self._env_item(item, path)
            if name is None:
                continue
            if name in out:
                self.problem(path, f"environment variable {name!r} is given twice")
                continue
            self.mark((*loc, name), path)
            out[name] = value
            if secret:
                sensitive.append(name)
        return out

    def _env_item(self, item: Any, path: str) -> tuple[str | None, str, bool]:
        if isinstance(item, str):
            key, sep, text = item.partition("=")
            if not sep or not key:
                self.problem(path, f"expected NAME=value or an object with name and value, got {item!r}")
                return None, "", False
            return key, text, False
        if isinstance(item, dict):
            item = node_from_json(item, path)
        if not isinstance(item, Node):
            self.problem(path, f"expected an object with name and value, got {json_type(item)}")
            return None, "", False
        fields = self.fields(item, _ENV_ITEM_FIELDS, "an environment variable")
        name = fields["name"].value if "name" in fields else None
        if not isinstance(name, str) or not name:
            self.problem(item.path, "an environment variable needs 'name', a string")
            return None, "", False
        value: Any = fields["value"].value if "value" in fields else ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.problem(fields["value"].path, f"environment values must be strings, got {json_type(value)}")
            return None, "", False
        secret = fields["sensitive"].value if "sensitive" in fields else False
        if not isinstance(secret, bool):
            self.problem(fields["sensitive"].path, "'sensitive' must be true or false")
            secret = False
        return name, value if isinstance(value, str) else str(value), secret

    def _restart(self, field_: Field, loc: Loc) -> Any:
        self.mark(loc, field_.path)
        value = field_.value
        if isinstance(value, str):
            policy, _, count = value.partition(":")
            data: dict[str, Any] = {"name": policy}
            if count:
                if not count.isdigit():
                    self.problem(field_.path, f"restart policy retry count must be a number, got {count!r}")
                    return None
                data["maximumRetryCount"] = int(count)
        elif isinstance(value, Node):
            data = self._simple(value, _RESTART_FIELDS, "a restart policy", loc)
        else:
            self.problem(field_.path, f"expected a restart policy name or object, got {json_type(value)}")
            return None
        name = data.get("name")
        if name not in _RESTART_NAMES:
            self.problem(
                field_.path,
                f"unsupported restart policy {name!r}; expected one of: {', '.join(_RESTART_NAMES)} "
                "(on-failure may carry a retry count, as in 'on-failure:3')",
            )
            return None
        if data.get("maximumRetryCount") and name != "on-failure":
            self.problem(field_.path, "a retry count applies only to the on-failure restart policy")
            return None
        return data

    def _resources(self, node: Node, loc: Loc) -> dict[str, Any]:
        self.mark(loc, node.path)
        fields = self.fields(node, _RESOURCES_FIELDS, "resources")
        flat = {k: f for k, f in fields.items() if k in ("cpus", "memory")}
        nested = {k: f for k, f in fields.items() if k in ("limits", "reservations")}
        if flat and nested:
            self.problem(
                node.path,
                "give either flat cpu/memory (meaning limits) or 'limits'/'reservations', not both",
            )
            return {}
        if flat:
            limits_loc = (*loc, "limits")
            self.mark(limits_loc, node.path)
            return {"limits": {k: self.plain_field(f, (*limits_loc, k)) for k, f in flat.items()}}
        out: dict[str, Any] = {}
        for key, field_ in nested.items():
            value = field_.value
            self.mark((*loc, key), field_.path)
            if not isinstance(value, Node):
                self.problem(field_.path, f"expected an object with cpus and memory, got {json_type(value)}")
                continue
            out[key] = self._simple(value, _AMOUNT_FIELDS, f"resource {key}", (*loc, key))
        return out

    def _health(self, node: Node, loc: Loc) -> dict[str, Any]:
        self.mark(loc, node.path)
        special = {"http": self._probe, "tcp": self._probe}
        return self._convert(node, _HEALTH_FIELDS, "a health check", loc, special)

    def _probe(self, field_: Field, loc: Loc) -> dict[str, Any] | None:
        kind = loc[-1]
        self.mark(loc, field_.path)
        value = field_.value
        if isinstance(value, Node):
            return self._simple(
                value, _HTTP_FIELDS if kind == "http" else _TCP_FIELDS, f"an {kind} probe", loc
            )
        self.problem(field_.path, f"expected an {kind} probe object, got {json_type(value)}")
        return None

    def _host_ref(self, field_: Field, loc: Loc) -> Any:
        self.mark(loc, field_.path)
        value = field_.value
        if isinstance(value, str) and value:
            return value
        self.problem(
            field_.path,
            'locatedInHost names a host by id: a string or {"@id": ...}; define the host itself as a '
            "Host node in @graph or in the inventory",
        )
        return None

    # --- stack parts ---------------------------------------------------------------------------

    def _deployment(self, node: Node, loc: Loc) -> dict[str, Any]:
        self.mark(loc, node.path)
        return self._convert(node, _DEPLOYMENT_FIELDS, "deployment", loc, {"constraints": self._constraints})

    def _constraints(self, field_: Field, loc: Loc) -> list[dict[str, Any]]:
        self.mark(loc, field_.path)
        constraints = []
        for index, (path, value) in enumerate(field_.items()):
            item_loc = (*loc, index)
            self.mark(item_loc, path)
            if isinstance(value, str):
                match = _CONSTRAINT_RE.match(value)
                if match is None:
                    self.problem(path, f"expected a constraint like 'region==eu', got {value!r}")
                    continue
                constraints.append({"label": match[1], "op": match[2], "value": match[3]})
            elif isinstance(value, Node):
                constraints.append(self._simple(value, _CONSTRAINT_FIELDS, "a constraint", item_loc))
            else:
                self.problem(path, f"expected a constraint object or string, got {json_type(value)}")
        return constraints

    def _network(self, node: Node, loc: Loc) -> dict[str, Any]:
        self.mark(loc, node.path)
        return self._convert(node, _NETWORK_FIELDS, "the network", loc, {"labels": self._labels})
