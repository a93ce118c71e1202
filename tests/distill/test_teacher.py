import math

import torch

from dopsd.distill.teacher import reveal_future

MASK = 9


def test_reveals_floor_rho_of_the_later_masked_positions_and_never_the_current_block():
    final = torch.arange(12) + 20  # never equal to MASK
    states = torch.full((4, 12), MASK)
    states[1, :2] = final[:2]
    states[2, :4] = final[:4]
    states[3, :9] = final[:9]
    block_ends = torch.tensor([4, 4, 8, 12])
    generator = torch.Generator().manual_seed(0)
    for ratio in (0.1, 0.25, 0.5, 1.0):
        teacher = reveal_future(states, final, block_ends, mask_id=MASK, retain_ratio=ratio, generator=generator)
        for step in range(4):
            changed = torch.nonzero(teacher[step] != states[step]).flatten()
            candidates = 12 - int(block_ends[step])
            assert len(changed) == math.floor(ratio * candidates)
            assert bool((changed >= block_ends[step]).all())  # never the current block or earlier
            assert bool((states[step, changed] == MASK).all())  # only where the student state is masked
            assert torch.equal(teacher[step, changed], final[changed])  # filled from y_0
        assert torch.equal(teacher[3], states[3])  # last block: nothing after it to reveal


def test_draws_are_independent_per_step_and_seeded():
    final = torch.arange(40) + 20
    states = torch.full((6, 40), MASK)
    block_ends = torch.full((6,), 8)

    def make(seed):
        return reveal_future(
            states, final, block_ends, mask_id=MASK, retain_ratio=0.25, generator=torch.Generator().manual_seed(seed)
        )

    first = make(1)
    assert torch.equal(first, make(1))
    assert not torch.equal(first, make(2))
    assert len({tuple(torch.nonzero(row != MASK).flatten().tolist()) for row in first}) > 1


def test_skipping_uninformed_states_keeps_exactly_the_states_the_teacher_sees_more_of():
    from dopsd.distill import prepare_trajectory
    from dopsd.sampling import Trajectory

    # 8 tokens in blocks of 4, one token a step: steps 0-3 decode block 0, steps 4-7 block 1 (nothing after it).
    trajectory = Trajectory(prompt_ids=torch.tensor([5, 6]), tokens=torch.tensor([1, 2, 3, 4, 5, 6, 7, 8]),
                            reveal_step=torch.tensor([0, 1, 2, 3, 4, 5, 6, 7]), num_steps=8, num_recorded_steps=8,
                            block_length=4, mask_id=0)
    full = prepare_trajectory(trajectory, 0.5, torch.Generator().manual_seed(0))
    kept = prepare_trajectory(trajectory, 0.5, torch.Generator().manual_seed(0), skip_uninformed=True)
    informed = [row for row in range(8) if not torch.equal(full.teacher_states[row], full.student_states[row])]
    assert informed == [0, 1, 2, 3]  # rho 0.5 of block 1's four masks is revealed while block 0 decodes
    assert kept.steps.tolist() == informed and [kept.step_number(r) for r in range(4)] == informed
    assert torch.equal(kept.teacher_states, full.teacher_states[informed])
    assert torch.equal(kept.counts, full.counts[informed]) and kept.num_steps == 4
