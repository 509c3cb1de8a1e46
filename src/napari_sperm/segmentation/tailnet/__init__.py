"""The tail network: a learned per-pixel flagellum map used by the classic engine's tail finder."""

from .infer import DEFAULT_TAIL_WEIGHTS, TailFinder, load_tail_net, save_tail_net
from .model import TailNet

__all__ = ["DEFAULT_TAIL_WEIGHTS", "TailFinder", "TailNet", "load_tail_net", "save_tail_net"]
