"""Block-diffusion sampling and the trajectories it records."""

from dopsd.sampling.sampler import BlockDiffusionSampler, SamplerConfig
from dopsd.sampling.schedule import BlockPlan, plan_blocks
from dopsd.sampling.trajectory import Trajectory

__all__ = ["BlockDiffusionSampler", "BlockPlan", "SamplerConfig", "Trajectory", "plan_blocks"]
