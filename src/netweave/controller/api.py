"""The Neutron v2.0 REST API (FastAPI). Without authentication, like Neutron's noauth: the project is
the `X-Project-Id` header, else the configured default project.

Bodies are read as raw JSON and checked against the resources' attribute declarations
(`attributes.py`), so errors come back in Neutron's shape rather than FastAPI's.
"""

import gc
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from netweave.controller import (
    chassis,
    errors,
    floatingips,
    networks,
    ports,
    qos,
    routers,
    security_groups,
    subnets,
)
from netweave.controller.attributes import touch
from netweave.controller.chassis import ViewService
from netweave.controller.db import (
    Chassis,
    FloatingIP,
    Network,
    Port,
    QosPolicy,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from netweave.controller.errors import BadRequest, NeutronError, NotFound
from netweave.controller.query import apply
from netweave.controller.store import Store
from netweave.controller.typedrivers import TypeConfig

DEFAULT_PROJECT = "netweave"
RETRIES = 10


@dataclass(frozen=True)
class Kind:
    """One resource collection: its member name, table, how a row is shown, and its operations."""

    member: str
    model: Any
    shape: Callable[[Session, Any], dict[str, Any]]
    create: Callable[[Session, str, Any], Any]
    get: Callable[[Session, str], Any]
    update: Callable[[Session, str, Any], Any]
    delete: Callable[[Session, str], None]
    plural: str = ""  # the response's collection key where it differs from the URL (security-groups)


def check_tags(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(
        isinstance(t, str) and 0 < len(t) <= 255 and "," not in t for t in value
    ):
        raise BadRequest("Invalid input for tags. Reason: a list of non-empty strings without commas.")
    return value


def errors_conflict(message: str) -> NeutronError:
    e = NeutronError(message)
    e.status, e.type = 409, "Conflict"
    return e


def _ext(alias: str, name: str, description: str) -> dict[str, Any]:
    return {
        "alias": alias,
        "name": name,
        "description": description,
        "updated": "2026-11-22T00:00:00-00:00",
        "links": [],
    }


#: what clients probe for with GET /v2.0/extensions[/alias]; each names a feature this API implements
EXTENSIONS = [
    _ext(
        "netweave",
        "NetWeave network attributes",
        "netweave:control_plane (controller|flood-learn|evpn), netweave:replication (ingress|multicast), "
        "netweave:multicast_group, netweave:arp_suppression; routers: netweave:l3_vni, netweave:irb",
    ),
    _ext("provider", "Provider Network", "Expose mapping of virtual networks to physical networks"),
    _ext("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    _ext("external-net", "Neutron external network", "Adds external network attribute to network resource."),
    _ext("binding", "Port Binding", "Expose port bindings of a virtual port to external application"),
    _ext("port-security", "Port Security", "Provides port security"),
    _ext("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"),
    _ext("security-group", "security-group", "The security groups extension."),
    _ext("stateful-security-group", "Stateful security group", "Adds the stateful attribute to groups."),
    _ext("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 networks"),
    _ext("extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router"),
    _ext("dvr", "Distributed Virtual Router", "Enables configuration of Distributed Virtual Routers."),
    _ext("qos", "Quality of Service", "The Quality of Service extension."),
    _ext(
        "qos-bw-limit-direction",
        "Direction for QoS bandwidth limit rule",
        "Allow to configure QoS bandwidth limit rule with specific direction: ingress or egress",
    ),
    _ext("qos-default", "QoS default policy", "Expose the QoS default policy per project"),
    _ext("standard-attr-revisions", "Resource revision numbers", "Displays revision numbers of resources."),
    _ext("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields."),
    _ext("standard-attr-description", "standard-attr-description", "Adds description to resources."),
    _ext(
        "standard-attr-tag", "Tag support for resources with standard attribute", "Enables tags on resources."
    ),
    _ext("tag-ext", "Tag support for resources", "Tags on networks, subnets, ports, routers and more."),
    _ext("agent", "agent", "The agent management extension (NetWeave chassis as agents)."),
    _ext("pagination", "Pagination support", "Extension that indicates that pagination is enabled."),
    _ext("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
    _ext(
        "project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled."
    ),
]


async def body(request: Request) -> Any:
    """The request's JSON body (None when empty); a Neutron-style 400 when it is not JSON."""
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("The request body is not valid JSON.") from None


def _error(exc: NeutronError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def create_app(
    store: Store,
    types: TypeConfig | None = None,
    *,
    default_project: str = DEFAULT_PROJECT,
    agent_down_time_s: float = 15.0,
) -> FastAPI:
    cfg = types or TypeConfig()
    service = ViewService(store, agent_down_time_s=agent_down_time_s)
    service.load()
    # the compiler's model and views live as long as the process: keep the collector from walking them
    # again and again (full collections of ~150 ms were the controller's latency outliers at 10k ports)
    gc.collect()
    gc.freeze()
    app = FastAPI(
        title="NetWeave controller (Neutron v2.0 API)", openapi_url=None, docs_url=None, redoc_url=None
    )
    app.state.views = service

    @app.exception_handler(NeutronError)
    async def neutron_error(_: Request, exc: NeutronError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _error(NotFound("The resource could not be found."))
        err = NeutronError(str(exc.detail))
        err.status = exc.status_code
        err.type = "HTTPError"
        return _error(err)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(BadRequest(f"Invalid request: {exc.errors()[0].get('msg', 'malformed')}"))

    def project(request: Request) -> str:
        return request.headers.get("x-project-id") or request.headers.get("x-tenant-id") or default_project

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    @app.get("/")
    async def versions(request: Request) -> dict[str, Any]:
        return {
            "versions": [
                {
                    "id": "v2.0",
                    "status": "CURRENT",
                    "links": [{"href": f"{base(request)}/v2.0/", "rel": "self"}],
                }
            ]
        }

    @app.get("/v2.0/")
    @app.get("/v2.0")
    async def resources(request: Request) -> dict[str, Any]:
        return {
            "resources": [
                {
                    "name": kind.member,
                    "collection": kind.plural or collection,
                    "links": [{"href": f"{base(request)}/v2.0/{collection}", "rel": "self"}],
                }
                for collection, kind in kinds.items()
            ]
        }

    @app.get("/v2.0/extensions")
    async def extensions() -> dict[str, Any]:
        return {"extensions": EXTENSIONS}

    @app.get("/v2.0/extensions/{alias}")
    async def extension(alias: str) -> dict[str, Any]:
        for ext in EXTENSIONS:
            if ext["alias"] == alias:
                return {"extension": ext}
        raise NotFound(f"Extension with alias {alias} does not exist")

    def with_retries(fn: Callable[[Session], dict[str, Any]]) -> dict[str, Any]:
        """Run one write transaction; a unique-key race (two requests choosing the same address or
        MAC) is retried from the start, seeing the winner's rows."""
        for attempt in range(RETRIES):
            try:
                with store.transaction() as session:
                    out = fn(session)
                    store.bump(session)
                    return out
            except IntegrityError:
                if attempt == RETRIES - 1:
                    raise errors_conflict(
                        "The request conflicted with concurrent changes; retry it."
                    ) from None
        raise AssertionError("unreachable")

    def shape_network(session: Session, net: Network) -> dict[str, Any]:
        return networks.show(net, networks.subnet_ids(session, net.id).get(net.id, []))

    kinds = {
        "networks": Kind(
            "network",
            Network,
            shape_network,
            lambda ses, owner, raw: networks.create(ses, cfg, owner, raw),
            networks.get,
            lambda ses, rid, raw: networks.update(ses, cfg, rid, raw),
            networks.delete,
        ),
        "subnets": Kind(
            "subnet",
            Subnet,
            lambda _ses, sub: subnets.show(sub),
            subnets.create,
            subnets.get,
            subnets.update,
            subnets.delete,
        ),
        "security-groups": Kind(
            "security_group",
            SecurityGroup,
            lambda _ses, g: security_groups.show(g),
            security_groups.create,
            security_groups.get,
            security_groups.update,
            security_groups.delete,
            "security_groups",
        ),
        "security-group-rules": Kind(
            "security_group_rule",
            SecurityGroupRule,
            lambda _ses, r: security_groups.show_rule(r),
            security_groups.create_rule,
            security_groups.get_rule,
            security_groups.update_rule,
            security_groups.delete_rule,
            "security_group_rules",
        ),
        "qos/policies": Kind(
            "policy",
            QosPolicy,
            lambda _ses, q: qos.show(q),
            qos.create,
            qos.get,
            qos.update,
            qos.delete,
            "policies",
        ),
        "routers": Kind(
            "router",
            Router,
            routers.show,
            lambda ses, owner, raw: routers.create(ses, cfg, owner, raw),
            routers.get,
            routers.update,
            routers.delete,
        ),
        "floatingips": Kind(
            "floatingip",
            FloatingIP,
            lambda _ses, f: floatingips.show(f),
            floatingips.create,
            floatingips.get,
            floatingips.update,
            floatingips.delete,
        ),
        "ports": Kind(
            "port", Port, lambda _ses, p: ports.show(p), ports.create, ports.get, ports.update, ports.delete
        ),
    }

    def ensure_default_group(owner: str) -> None:
        with store.sessions() as session:
            exists = session.scalar(
                select(SecurityGroup.id).where(
                    SecurityGroup.project_id == owner, SecurityGroup.name == "default"
                )
            )
        if not exists:
            with_retries(lambda ses: (security_groups.default_group(ses, owner), {})[1])

    def add_tag_routes(collection: str, kind: Kind) -> None:
        """Neutron's tag API on every resource with standard attributes (/v2.0/<coll>/{id}/tags[/{tag}])."""
        prefix = f"/v2.0/{collection}/{{rid}}/tags"

        def change(rid: str, fn: Callable[[set[str]], set[str]]) -> dict[str, Any]:
            def run(session: Session) -> dict[str, Any]:
                row = kind.get(session, rid)
                new = fn({t.tag for t in row.tags})
                touch(row, {"tags": sorted(new)})
                return {"tags": sorted(new)}

            return with_retries(run)

        def list_tags(rid: str) -> dict[str, Any]:
            with store.sessions() as session:
                return {"tags": sorted(t.tag for t in kind.get(session, rid).tags)}

        async def replace_tags(request: Request, rid: str) -> dict[str, Any]:
            raw = await body(request)
            if not isinstance(raw, dict) or set(raw) != {"tags"}:
                raise BadRequest('Expected {"tags": [...]}')
            tags = check_tags(raw["tags"])
            return await run_in_threadpool(change, rid, lambda _old: set(tags))

        def clear_tags(rid: str) -> Response:
            change(rid, lambda _old: set())
            return Response(status_code=204)

        def check_tag(rid: str, tag: str) -> Response:
            with store.sessions() as session:
                if tag not in {t.tag for t in kind.get(session, rid).tags}:
                    raise NotFound(f"Tag {tag} could not be found for {kind.member} {rid}.")
            return Response(status_code=204)

        def add_tag(rid: str, tag: str) -> Response:
            check_tags([tag])
            change(rid, lambda old: old | {tag})
            return Response(status_code=201)

        def remove_tag(rid: str, tag: str) -> Response:
            def drop(old: set[str]) -> set[str]:
                if tag not in old:
                    raise NotFound(f"Tag {tag} could not be found for {kind.member} {rid}.")
                return old - {tag}

            change(rid, drop)
            return Response(status_code=204)

        app.get(prefix)(list_tags)
        app.put(prefix)(replace_tags)
        app.delete(prefix, status_code=204)(clear_tags)
        app.get(prefix + "/{tag}", status_code=204)(check_tag)
        app.put(prefix + "/{tag}", status_code=201)(add_tag)
        app.delete(prefix + "/{tag}", status_code=204)(remove_tag)

    def add_router_action(action: str, fn: Callable[[Session, str, Any], dict[str, Any]]) -> None:
        """PUT /v2.0/routers/{id}/add_router_interface (and remove_): Neutron answers 200 with the
        interface's ids, not the router."""

        async def handler(request: Request, rid: str) -> dict[str, Any]:
            raw = await body(request)
            return await run_in_threadpool(with_retries, lambda ses: fn(ses, rid, raw))

        app.put(f"/v2.0/routers/{{rid}}/{action}")(handler)

    def add_qos_rule_routes(rt: qos.RuleType) -> None:
        """Rules are sub-resources of a policy: /v2.0/qos/policies/{id}/<type>_rules[/{rule id}]."""
        prefix = f"/v2.0/qos/policies/{{pid}}/{rt.collection}"

        def listing(request: Request, pid: str) -> dict[str, Any]:
            with store.sessions() as session:
                items = [qos.show_rule(r) for r in qos.get(session, pid).rules if r.type == rt.name]
            for item in items:
                del item["type"], item["qos_policy_id"]
            return apply(
                items,
                list(request.query_params.multi_items()),
                collection=rt.collection,
                base_url=f"{base(request)}{prefix.format(pid=pid)}",
            )

        async def create(request: Request, pid: str) -> JSONResponse:
            raw = await body(request)
            out = await run_in_threadpool(
                with_retries, lambda ses: {rt.member: qos.show_rule(qos.create_rule(ses, rt, pid, raw))}
            )
            return JSONResponse(out, status_code=201)

        def show(pid: str, rid: str) -> dict[str, Any]:
            with store.sessions() as session:
                return {rt.member: qos.show_rule(qos.get_rule(session, rt, pid, rid))}

        async def update(request: Request, pid: str, rid: str) -> dict[str, Any]:
            raw = await body(request)
            return await run_in_threadpool(
                with_retries, lambda ses: {rt.member: qos.show_rule(qos.update_rule(ses, rt, pid, rid, raw))}
            )

        def delete(pid: str, rid: str) -> Response:
            def run(session: Session) -> dict[str, Any]:
                qos.delete_rule(session, rt, pid, rid)
                return {}

            with_retries(run)
            return Response(status_code=204)

        app.get(prefix)(listing)
        app.post(prefix)(create)
        app.get(prefix + "/{rid}")(show)
        app.put(prefix + "/{rid}")(update)
        app.delete(prefix + "/{rid}", status_code=204)(delete)

    def add_routes(collection: str, kind: Kind) -> None:
        def listing(request: Request) -> dict[str, Any]:
            if collection == "security-groups":  # Neutron shows a project its default group from the start
                ensure_default_group(project(request))
            with store.sessions() as session:
                if collection == "networks":  # one query for every network's subnets
                    sids = networks.subnet_ids(session)
                    items = [networks.show(n, sids.get(n.id, [])) for n in session.scalars(select(Network))]
                else:
                    items = [kind.shape(session, row) for row in session.scalars(select(kind.model))]
            return apply(
                items,
                list(request.query_params.multi_items()),
                collection=kind.plural or collection,
                base_url=f"{base(request)}/v2.0/{collection}",
            )

        async def create(request: Request) -> JSONResponse:
            raw, owner = await body(request), project(request)
            out = await run_in_threadpool(
                with_retries, lambda ses: {kind.member: kind.shape(ses, kind.create(ses, owner, raw))}
            )
            return JSONResponse(out, status_code=201)

        async def update(request: Request, rid: str) -> dict[str, Any]:
            raw = await body(request)
            return await run_in_threadpool(
                with_retries, lambda ses: {kind.member: kind.shape(ses, kind.update(ses, rid, raw))}
            )

        def show(request: Request, rid: str) -> dict[str, Any]:
            fields = request.query_params.getlist("fields")
            with store.sessions() as session:
                shown = kind.shape(session, kind.get(session, rid))
            if fields:
                shown = {k: v for k, v in shown.items() if k in fields}
            return {kind.member: shown}

        def delete(rid: str) -> Response:
            def run(session: Session) -> dict[str, Any]:
                kind.delete(session, rid)
                return {}

            with_retries(run)
            return Response(status_code=204)

        app.get(f"/v2.0/{collection}")(listing)
        app.post(f"/v2.0/{collection}")(create)
        app.get(f"/v2.0/{collection}/{{rid}}")(show)
        app.put(f"/v2.0/{collection}/{{rid}}")(update)
        app.delete(f"/v2.0/{collection}/{{rid}}", status_code=204)(delete)

    # first: the agents' long polls are most of the requests, and routes are matched in order
    add_agent_routes(app, store, service, with_retries)
    for collection, kind in kinds.items():
        add_routes(collection, kind)
        if collection != "security-group-rules":  # rules have no standard attributes in Neutron
            add_tag_routes(collection, kind)
    for rule_type in qos.RULE_TYPES.values():
        add_qos_rule_routes(rule_type)

    for action, fn in (
        ("add_router_interface", routers.add_interface),
        ("remove_router_interface", routers.remove_interface),
    ):
        add_router_action(action, fn)

    return app


def add_agent_routes(
    app: FastAPI,
    store: Store,
    service: ViewService,
    with_retries: Callable[[Callable[[Session], dict[str, Any]]], dict[str, Any]],
) -> None:
    """The agents' side of the controller (docs/agent-protocol.md) and Neutron's /v2.0/agents."""
    prefix = "/netweave/v1/chassis"

    def shown(session: Session, row: Any) -> dict[str, Any]:
        return chassis.show_agent(row, service, chassis.bound_ports(session).get(row.name, 0))

    @app.put(prefix + "/{name}")
    async def register(request: Request, name: str) -> dict[str, Any]:
        raw = await body(request)

        def run(ses: Session) -> dict[str, Any]:
            row = chassis.register(ses, name, raw)
            service.beat(name)  # registering is a sign of life: the answer already shows it alive
            return {"chassis": shown(ses, row)}

        return await run_in_threadpool(with_retries, run)

    @app.post(prefix + "/{name}/heartbeat", status_code=204)
    def heartbeat(name: str) -> Response:
        with store.sessions() as session:
            chassis.get(session, name)
        service.beat(name)
        return Response(status_code=204)

    @app.get(prefix + "/{name}/view")
    async def view(name: str, since: int = -1, epoch: str = "", wait: float = 0.0) -> dict[str, Any]:
        if not service.registered(name):  # the compiler's picture of the chassis table: no query per poll
            raise errors.resource_not_found("Chassis", name)
        return await service.watch(name, since, epoch, min(max(wait, 0.0), 120.0))

    @app.put(prefix + "/{name}/ports")
    async def report(request: Request, name: str) -> dict[str, Any]:
        raw = await body(request)
        service.beat(name)
        return await run_in_threadpool(with_retries, lambda ses: chassis.report_ports(ses, name, raw))

    @app.delete(prefix + "/{name}", status_code=204)
    def unregister(name: str) -> Response:
        def run(session: Session) -> dict[str, Any]:
            session.delete(chassis.get(session, name))
            return {}

        with_retries(run)
        service.heartbeats.pop(name, None)
        return Response(status_code=204)

    @app.get("/netweave/v1/stats")
    def stats() -> dict[str, Any]:
        with service.lock:
            return {
                "revision": service.compiler.revision,
                "epoch": service.compiler.epoch,
                "compiles": service.compiles,
                "compile_cpu_s": service.compile_cpu_s,
                "sections_computed": service.compiler.sections_computed,
                "views": len(service.compiler.states),
            }

    @app.get("/v2.0/agents")
    def agents(request: Request) -> dict[str, Any]:
        with store.sessions() as session:
            counts = chassis.bound_ports(session)
            items = [
                chassis.show_agent(row, service, counts.get(row.name, 0))
                for row in session.scalars(select(Chassis))
            ]
        return apply(
            items,
            list(request.query_params.multi_items()),
            collection="agents",
            base_url=f"{str(request.base_url).rstrip('/')}/v2.0/agents",
        )

    def by_id(session: Session, agent_id: str) -> Chassis:
        row = session.get(Chassis, agent_id)
        if row is None:
            raise NotFound(f"Agent {agent_id} could not be found.")
        return row

    @app.get("/v2.0/agents/{agent_id}")
    def agent(agent_id: str) -> dict[str, Any]:
        with store.sessions() as session:
            return {"agent": shown(session, by_id(session, agent_id))}

    @app.delete("/v2.0/agents/{agent_id}", status_code=204)
    def delete_agent(agent_id: str) -> Response:
        def run(session: Session) -> dict[str, Any]:
            row = by_id(session, agent_id)
            service.heartbeats.pop(row.name, None)
            session.delete(row)
            return {}

        with_retries(run)
        return Response(status_code=204)
