"""The salts of the methods' random streams (:meth:`dopsd.trainers.base.Trainer.generator`), in one place.

A stream is seeded from the run's seed, its salt and the process, so a salt fixes what a seeded run draws: changing
one changes every run of the methods it seeds. The streams of one trainer need salts of their own; streams of
different methods may share one.
"""

from __future__ import annotations

# The token draws of rollouts (d-OPSD, RFT, GRPO, OPDLM), on the model's device.
ROLLOUT_SAMPLING_SALT = 7919
# SFT's masking ratios and masks, on the model's device: its only stream, so it takes the first salt.
SFT_MASKING_SALT = 7919
# d-OPSD: which later-block positions the teacher is shown filled, on the CPU.
TEACHER_REVEAL_SALT = 104729
# OPDLM: which recorded states of a trajectory are trained, on the CPU.
STATE_CHOICE_SALT = 104729
# GRPO: the prompt masks of a rollout's inner updates, on the model's device.
PROMPT_MASK_SALT = 104729
# RFT: the masking ratios and masks of its kept responses, on the model's device.
RFT_MASKING_SALT = 104729
