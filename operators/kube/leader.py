"""Leader election on a coordination.k8s.io Lease: one controller replica acts, others wait."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from operators.kube.api import LEASE, Body, KubeApi, KubeApiError

log = logging.getLogger(__name__)


def claim(lease: Body | None, identity: str, now: datetime, duration_s: int) -> Body | None:
    """The Lease `identity` should write to lead, or None while another holder's lease is live."""
    spec: dict[str, Any] = dict((lease or {}).get("spec") or {})
    holder = spec.get("holderIdentity")
    renewed = _parse(spec.get("renewTime"))
    expired = (
        renewed is None
        or renewed + timedelta(seconds=int(spec.get("leaseDurationSeconds", duration_s))) < now
    )
    if holder and holder != identity and not expired:
        return None
    taking_over = holder != identity
    spec.update(
        holderIdentity=identity,
        leaseDurationSeconds=duration_s,
        renewTime=_micro(now),
    )
    if taking_over:
        spec["acquireTime"] = _micro(now)
        spec["leaseTransitions"] = int(spec.get("leaseTransitions", 0)) + (1 if holder else 0)
    body = dict(lease or {})
    body["spec"] = spec
    return body


@dataclass
class LeaseElector:
    """Takes and renews one Lease; `lead` runs a callback only while this replica leads."""

    api: KubeApi
    namespace: str
    name: str
    identity: str
    duration_s: int = 15
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def try_acquire(self) -> bool:
        """Take or renew the lease; False while another replica holds it."""
        lease = self.api.get(LEASE, self.namespace, self.name)
        body = claim(lease, self.identity, self.clock(), self.duration_s)
        if body is None:
            return False
        try:
            if lease is None:
                body.update(
                    apiVersion=LEASE.api_version,
                    kind=LEASE.kind,
                    metadata={"name": self.name, "namespace": self.namespace},
                )
                created = self.api.create(LEASE, self.namespace, body)
                return bool(created.get("spec", {}).get("holderIdentity") == self.identity)
            # resourceVersion in the body makes this a compare-and-swap: a rival's write wins.
            self.api.replace(LEASE, self.namespace, self.name, body)
        except KubeApiError as error:
            if error.status == 409:
                return False
            raise
        return True

    def release(self) -> None:
        """Step down so another replica need not wait for the lease to expire."""
        lease = self.api.get(LEASE, self.namespace, self.name)
        if lease and lease.get("spec", {}).get("holderIdentity") == self.identity:
            lease["spec"]["holderIdentity"] = None
            lease["spec"]["renewTime"] = _micro(datetime(1970, 1, 1, tzinfo=UTC))
            self.api.replace(LEASE, self.namespace, self.name, lease)

    def lead(self, start: Callable[[], None], stop: threading.Event) -> bool:
        """Wait to lead, call `start` once, renew until `stop`; False if leadership was lost."""
        period = self.duration_s / 3
        leading = False
        last_renewal = self.clock()
        while not stop.is_set():
            try:
                acquired = self.try_acquire()
            except KubeApiError as error:
                log.warning("lease renewal failed: %s", error)
                acquired = False
            now = self.clock()
            if acquired:
                last_renewal = now
                if not leading:
                    log.info("leading as %s", self.identity)
                    leading = True
                    start()
            elif leading and (now - last_renewal).total_seconds() > self.duration_s:
                # Another replica may lead by now: stop acting at once (the pod restarts).
                log.error("lost the lease %s; stepping down", self.name)
                return False
            stop.wait(period)
        if leading:
            self.release()
        return True


def _micro(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
