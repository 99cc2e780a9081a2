"""Loading a stack document: JSON-LD in any spelling -> validated :class:`StackSpec`.

The loader accepts both formats of the original project's examples (``ports`` or
``containerPort``, ``environment`` as a map or list or ``environmentVariable``, ``volumeMounts``,
``volumeMount`` or ``volumes``, flat or nested ``resources``, ...) and maps them onto the one
canonical model. The original Go loader silently dropped keys it did not know; here every key
either has an effect or is an error naming it, and all errors of a file are reported at once,
each at the JSON path the user wrote.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pydantic

from graphium.errors import Problem, StackError
from graphium.graph import cycles
from graphium.stack.inventory import host_from_node, json_type, string_map
from graphium.stack.jsonld import (
    Field,
    Loc,
    Node,
    Normaliser,
    json_path,
    node_from_json,
    parse_json,
    read_graph,
)
from graphium.stack.models import ContainerSpec, Host, Inventory, StackSpec

_RESTART_NAMES = ("no", "always", "unless-stopped", "on-failure")
_VAR_ONLY_RE = re.compile(r"^\$\{[^}]+\}$")
# Stricter than SECRET_KEY_RE (which errs towards hiding): only warn where a literal is surely a secret.
_LITERAL_SECRET_RE = re.compile(r"PASSWORD|PASSWD|SECRET|PRIVATE_KEY|API_KEY", re.IGNORECASE)


@dataclass
class StackDocument:
    """A loaded stack: the validated spec, Host nodes of its graph, warnings, and where it came from."""

    stack: StackSpec
    hosts: list[Host] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    path: str = "<stack>"
    paths: Mapping[Loc, str] = field(default_factory=dict, repr=False)

    def path_of(self, *loc: str | int) -> str:
        """The JSON path, as written in the file, of a model location such as ``("containers", 2)``."""
        for end in range(len(loc), -1, -1):
            found = self.paths.get(loc[:end])
            if found is not None:
                for part in loc[end:]:
                    found = json_path(found, part)
                return found
        return "$"


def load_stack(source: str | os.PathLike[str], *, check_schema: bool = False) -> StackDocument:
    """Load and validate a stack file; raises StackError with every problem found.

    ``check_schema`` also runs the editors' JSON Schema over the normalised stack. pydantic
    already enforces everything the schema says, so this only proves the two agree (the tests
    and ``graphium-run validate`` use it); it is off by default because it costs more than
    the whole load on a 1,000-container stack.
    """
    file = os.fspath(source)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except OSError as error:
        raise StackError([Problem(file, "$", f"cannot read stack file: {error.strerror}")]) from None
    return load_stack_text(text, file, check_schema=check_schema)


def load_stack_text(text: str, filename: str = "<stack>", *, check_schema: bool = False) -> StackDocument:
    """Like :func:`load_stack` for a document already in memory (``filename`` names it in errors)."""
    document, syntax = parse_json(text, filename)
    if syntax is not None:
        raise StackError([syntax])
    return load_stack_data(document, filename, check_schema=check_schema)


def load_stack_data(document: Any, filename: str = "<stack>", *, check_schema: bool = False) -> StackDocument:
    """Like :func:`load_stack` for a parsed JSON document."""
    return _StackLoader(filename, check_schema).load(document)


def host_problems(doc: StackDocument, inventory: Inventory) -> list[Problem]:
    """Host references (``locatedInHost``) that name no host of the inventory."""
    known = inventory.by_id()
    problems = []
    names = ", ".join(sorted(known)) or "none"
    if doc.stack.located_in_host is not None and doc.stack.located_in_host not in known:
        problems.append(
            Problem(
                doc.path,
                doc.path_of("locatedInHost"),
                f"unknown host {doc.stack.located_in_host!r}; known hosts: {names}",
            )
        )
    for index, container in enumerate(doc.stack.containers):
        if container.located_in_host is not None and container.located_in_host not in known:
            problems.append(
                Problem(
                    doc.path,
                    doc.path_of("containers", index, "locatedInHost"),
                    f"unknown host {container.located_in_host!r}; known hosts: {names}",
                )
            )
    return problems


def check_hosts(doc: StackDocument, inventory: Inventory) -> None:
    """Raise StackError if the stack refers to hosts the inventory does not define."""
    problems = host_problems(doc, inventory)
    if problems:
        raise StackError(problems)


# --- field tables: accepted spelling (canonical local name) -> model key ---------------------

_STACK_FIELDS = {
    "name": "name",
    "description": "description",
    "locatedInHost": "locatedInHost",
    "deployment": "deployment",
    "network": "network",
    "pullPolicy": "pullPolicy",
    "hasPart": "containers",
}
_CONTAINER_FIELDS = {
    "name": "name",
    "image": "image",
    "description": "description",
    "command": "command",
    "args": "args",
    "environment": "environment",
    "environmentVariable": "environment",
    "sensitive": "sensitive",
    "ports": "ports",
    "containerPort": "ports",
    "mounts": "mounts",
    "volumeMounts": "mounts",
    "volumeMount": "mounts",
    "volumes": "mounts",
    "restartPolicy": "restartPolicy",
    "labels": "labels",
    "resources": "resources",
    "healthCheck": "healthCheck",
    "dependsOn": "dependsOn",
    "locatedInHost": "locatedInHost",
    "user": "user",
    "workingDir": "workingDir",
    "replicas": "replicas",
    "pullPolicy": "pullPolicy",
    "stopTimeout": "stopTimeout",
}
_PORT_FIELDS = {
    "containerPort": "containerPort",
    "portNumber": "containerPort",
    "hostPort": "hostPort",
    "protocol": "protocol",
    "hostIP": "hostIP",
    "hostIp": "hostIP",
}
_MOUNT_FIELDS = {
    "type": "type",
    "source": "source",
    "name": "source",
    "target": "target",
    "mountPath": "target",
    "readOnly": "readOnly",
    "driver": "driver",
}
_ENV_ITEM_FIELDS = {"name": "name", "value": "value", "sensitive": "sensitive"}
_RESTART_FIELDS = {"name": "name", "maximumRetryCount": "maximumRetryCount"}
_RESOURCES_FIELDS = {
    "limits": "limits",
    "reservations": "reservations",
    "cpu": "cpus",
    "cpus": "cpus",
    "memory": "memory",
}
_AMOUNT_FIELDS = {"cpu": "cpus", "cpus": "cpus", "memory": "memory"}
_HEALTH_FIELDS = {
    "test": "test",
    "command": "test",
    "interval": "interval",
    "timeout": "timeout",
    "retries": "retries",
    "startPeriod": "startPeriod",
    "http": "http",
    "tcp": "tcp",
}
_HTTP_FIELDS = {"port": "port", "path": "path"}
_TCP_FIELDS = {"port": "port"}
_DEPLOYMENT_FIELDS = {
    "placementStrategy": "placementStrategy",
    "constraints": "constraints",
    "mode": "mode",
    "networkMode": "networkMode",
    "comment": "comment",
}
_CONSTRAINT_FIELDS = {"label": "label", "op": "op", "value": "value"}
_NETWORK_FIELDS = {
    "name": "name",
    "driver": "driver",
    "subnet": "subnet",
    "gateway": "gateway",
    "ipRange": "ipRange",
    "labels": "labels",
}
_CONSTRAINT_RE = re.compile(r"^\s*([^=!\s]+)\s*(==|!=)\s*(.*?)\s*$")


@cache
def stack_schema() -> dict[str, Any]:
    """The JSON Schema of stack files (package data, also in docs/ for editors)."""
    text = resources.files("graphium.stack.schema").joinpath("stack.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator(definition: str) -> Any:
    # imported by name: jsonschema ships no type stubs, and only this opt-in check needs it
    jsonschema = importlib.import_module("jsonschema")
    schema = stack_schema()
    cls = jsonschema.validators.validator_for(schema)
    return cls({"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]})


class _StackLoader(Normaliser):
    def __init__(self, file: str, check_schema: bool) -> None:
        super().__init__(file)
        self.check_schema = check_schema

    def load(self, document: Any) -> StackDocument:
        graph = read_graph(document, self.file)
        self.problems.extend(graph.problems)
        stacks: list[Node] = []
        host_nodes: list[Node] = []
        for node in graph.nodes:
            types = node.type_names
            if "Host" in types:
                host_nodes.append(node)
            elif any(t.endswith("Stack") for t in types) or (
                "SoftwareApplication" in types and "hasPart" in node.fields
            ):
                stacks.append(node)
            elif not graph.problems:
                self.problem(
                    node.path,
                    "expected a stack node (@type Stack, or SoftwareApplication with hasPart) "
                    f"or a Host node, got @type {types or 'none'}",
                )
        if not stacks:
            if not self.problems:
                self.problem("$", 'no stack node: give one node with "@type": "Stack" and \'hasPart\'')
            raise StackError(self.problems)
        for extra in stacks[1:]:
            self.problem(extra.path, f"a file holds one stack; the first is at {stacks[0].path}")
        hosts = [h for i, n in enumerate(host_nodes) if (h := host_from_node(self, n, ("@hosts", i)))]
        seen_hosts: dict[str, Host] = {}
        for host, node in zip(hosts, host_nodes, strict=False):
            if host.id in seen_hosts and seen_hosts[host.id] != host:
                self.problem(node.path, f"host {host.id!r} is defined twice, differently")
            seen_hosts[host.id] = host
        stack = self._stack(stacks[0])
        if self.problems:
            raise StackError(self.problems)
        assert stack is not None
        return StackDocument(
            stack=stack,
            hosts=list(seen_hosts.values()),
            warnings=self.warnings,
            path=self.file,
            paths=self.paths,
        )

    # --- stack ---------------------------------------------------------------------------------

    def _stack(self, node: Node) -> StackSpec | None:
        self.mark((), node.path)
        data: dict[str, Any] = {}
        raw_containers: list[dict[str, Any] | None] = []
        for key, field_ in self.fields(node, _STACK_FIELDS, "the stack").items():
            loc: Loc = (key,)
            if key == "containers":
                raw_containers = self._containers(field_)
            elif key == "deployment":
                data[key] = self._object(field_, loc, self._deployment)
            elif key == "network":
                data[key] = self._object(field_, loc, self._network)
            elif key == "locatedInHost":
                data[key] = self._host_ref(field_, loc)
            else:
                data[key] = self.plain_field(field_, loc)
        data = {k: v for k, v in data.items() if v is not None}  # None: a problem is already reported
        if "name" not in data:
            self.problem(node.path, "the stack needs 'name'")
        if self.check_schema:
            self._schema_check("Stack", data, ())
        containers: list[ContainerSpec | None] = []
        for index, raw in enumerate(raw_containers):
            containers.append(self._validate_container(raw, index) if raw is not None else None)
        self._cross_checks(raw_containers, containers, data.get("locatedInHost"))
        try:
            stack_data = {**data, "containers": []}
            spec = StackSpec.model_validate(stack_data)
        except pydantic.ValidationError as error:
            self.pydantic_problems(error)
            return None
        if self.problems:
            return None
        valid = [c for c in containers if c is not None]
        return spec.model_copy(update={"containers": valid})

    def _containers(self, field_: Field) -> list[dict[str, Any] | None]:
        self.mark(("containers",), field_.path)
        out: list[dict[str, Any] | None] = []
        for index, (path, value) in enumerate(field_.items()):
            loc: Loc = ("containers", index)
            self.mark(loc, path)
            if not isinstance(value, Node):
                self.problem(path, f"expected a container object, got {json_type(value)}")
                out.append(None)
                continue
            out.append(self._container(value, loc))
        if not out:
            self.warn(field_.path, "the stack has no containers")
        return out

    def _container(self, node: Node, loc: Loc) -> dict[str, Any]:
        data: dict[str, Any] = {}
        sensitive: list[str] = []
        for key, field_ in self.fields(node, _CONTAINER_FIELDS, "a container", frozenset()).items():
            floc: Loc = (*loc, key)
            if key == "environment":
                data[key] = self._environment(field_, floc, sensitive)
            elif key == "labels":
                data[key] = string_map(self, field_.raw, floc, field_.path, "labels")
            elif key == "ports":
                data[key] = self._list_of(field_, floc, self._port, "a port")
            elif key == "mounts":
                data[key] = self._list_of(field_, floc, self._mount, "a mount")
            elif key == "restartPolicy":
                data[key] = self._restart(field_, floc)
            elif key == "resources":
                data[key] = self._object(field_, floc, self._resources)
            elif key == "healthCheck":
                data[key] = self._object(field_, floc, self._health)
            elif key == "locatedInHost":
                data[key] = self._host_ref(field_, floc)
            elif key in ("dependsOn", "sensitive") and not field_.is_list:
                data[key] = [self.plain_field(field_, (*floc, 0))]
                self.mark(floc, field_.path)
            else:
                data[key] = self.plain_field(field_, floc)
        data = {k: v for k, v in data.items() if v is not None}  # None: a problem is already reported
        if sensitive:
            existing = data.get("sensitive")
            data["sensitive"] = [*(existing if isinstance(existing, list) else []), *sensitive]
        for required in ("name", "image"):
            if required not in data:
                self.problem(node.path, f"a container needs {required!r}")
        self._warn_literal_secrets(data, loc)
        return data

    def _validate_container(self, data: dict[str, Any], index: int) -> ContainerSpec | None:
        loc: Loc = ("containers", index)
        # a missing name or image is reported already; stand-ins let every other field be checked too
        missing = {key: "missing" for key in ("name", "image") if key not in data}
        if self.check_schema and not missing and not self._schema_check("Container", data, loc):
            return None
        try:
            spec = ContainerSpec.model_validate({**missing, **data})
        except pydantic.ValidationError as error:
            self.pydantic_problems(error, loc)
            return None
        return None if missing else spec

    def _schema_check(self, definition: str, data: dict[str, Any], loc: Loc) -> bool:
        """jsonschema on the normalised form: proves the editors' schema accepts what we accept."""
        errors = list(_validator(definition).iter_errors(data))
        for error in errors:
            self.problem(self.path_of((*loc, *error.absolute_path)), f"schema: {error.message}")
        return not errors

    # --- container parts -----------------------------------------------------------------------

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
        out: dict[str, Any] = {}
        for key, field_ in self.fields(node, _HEALTH_FIELDS, "a health check").items():
            if key in ("http", "tcp"):
                accepted = _HTTP_FIELDS if key == "http" else _TCP_FIELDS
                value = field_.value
                self.mark((*loc, key), field_.path)
                if isinstance(value, Node):
                    out[key] = self._simple(value, accepted, f"an {key} probe", (*loc, key))
                else:
                    self.problem(field_.path, f"expected an {key} probe object, got {json_type(value)}")
            else:
                out[key] = self.plain_field(field_, (*loc, key))
        return out

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
        out: dict[str, Any] = {}
        for key, field_ in self.fields(node, _DEPLOYMENT_FIELDS, "deployment").items():
            if key == "constraints":
                self.mark((*loc, key), field_.path)
                constraints = []
                for index, (path, value) in enumerate(field_.items()):
                    item_loc = (*loc, key, index)
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
                out[key] = constraints
            else:
                out[key] = self.plain_field(field_, (*loc, key))
        return out

    def _network(self, node: Node, loc: Loc) -> dict[str, Any]:
        self.mark(loc, node.path)
        out: dict[str, Any] = {}
        for key, field_ in self.fields(node, _NETWORK_FIELDS, "the network").items():
            if key == "labels":
                out[key] = string_map(self, field_.raw, (*loc, key), field_.path, "labels")
            else:
                out[key] = self.plain_field(field_, (*loc, key))
        return out

    # --- checks across containers --------------------------------------------------------------

    def _warn_literal_secrets(self, data: dict[str, Any], loc: Loc) -> None:
        env = data.get("environment")
        if not isinstance(env, dict):
            return
        for key, value in env.items():
            if _LITERAL_SECRET_RE.search(key) and value and not _VAR_ONLY_RE.match(value):
                self.warn(
                    self.path_of((*loc, "environment", key)),
                    f"secret {key!r} is written in the file; prefer ${{{key}}} filled from the environment",
                )

    def _cross_checks(
        self,
        raw: list[dict[str, Any] | None],
        valid: list[ContainerSpec | None],
        default_host: Any,
    ) -> None:
        names: dict[str, int] = {}
        for index, data in enumerate(raw):
            name = data.get("name") if data else None
            if not isinstance(name, str):
                continue
            if name in names:
                self.problem(
                    self.path_of(("containers", index, "name")),
                    f"duplicate container name {name!r}; "
                    f"first used at {self.path_of(('containers', names[name]))}",
                )
            else:
                names[name] = index
        graph: dict[str, list[str]] = {}
        for index, data in enumerate(raw):
            deps = data.get("dependsOn") if data else None
            if not isinstance(deps, list):
                continue
            name = data.get("name") if data else None
            for dep_index, dep in enumerate(deps):
                if not isinstance(dep, str):
                    continue
                path = self.path_of(("containers", index, "dependsOn", dep_index))
                if dep not in names:
                    self.problem(
                        path, f"dependsOn names unknown container {dep!r}; containers: {', '.join(names)}"
                    )
                elif isinstance(name, str):
                    graph.setdefault(name, []).append(dep)
        for cycle in cycles(graph):
            self.problem(
                self.path_of(("containers", names[cycle[0]], "dependsOn")),
                f"dependency cycle: {' -> '.join(cycle)}",
            )
        self._port_conflicts(valid, default_host)

    def _port_conflicts(self, containers: list[ContainerSpec | None], default_host: Any) -> None:
        """Host ports wanted twice on one statically known host (locatedInHost or the stack default)."""
        taken: dict[tuple[str, int, str], list[tuple[str | None, str, str]]] = {}
        for index, spec in enumerate(containers):
            if spec is None:
                continue
            host = spec.located_in_host or (default_host if isinstance(default_host, str) else None)
            if host is None:
                continue
            for port_index, port in enumerate(spec.ports):
                if port.host_port is None:
                    continue
                path = self.path_of(("containers", index, "ports", port_index, "hostPort"))
                key = (host, port.host_port, port.protocol.value)
                ip = port.host_ip if port.host_ip not in ("", "0.0.0.0", "::") else None
                if spec.replicas > 1:
                    self.problem(
                        path,
                        f"{spec.replicas} replicas of {spec.name!r} are pinned to host {host!r} and all "
                        f"want host port {port.host_port}/{port.protocol.value}",
                    )
                clash = next(
                    (p for p in taken.get(key, []) if p[0] is None or ip is None or p[0] == ip), None
                )
                if clash is not None:
                    self.problem(
                        path,
                        f"host port {port.host_port}/{port.protocol.value} on host {host!r} is already "
                        f"wanted by {clash[1]!r} ({clash[2]})",
                    )
                    continue
                taken.setdefault(key, []).append((ip, spec.name, path))
