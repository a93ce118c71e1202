"""Block-diffusion sampling, the trajectories it records, and batched pass@k rollouts."""

from dopsd.sampling.passk import PassKResult, passk_rollout
from dopsd.sampling.sampler import BlockDiffusionSampler, SamplerConfig
from dopsd.sampling.schedule import BlockPlan, plan_blocks
from dopsd.sampling.trajectory import Trajectory

__all__ = ["BlockDiffusionSampler", "BlockPlan", "PassKResult", "SamplerConfig", "Trajectory", "passk_rollout",
           "plan_blocks"]
