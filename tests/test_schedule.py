import pytest

from dopsd.sampling import plan_blocks


def test_paper_setting_reveals_two_tokens_per_step():
    plans = plan_blocks(256, 32, 128)
    assert len(plans) == 8
    assert all(plan.tokens_per_step == (2,) * 16 for plan in plans)
    assert [(p.start, p.end) for p in plans] == [(32 * i, 32 * i + 32) for i in range(8)]


@pytest.mark.parametrize(
    "gen_length, block_length, steps",
    [(40, 32, 40), (40, 32, 3), (10, 4, 5), (7, 3, 4), (64, 32, 2), (33, 8, 11), (100, 100, 7)],
)
def test_uneven_splits_cover_every_position_once(gen_length, block_length, steps):
    plans = plan_blocks(gen_length, block_length, steps)
    assert sum(len(p.tokens_per_step) for p in plans) == steps
    assert plans[0].start == 0 and plans[-1].end == gen_length
    for previous, plan in zip(plans, plans[1:]):
        assert previous.end == plan.start
    for plan in plans:
        assert plan.end - plan.start <= block_length
        assert sum(plan.tokens_per_step) == plan.end - plan.start
        assert all(count >= 1 for count in plan.tokens_per_step)
        assert max(plan.tokens_per_step) - min(plan.tokens_per_step) <= 1


def test_exact_small_split():
    plans = plan_blocks(7, 3, 4)
    assert [(p.start, p.end, p.tokens_per_step) for p in plans] == [(0, 3, (2, 1)), (3, 6, (3,)), (6, 7, (1,))]


@pytest.mark.parametrize("steps", [1, 65])
def test_steps_out_of_range(steps):
    with pytest.raises(ValueError, match="steps"):
        plan_blocks(64, 32, steps)
