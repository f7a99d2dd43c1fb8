"""Neutron's error shape: `{"NeutronError": {"type", "message", "detail"}}` with the matching status.

The real clients (openstacksdk, python-openstackclient) map the status code and show the message, so
both follow Neutron (neutron-lib `exceptions`): NotFound 404, Conflict/InUse 409, BadRequest 400.
"""

from typing import Any


class NeutronError(Exception):
    status = 500
    type = "NeutronError"

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {"NeutronError": {"type": self.type, "message": self.message, "detail": self.detail}}


class BadRequest(NeutronError):  # noqa: N818 - Neutron's names
    status = 400
    type = "HTTPBadRequest"


class NotFound(NeutronError):  # noqa: N818 - Neutron's names
    status = 404
    type = "NotFound"


class Conflict(NeutronError):  # noqa: N818 - Neutron's names
    status = 409
    type = "Conflict"


def network_not_found(net_id: str) -> NotFound:
    e = NotFound(f"Network {net_id} could not be found.")
    e.type = "NetworkNotFound"
    return e


def resource_not_found(kind: str, rid: str) -> NotFound:
    e = NotFound(f"{kind} {rid} could not be found.")
    e.type = f"{kind.replace(' ', '')}NotFound"
    return e


def network_in_use(net_id: str) -> Conflict:
    e = Conflict(
        f"Unable to complete operation on network {net_id}. There are one or more ports still in use "
        "on the network."
    )
    e.type = "NetworkInUse"
    return e


def segmentation_id_in_use(network_type: str, seg_id: int) -> Conflict:
    e = Conflict(f"Unable to create the network. The {network_type} segmentation ID {seg_id} is in use.")
    e.type = "SegmentationIdInUse"
    return e


def no_segmentation_ids(network_type: str) -> Conflict:
    e = Conflict(f"Unable to create the network. No {network_type} segmentation ID is available.")
    e.type = "NoNetworkAvailable"
    return e
