"""Workloads: Model graphs (ops with weights, FLOPs, activations), the zoo, importers, scenarios."""

from workloads.model import DTYPE_BITS, Model, Op, Tensor, WorkloadError, chain
from workloads.workload import Invocation, Workload, repeated, single

__all__ = ["DTYPE_BITS", "Invocation", "Model", "Op", "Tensor", "Workload", "WorkloadError",
           "chain", "repeated", "single"]
