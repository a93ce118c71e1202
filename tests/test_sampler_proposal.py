"""The sampler's proposal step after the hot-path changes picks exactly what the straightforward formula picks.

The reference below is the proposal as dopsd computed it before: a float64 copy of the logits, Gumbel noise
-log(-log u) in separate tensors, scores logits / T + noise, and the confidence exp(logit - logsumexp) of the proposed
token. The sampler now computes it in place and, in threshold mode, only at the still-masked positions; with the same
seed it must give the same tokens, the same confidences and leave the generator in the same state.
"""

import dataclasses

import pytest
import torch
from conftest import tiny_builtin

from dopsd.sampling import BlockDiffusionSampler, SamplerConfig

MASK = 7


def reference_propose(logits, generator, temperature, remasking):
    if temperature > 0:
        logits = logits.to(torch.float64)
        logits[..., MASK] = -torch.inf
        uniform = torch.rand(logits.shape, dtype=torch.float64, generator=generator)
        gumbel = -torch.log(-torch.log(uniform))
        proposal = (logits / temperature + gumbel).argmax(dim=-1)
    else:
        logits = logits.clone()
        logits[..., MASK] = -torch.inf
        proposal = logits.argmax(dim=-1)
    if remasking == "random":
        return proposal, torch.rand(proposal.shape, dtype=torch.float64, generator=generator)
    chosen = logits.gather(-1, proposal[..., None]).squeeze(-1).to(torch.float64)
    return proposal, (chosen - torch.logsumexp(logits, dim=-1).to(torch.float64)).exp()


def sampler(temperature, remasking="low_confidence"):
    lm = tiny_builtin()
    lm.tokens = dataclasses.replace(lm.tokens, mask=MASK)
    return BlockDiffusionSampler(lm, SamplerConfig(gen_length=8, block_length=8, steps=4, temperature=temperature,
                                                   remasking=remasking))


def logits_with_ties(dtype, shape=(3, 6, 50)):
    logits = torch.randn(shape, generator=torch.Generator().manual_seed(1)).mul(3).to(dtype)
    logits[0, 0, 10] = logits[0, 0, 11] = logits[0, 0].max() + 1  # an exact tie: both pick the first
    logits[1, 2, MASK] = 100.0  # the mask token ranked first: never proposed
    return logits


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.0])
@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
def test_the_proposal_picks_what_the_reference_formula_picks(dtype, temperature, remasking):
    logits = logits_with_ties(dtype)
    ours_generator, reference_generator = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    expected = reference_propose(logits.clone(), reference_generator, temperature, remasking)
    got = sampler(temperature, remasking)._propose(logits.clone(), ours_generator)
    assert torch.equal(got[0], expected[0])
    assert torch.equal(got[1], expected[1])  # bit for bit, not approximately
    assert (got[0] != MASK).all()
    assert torch.equal(ours_generator.get_state(), reference_generator.get_state())  # the same draws consumed


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_threshold_mode_reads_the_whole_blocks_noise_at_the_masked_positions(temperature):
    """Threshold mode projects only the still-masked positions but draws noise for the whole block, as before."""
    block = logits_with_ties(torch.float32)
    cells = torch.tensor([[0, 2, 5], [1, 3, 4], [4, 5, 0]])  # masked offsets first; row 2's last cell is revealed
    reference_generator, ours_generator = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    proposal, confidence = reference_propose(block.clone(), reference_generator, temperature, "low_confidence")
    at_cells = block.gather(1, cells[..., None].expand(-1, -1, block.shape[-1]))
    got = sampler(temperature)._propose(at_cells.clone(), ours_generator, (block.shape[1], cells))
    assert torch.equal(got[0], proposal.gather(1, cells))
    assert torch.equal(got[1], confidence.gather(1, cells))
    assert torch.equal(ours_generator.get_state(), reference_generator.get_state())
