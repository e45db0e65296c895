"""The operator's RPCs (``kvdb admin``): operators by hand, store state and labels, runtime
settings, schedulers, and one status answer.

A mixin of ``PdService``: every handler runs through its ``_serve`` (leader only, errors into the
answer's header) and changes the cluster only through the same paths the scheduler uses — the
operator controller, a conditional update of a store's record, ``member.update_config``. Every
check happens before anything changes, so a refused request leaves the cluster as it was and
says why in one line (``invalid_argument``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc

from kvdb.labels import check_name
from kvdb.pb import metapb_pb2, pdpb_pb2
from placement.cluster import ClusterModel, peer_on
from placement.config import LISTS, set_setting
from placement.rpc import invalid, now_ms
from placement.schedule import operator as ops
from placement.schedule.runner import update_store
from placement.state import Update

if TYPE_CHECKING:
    from placement.server import PdMember

ADMIN = "admin"
"""The origin of operators asked for by hand."""
STATE_NAMES = {pdpb_pb2.OFFLINE: "OFFLINE (decommission)", pdpb_pb2.UP: "UP (cancel a decommission)"}


def _state(state: int) -> str:
    return pdpb_pb2.StoreState.Name(state)


class AdminRpcs:
    """Mixin of ``PdService`` (which provides ``member``, ``_serve``, ``_require_bootstrapped`` and
    ``GetMembers``)."""

    member: PdMember
    _serve: Callable[..., Awaitable[object]]
    _require_bootstrapped: Callable[[], None]
    GetMembers: Callable[..., Awaitable[pdpb_pb2.GetMembersResponse]]
    _store_state_lock: asyncio.Lock | None = None

    @property
    def _model(self) -> ClusterModel:
        return self.member.cluster

    def _known_store(self, store_id: int) -> pdpb_pb2.StoreInfo:
        info = self._model.stores.get(store_id)
        if info is None:
            raise invalid(f"store {store_id} is unknown")
        return info

    # ------------------------------------------------------------------------------ operators
    async def AddOperator(self, request: pdpb_pb2.AddOperatorRequest,
                          context: grpc.aio.ServicerContext) -> pdpb_pb2.AddOperatorResponse:
        resp = pdpb_pb2.AddOperatorResponse()

        async def handle() -> None:
            self._require_bootstrapped()
            # The id first: from here on no await, so the operator is planned on the range as it is.
            peer_id = await self.member.ids.alloc() if request.WhichOneof("kind") == "move_replica" else 0
            op = self._admin_operator(request, peer_id)
            controller = self.member.controller
            running = controller.get(request.range_id)
            if running is not None and running.priority >= ops.Priority.ADMIN:
                raise invalid(f"range {request.range_id} already has an operator by hand: operator "
                              f"{running.id}, {running.description} (cancel it first)")
            if not controller.add(op, now_ms()):
                raise invalid(f"range {request.range_id}: the operator controller refused the operator")
            resp.operator.CopyFrom(op.to_info())

        return await self._serve(request, resp, handle)

    def _admin_operator(self, request: pdpb_pb2.AddOperatorRequest, peer_id: int) -> ops.Operator:
        """The operator asked for, or RequestError saying why the range cannot have it now."""
        model, now = self._model, now_ms()
        info = model.get_range(request.range_id)
        if info is None:
            raise invalid(f"range {request.range_id} is unknown")
        kind = request.WhichOneof("kind")
        if kind is None:
            raise invalid("AddOperator needs move_replica or transfer_leader")
        if info.joint:
            raise invalid(f"range {request.range_id} is mid-way through a membership change; try again "
                          "once it is done")
        if kind == "transfer_leader":
            to = request.transfer_leader.to_store
            peer = self._replica_on(info, to)
            if peer.role != metapb_pb2.VOTER:
                raise invalid(f"range {info.descriptor.id}'s replica on store {to} is a "
                              f"{metapb_pb2.PeerRole.Name(peer.role).lower()}, not a voter: it cannot lead")
            if info.leader.id == peer.id:
                raise invalid(f"store {to} already leads range {info.descriptor.id}")
            self._require_up(to, now)
            return ops.transfer_leader(info, peer, ADMIN, ops.Priority.ADMIN)
        move = request.move_replica
        if move.from_store == move.to_store:
            raise invalid(f"move-replica from store {move.from_store} to itself")
        old = self._replica_on(info, move.from_store)
        self._known_store(move.to_store)
        if peer_on(info, move.to_store) is not None:
            raise invalid(f"range {info.descriptor.id} already has a replica on store {move.to_store}")
        self._require_up(move.to_store, now)
        leader_to = None
        if info.leader.id == old.id:
            leader_to = self._new_leader(info, old, now)
        return ops.move_replica(info, move.from_store, move.to_store, peer_id, ADMIN, ops.Priority.ADMIN,
                                leader_to)

    def _replica_on(self, info: pdpb_pb2.RangeInfo, store_id: int) -> metapb_pb2.Peer:
        self._known_store(store_id)
        peer = peer_on(info, store_id)
        if peer is None:
            stores = ", ".join(str(p.store_id) for p in info.descriptor.peers)
            raise invalid(f"range {info.descriptor.id} has no replica on store {store_id} (it has replicas "
                          f"on stores {stores})")
        return peer

    def _require_up(self, store_id: int, now: int) -> None:
        state = self._model.state(store_id, now)
        if state != pdpb_pb2.UP:
            raise invalid(f"store {store_id} is {_state(state)}, not UP")

    def _new_leader(self, info: pdpb_pb2.RangeInfo, leaving: metapb_pb2.Peer, now: int) -> metapb_pb2.Peer:
        """The voter on an UP store (fewest leaders first) that takes over from a leader being moved."""
        voters = [p for p in info.descriptor.peers if p.role == metapb_pb2.VOTER and p.id != leaving.id
                  and self._model.state(p.store_id, now) == pdpb_pb2.UP]
        if not voters:
            raise invalid(f"range {info.descriptor.id}: its leader on store {leaving.store_id} would move, "
                          "and no other voter on an UP store can take over")
        return min(voters, key=lambda p: (self._model.leader_count(p.store_id), p.store_id))

    async def ListOperators(self, request: pdpb_pb2.ListOperatorsRequest,
                            context: grpc.aio.ServicerContext) -> pdpb_pb2.ListOperatorsResponse:
        resp = pdpb_pb2.ListOperatorsResponse()

        async def handle() -> None:
            controller = self.member.controller
            listed = [*controller.history(), *controller.running()] if request.include_finished else \
                controller.running()
            resp.operators.extend(op.to_info() for op in sorted(listed, key=lambda op: op.id))

        return await self._serve(request, resp, handle)

    async def CancelOperator(self, request: pdpb_pb2.CancelOperatorRequest,
                             context: grpc.aio.ServicerContext) -> pdpb_pb2.CancelOperatorResponse:
        """Cancels a running operator; one that already ended is answered as it ended (so a retry
        after a lost answer is not an error). Steps a leader already carried out stay done."""
        resp = pdpb_pb2.CancelOperatorResponse()

        async def handle() -> None:
            controller = self.member.controller
            op = controller.cancel(request.operator_id, now_ms())
            if op is None:
                op = next((o for o in controller.history() if o.id == request.operator_id), None)
            if op is None:
                raise invalid(f"operator {request.operator_id} is unknown (neither running nor recently "
                              "finished)")
            resp.operator.CopyFrom(op.to_info())

        return await self._serve(request, resp, handle)

    # --------------------------------------------------------------------------------- stores
    async def SetStoreState(self, request: pdpb_pb2.SetStoreStateRequest,
                            context: grpc.aio.ServicerContext) -> pdpb_pb2.SetStoreStateResponse:
        """OFFLINE starts a decommission (the replica checker moves every replica off, then the
        coordinator marks the store TOMBSTONE); UP cancels one. Asking for the state a store is
        already in succeeds and changes nothing."""
        resp = pdpb_pb2.SetStoreStateResponse()

        async def handle() -> None:
            self._require_bootstrapped()
            store_id, target = request.store_id, request.state
            if target not in STATE_NAMES:
                raise invalid(f"a store can only be set {' or '.join(STATE_NAMES.values())}, "
                              f"not {_state(target)}")
            # One decision at a time: two decommissions checked at once could each leave enough UP stores.
            if self._store_state_lock is None:
                self._store_state_lock = asyncio.Lock()
            async with self._store_state_lock:
                self._check_state_change(store_id, target, now_ms())

                async def modify(raw: bytes | None) -> Update | None:
                    if raw is None:
                        raise invalid(f"store {store_id} is unknown")
                    stored = pdpb_pb2.StoreInfo.FromString(raw)
                    if stored.state == target:
                        return None
                    if stored.state == pdpb_pb2.TOMBSTONE:
                        raise invalid(f"store {store_id} is a TOMBSTONE: it left the cluster for good")
                    stored.state = target
                    return stored.SerializeToString(), {}, []

                await update_store(self.member, store_id, modify)
            resp.store.CopyFrom(self._model.store_with_state(store_id, now_ms()))

        return await self._serve(request, resp, handle)

    def _check_state_change(self, store_id: int, target: int, now: int) -> None:
        model = self._model
        recorded = self._known_store(store_id).state
        if recorded == pdpb_pb2.TOMBSTONE:
            raise invalid(f"store {store_id} is a TOMBSTONE: it left the cluster for good")
        if target == pdpb_pb2.UP and recorded != pdpb_pb2.OFFLINE:
            now_state = _state(model.state(store_id, now))
            raise invalid(f"store {store_id} is not being decommissioned (it is {now_state})")
        if target == pdpb_pb2.OFFLINE and recorded != pdpb_pb2.OFFLINE:
            others_up = sum(1 for sid in model.stores
                            if sid != store_id and model.state(sid, now) == pdpb_pb2.UP)
            replicas = model.config.replica_count
            if others_up < replicas:
                raise invalid(f"decommissioning store {store_id} would leave {others_up} UP stores for "
                              f"{replicas} replicas per range: add a store first")

    async def SetStoreLabels(self, request: pdpb_pb2.SetStoreLabelsRequest,
                             context: grpc.aio.ServicerContext) -> pdpb_pb2.SetStoreLabelsResponse:
        resp = pdpb_pb2.SetStoreLabelsResponse()

        async def handle() -> None:
            self._require_bootstrapped()
            store_id = request.store_id
            if self._known_store(store_id).state == pdpb_pb2.TOMBSTONE:
                raise invalid(f"store {store_id} is a TOMBSTONE: it left the cluster for good")
            check_labels(request.labels)

            async def modify(raw: bytes | None) -> Update | None:
                if raw is None:
                    raise invalid(f"store {store_id} is unknown")
                stored = pdpb_pb2.StoreInfo.FromString(raw)
                if list(stored.labels) == list(request.labels):
                    return None
                del stored.labels[:]
                stored.labels.extend(request.labels)
                return stored.SerializeToString(), {}, []

            await update_store(self.member, store_id, modify)
            resp.store.CopyFrom(self._model.store_with_state(store_id, now_ms()))

        return await self._serve(request, resp, handle)

    # ------------------------------------------------------------------------- settings
    async def GetConfig(self, request: pdpb_pb2.GetConfigRequest,
                        context: grpc.aio.ServicerContext) -> pdpb_pb2.GetConfigResponse:
        """The settings in effect (unset ones at their defaults)."""
        resp = pdpb_pb2.GetConfigResponse()

        async def handle() -> None:
            resp.config.CopyFrom(self._model.config)

        return await self._serve(request, resp, handle)

    async def SetConfig(self, request: pdpb_pb2.SetConfigRequest,
                        context: grpc.aio.ServicerContext) -> pdpb_pb2.SetConfigResponse:
        """One setting, validated against the settings in effect first (so a bad value changes
        nothing), then replicated. A list setting takes the whole list (``1,2``), or ``+ITEM`` /
        ``-ITEM`` to add or drop one item of the list as it is when the write applies."""
        resp = pdpb_pb2.SetConfigResponse()

        async def handle() -> None:
            key, value = request.key.strip(), request.value.strip()
            trial = pdpb_pb2.ScheduleConfig()
            trial.CopyFrom(self._model.config)
            self._apply_setting(trial, key, value)
            await self.member.update_config(lambda c: self._apply_setting(c, key, value))
            resp.config.CopyFrom(self._model.config)  # in effect: unset settings at their defaults

        return await self._serve(request, resp, handle)

    def _apply_setting(self, config: pdpb_pb2.ScheduleConfig, key: str, value: str) -> None:
        """``set_setting`` plus what only the cluster can check: known stores and scheduler names,
        a down time longer than the disconnect time."""
        if key in LISTS and value[:1] in ("+", "-"):
            items = [str(item) for item in getattr(config, key)]
            item = value[1:].strip()
            if value[0] == "-":
                items = [i for i in items if i != item]
            elif item not in items:
                items.append(item)
            value = ",".join(items)
        try:
            set_setting(config, key, value)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        if key == "paused_schedulers":
            known = self.member.coordinator.scheduler_names()
            if unknown := [n for n in config.paused_schedulers if n not in known]:
                raise invalid(f"unknown scheduler {unknown[0]!r}; known: {', '.join(known) or 'none'}")
        if key == "evict_leader_stores":
            for store_id in config.evict_leader_stores:
                self._known_store(store_id)
        disconnect_ms = self.member.config.store_disconnect_ms
        if key == "store_down_ms" and config.store_down_ms <= disconnect_ms:
            raise invalid(f"store_down_ms must exceed the store disconnect time ({disconnect_ms} ms)")

    # ------------------------------------------------------------------------- schedulers
    async def ListSchedulers(self, request: pdpb_pb2.ListSchedulersRequest,
                             context: grpc.aio.ServicerContext) -> pdpb_pb2.ListSchedulersResponse:
        resp = pdpb_pb2.ListSchedulersResponse()

        async def handle() -> None:
            resp.schedulers.extend(self.member.coordinator.scheduler_infos())

        return await self._serve(request, resp, handle)

    async def PauseScheduler(self, request: pdpb_pb2.PauseSchedulerRequest,
                             context: grpc.aio.ServicerContext) -> pdpb_pb2.PauseSchedulerResponse:
        """Pause (or resume) a scheduler by name: an edit of ``paused_schedulers``, so it is
        replicated and a new PD leader keeps it paused."""
        resp = pdpb_pb2.PauseSchedulerResponse()

        async def handle() -> None:
            name = request.name.strip()
            known = self.member.coordinator.scheduler_names()
            if name not in known:
                raise invalid(f"unknown scheduler {name!r}; known: {', '.join(known) or 'none'}")
            edit = f"{'-' if request.resume else '+'}{name}"
            await self.member.update_config(lambda c: self._apply_setting(c, "paused_schedulers", edit))
            infos = self.member.coordinator.scheduler_infos()
            resp.scheduler.CopyFrom(next(s for s in infos if s.name == name))

        return await self._serve(request, resp, handle)

    # ----------------------------------------------------------------------------- status
    async def GetClusterStatus(self, request: pdpb_pb2.GetClusterStatusRequest,
                               context: grpc.aio.ServicerContext) -> pdpb_pb2.GetClusterStatusResponse:
        """Everything ``kvdb admin status`` shows, from this leader's view at one moment."""
        resp = pdpb_pb2.GetClusterStatusResponse()

        async def handle() -> None:
            member, model, now = self.member, self._model, now_ms()
            members = await self.GetMembers(pdpb_pb2.GetMembersRequest(), context)  # one answer for both
            resp.members.extend(members.members)
            resp.leader.CopyFrom(members.leader)
            resp.stores.extend(model.store_with_state(sid, now) for sid in sorted(model.stores))
            resp.range_count = len(model.ranges)
            running = sorted(member.controller.running(), key=lambda op: op.id)
            resp.operators.extend(op.to_info() for op in running)
            resp.config.CopyFrom(model.config)
            resp.schedulers.extend(member.coordinator.scheduler_infos())

        return await self._serve(request, resp, handle)


def check_labels(labels: list[pdpb_pb2.StoreLabel]) -> None:
    """Labels in the one syntax every place that writes them accepts (``kvdb.labels``), each key once."""
    seen = set()
    for label in labels:
        try:
            check_name(label.key, "key", "labels")
            check_name(label.value, "value", "labels")
        except ValueError as exc:
            raise invalid(str(exc)) from None
        if label.key in seen:
            raise invalid(f"label {label.key!r} given twice")
        seen.add(label.key)
