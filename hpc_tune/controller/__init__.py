"""The controller: a pure decision core (``core``, with the stopping rules of ``stopping``),
the loop around it (``loop``), the lease (``lease``) and the launcher that starts, submits
and cancels it (``launcher``)."""
from .core import Decision, DecisionCore, News, TrialNews
from .loop import MAX_TICK, MIN_TICK, Controller

__all__ = ["Controller", "Decision", "DecisionCore", "MAX_TICK", "MIN_TICK", "News", "TrialNews"]
