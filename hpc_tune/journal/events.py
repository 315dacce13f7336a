"""The journal's events: one small frozen type per kind, and its JSON form, here only.

Every line of ``journal.jsonl`` is ``{"v": FORMAT_VERSION, "t": unix_time, "e": KIND, ...}``
with the fields of one of the types below. ``to_json`` gives the line's fields (the log adds
``v`` and ``t``); ``from_json`` reads them back, leniently: a field missing from an older
journal takes its default, so journals written by 0.1.0 replay unchanged.

    study      a study was created: its first line
    trial      a trial exists (recorded BEFORE its first submission)
    submitted  the backend accepted an attempt of a trial
    run        a run of a trial started (each attempt, each Slurm restart of its job): job,
               node, restart count, and why the run before it ended when known
    state      pending/running as the backend sees it
    report     one result line copied from the trial's result.jsonl
    retry      resubmitted (time limit, node failure, preemption)
    end        final: completed/failed/stopped/cancelled
    options    `resume` changed the per-trial Slurm options or the backend
    cancel     a user asked the study to stop
    study_end  finished/early_stopped/cancelled/failed
    controller a controller started, stopped or was submitted as a job
    warning    something the user should know (of the study, or of one trial)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, Mapping, Optional, Tuple, Type


def _int(v: Any, default: int = 0) -> int:
    return v if type(v) is int else default


def _num(v: Any) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _str(v: Any, default: str = "") -> str:
    return default if v is None else str(v)


@dataclass(frozen=True)
class Event:
    KIND: ClassVar[str] = ""

    def to_json(self) -> Dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Event":
        raise NotImplementedError


@dataclass(frozen=True)
class StudyCreated(Event):
    KIND: ClassVar[str] = "study"
    id: str
    seed: int
    file: str = ""
    cwd: str = ""
    base_dir: str = ""
    backend: str = "local"
    slurm: Dict[str, Any] = field(default_factory=dict)
    metric: Optional[str] = None
    optimization: Optional[str] = None
    poll_interval: float = 30.0
    version: str = ""

    def to_json(self) -> Dict[str, Any]:
        return {"e": self.KIND, "id": self.id, "seed": self.seed, "file": self.file, "cwd": self.cwd,
                "base_dir": self.base_dir, "backend": self.backend, "slurm": dict(self.slurm),
                "metric": self.metric, "optimization": self.optimization, "poll_interval": self.poll_interval,
                "version": self.version}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "StudyCreated":
        return cls(id=_str(d.get("id")), seed=_int(d.get("seed")), file=_str(d.get("file")), cwd=_str(d.get("cwd")),
                   base_dir=_str(d.get("base_dir")), backend=_str(d.get("backend"), "local"),
                   slurm=dict(d.get("slurm") or {}), metric=d.get("metric"), optimization=d.get("optimization"),
                   poll_interval=_num(d.get("poll_interval")) or 30.0, version=_str(d.get("version")))


@dataclass(frozen=True)
class TrialCreated(Event):
    KIND: ClassVar[str] = "trial"
    id: int
    params: Dict[str, Any]
    resource: Optional[float] = None
    meta: Dict[str, Any] = field(default_factory=dict)
    resume_from: Optional[int] = None  # 0.1.0 kept it in meta only (Hyperband's "resume_from")

    def to_json(self) -> Dict[str, Any]:
        out = {"e": self.KIND, "id": self.id, "params": self.params, "resource": self.resource, "meta": self.meta}
        if self.resume_from is not None:
            out["resume_from"] = self.resume_from
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "TrialCreated":
        meta = dict(d.get("meta") or {})
        resume_from = d.get("resume_from", meta.get("resume_from"))
        return cls(id=d["id"], params=dict(d.get("params") or {}), resource=d.get("resource"), meta=meta,
                   resume_from=resume_from if type(resume_from) is int else None)


@dataclass(frozen=True)
class Submitted(Event):
    KIND: ClassVar[str] = "submitted"
    id: int
    attempt: int
    job: str

    def to_json(self) -> Dict[str, Any]:
        return {"e": self.KIND, "id": self.id, "attempt": self.attempt, "job": self.job}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Submitted":
        return cls(id=d["id"], attempt=_int(d.get("attempt"), -1), job=str(d.get("job")))


@dataclass(frozen=True)
class RunStarted(Event):
    """A start of a trial's command, from the wrapper's ``started.json``: ``run`` is its
    identity (``<job id>.<restart count>``); only this run's exit record counts from now on."""

    KIND: ClassVar[str] = "run"
    id: int
    attempt: int
    run: str
    job: str
    node: str = ""
    restart_count: int = 0
    started: Optional[float] = None
    after: Optional[str] = None  # why the run before it ended, when known

    def to_json(self) -> Dict[str, Any]:
        out = {"e": self.KIND, "id": self.id, "attempt": self.attempt, "run": self.run, "job": self.job,
               "node": self.node, "restart_count": self.restart_count, "started": self.started}
        if self.after is not None:
            out["after"] = self.after
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "RunStarted":
        after = d.get("after")
        return cls(id=d["id"], attempt=_int(d.get("attempt")), run=_str(d.get("run")), job=_str(d.get("job")),
                   node=_str(d.get("node")), restart_count=_int(d.get("restart_count")),
                   started=_num(d.get("started")), after=None if after is None else str(after))


@dataclass(frozen=True)
class StateChanged(Event):
    KIND: ClassVar[str] = "state"
    id: int
    state: str  # "pending" or "running"
    raw: str = ""

    def to_json(self) -> Dict[str, Any]:
        return {"e": self.KIND, "id": self.id, "state": self.state, "raw": self.raw}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "StateChanged":
        return cls(id=d["id"], state=str(d["state"]), raw=_str(d.get("raw")))


@dataclass(frozen=True)
class Reported(Event):
    """One result line: ``data`` is the line's object with only numbers, strings, booleans
    and nulls kept, or None for a line that was not a JSON object (then a warning says so);
    ``end`` is the byte offset in result.jsonl after the line."""

    KIND: ClassVar[str] = "report"
    id: int
    end: int
    data: Optional[Dict[str, Any]]

    def to_json(self) -> Dict[str, Any]:
        return {"e": self.KIND, "id": self.id, "end": self.end, "data": self.data}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Reported":
        data = d.get("data")
        return cls(id=d["id"], end=_int(d.get("end")), data=data if type(data) is dict else None)


@dataclass(frozen=True)
class Retried(Event):
    KIND: ClassVar[str] = "retry"
    id: int
    attempt: int
    reason: str = ""
    counted: bool = True  # counts against max_retries (a preemption does not)

    def to_json(self) -> Dict[str, Any]:
        return {"e": self.KIND, "id": self.id, "attempt": self.attempt, "reason": self.reason, "counted": self.counted}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Retried":
        return cls(id=d["id"], attempt=_int(d.get("attempt"), -1), reason=_str(d.get("reason")),
                   counted=bool(d.get("counted", True)))


@dataclass(frozen=True)
class Ended(Event):
    KIND: ClassVar[str] = "end"
    id: int
    state: str  # completed / failed / stopped / cancelled
    value: Optional[float] = None
    reason: str = ""
    raw: Optional[str] = None
    started: Optional[float] = None  # from the exit record, when there is one
    ended: Optional[float] = None

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"e": self.KIND, "id": self.id, "state": self.state, "value": self.value,
                               "reason": self.reason}
        if self.raw is not None:
            out["raw"] = self.raw
        if self.started is not None:
            out["started"] = self.started
        if self.ended is not None:
            out["ended"] = self.ended
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Ended":
        raw = d.get("raw")
        return cls(id=d["id"], state=str(d["state"]), value=_num(d.get("value")), reason=_str(d.get("reason")),
                   raw=None if raw is None else str(raw), started=_num(d.get("started")), ended=_num(d.get("ended")))


@dataclass(frozen=True)
class OptionsChanged(Event):
    """What `resume` changes for the trials submitted from then on: Slurm options laid over
    the study record's (``extra`` sbatch options add up), and the backend."""

    KIND: ClassVar[str] = "options"
    slurm: Dict[str, Any] = field(default_factory=dict)
    backend: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"e": self.KIND, "slurm": dict(self.slurm)}
        if self.backend is not None:
            out["backend"] = self.backend
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "OptionsChanged":
        backend = d.get("backend")
        return cls(slurm=dict(d.get("slurm") or {}), backend=backend if isinstance(backend, str) else None)


@dataclass(frozen=True)
class CancelRequested(Event):
    KIND: ClassVar[str] = "cancel"
    reason: str = "cancelled by the user"

    def to_json(self) -> Dict[str, Any]:
        return {"e": self.KIND, "reason": self.reason}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "CancelRequested":
        return cls(reason=_str(d.get("reason"), "cancelled by the user"))


@dataclass(frozen=True)
class StudyEnded(Event):
    KIND: ClassVar[str] = "study_end"
    state: str  # finished / early_stopped / cancelled / failed
    reason: str = ""

    def to_json(self) -> Dict[str, Any]:
        return {"e": self.KIND, "state": self.state, "reason": self.reason}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "StudyEnded":
        return cls(state=_str(d.get("state")), reason=_str(d.get("reason")))


@dataclass(frozen=True)
class ControllerEvent(Event):
    """``action``: ``start`` (took the lease, of epoch ``epoch``; ``took_over`` says from whom
    when it was not released), ``stop``, or ``submitted`` (a controller job is queued: ``job``).
    Every other event a controller appends carries its lease's epoch too (``"epoch"`` beside
    the event's fields, see ``controller.loop``)."""

    KIND: ClassVar[str] = "controller"
    action: str
    host: Optional[str] = None
    pid: Optional[int] = None
    job: Optional[str] = None
    reason: Optional[str] = None
    took_over: Optional[str] = None
    epoch: Optional[int] = None

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"e": self.KIND, "action": self.action}
        if self.action != "submitted":
            out.update(host=self.host, pid=self.pid)
        if self.action != "stop" or self.job is not None:
            out["job"] = self.job
        for k in ("reason", "took_over", "epoch"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ControllerEvent":
        job = d.get("job")
        return cls(action=_str(d.get("action")), host=d.get("host"), pid=d.get("pid"),
                   job=None if job is None else str(job), reason=d.get("reason"), took_over=d.get("took_over"),
                   epoch=d.get("epoch") if type(d.get("epoch")) is int else None)


@dataclass(frozen=True)
class Warned(Event):
    KIND: ClassVar[str] = "warning"
    message: str
    id: Optional[int] = None  # the trial it is about, if any

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"e": self.KIND}
        if self.id is not None:
            out["id"] = self.id
        out["message"] = self.message
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Warned":
        tid = d.get("id")
        return cls(message=_str(d.get("message")), id=tid if type(tid) is int else None)


EVENT_TYPES: Tuple[Type[Event], ...] = (StudyCreated, TrialCreated, Submitted, RunStarted, StateChanged, Reported,
                                        Retried, Ended, OptionsChanged, CancelRequested, StudyEnded, ControllerEvent,
                                        Warned)
BY_KIND: Dict[str, Type[Event]] = {cls.KIND: cls for cls in EVENT_TYPES}


def to_json(events: "Tuple[Event, ...] | list") -> list:
    """The JSON form of each event, for ``Journal.append``."""
    return [e.to_json() for e in events]
