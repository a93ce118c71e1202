"""The bench's table: per trajectory, min and median seconds of each side and naive / dopsd ratios (a block-attention
shape's: cached and uncached rollout, with forwards and tokens per forward)."""

from __future__ import annotations

MIB = 2**20
W = 34  # the label column
NONE = {"min": float("nan"), "median": float("nan")}


def _ratio(naive: float, dopsd: float) -> str:
    return f"{naive / dopsd:.2f}x" if dopsd > 0 and naive == naive else "-"


def format_table(results: dict) -> str:
    if "block" in results:
        return format_block_table(results)
    s, m = results["settings"], results["model"]
    params = (m["body_parameters"] + m["head_parameters"]) / 1e6
    rollout, loss = results["rollout"], results["loss"]
    naive = "naive" in rollout
    lines = [
        f"dopsd bench: shape {s['shape']} (hidden {m['hidden']}, {m['layers']} layers, vocab {m['vocab']}, "
        f"{params:.1f}M parameters), {s['device']} {s['dtype']}, {results.get('threads', '?')} threads",
        f"prompt {s['prompt_length']}, response {s['gen_length']} in blocks of {s['block_length']}, {s['steps']} "
        f"steps, temperature {s['temperature']}, dopsd batch {s['batch']}, cache {s.get('cache') or 'none'}, "
        f"{results['states']} states per trajectory; "
        f"dopsd {s['warmup']} warm-up + {s['repeats']} runs, naive {s.get('naive_warmup', 0)} + "
        f"{s.get('naive_repeats', s['repeats'])} (min / median)",
        _trained_line(results),
        "",
        f"{'per trajectory':<{W}}{'dopsd min':>11}{'median':>9}{'naive min':>11}{'median':>9}{'naive/dopsd':>13}",
    ]
    rows = [("rollout (s)", rollout["dopsd"]["seconds"], rollout.get("naive", {}).get("seconds", NONE)),
            ("loss + backward (s)", loss["dopsd"]["seconds"], loss.get("naive", {}).get("seconds", NONE)),
            ("sum (s)", results["sum"]["dopsd"], results["sum"].get("naive", NONE))]
    for key in rollout:
        if key.startswith("dopsd:"):  # dopsd's rollout in another cache mode, same process; the loss is the same
            mode = key.split(":")[1]
            rows += [(f"rollout, {mode} (s)", rollout[key]["seconds"], rows[0][2]),
                     (f"sum, {mode} (s)", results["sum"][key], rows[2][2])]
    for name, ours, theirs in rows:
        lines.append(f"{name:<{W}}{ours['min']:>11.3f}{ours['median']:>9.3f}{theirs['min']:>11.3f}"
                     f"{theirs['median']:>9.3f}{_ratio(theirs['min'], ours['min']):>13}")
    sides = ("dopsd", "naive") if naive else ("dopsd",)
    gen = s["gen_length"]
    tokens = [gen / rollout[side]["seconds"]["min"] for side in sides]
    lines.append(f"{'rollout tokens/s':<{W}}" + "".join(f"{value:>20.1f}" for value in tokens))
    for phase in ("rollout", "loss"):
        peak = [results[phase][side]["peak_bytes"] / MIB for side in sides]
        ratio = _ratio(peak[1], peak[0]) if naive else ""
        lines.append(f"{'peak memory ' + phase + ' (MiB)':<{W}}" + "".join(f"{v:>20.0f}" for v in peak)
                     + f"{ratio:>13}")
    if results.get("peak_flops"):
        for phase in ("rollout", "loss"):
            mfu = [results[phase][side]["flops"] / results[phase][side]["seconds"]["min"] / results["peak_flops"]
                   for side in sides]
            lines.append(f"{'MFU ' + phase:<{W}}" + "".join(f"{v:>20.1%}" for v in mfu))
    else:
        lines.append("MFU: not computed (no GPU peak known; pass --peak-tflops)")
    if not naive:
        return "\n".join(lines)
    passk, solved = s["passk"], s.get("solved_round", 5)
    naive_rollout, naive_loss = rollout["naive"]["seconds"]["min"], loss["naive"]["seconds"]["min"]
    for key in [key for key in rollout if key.startswith("dopsd")]:
        ours = rollout[key]["seconds"]["min"]
        mode = f", {key.split(':')[1]}" if ":" in key else ""
        unsolved = (passk * ours, passk * naive_rollout + naive_loss)  # the naive loss runs anyway, times zero
        lines.append(f"{f'prompt, pass@{passk} unsolved{mode} (s)':<{W}}{unsolved[0]:>20.3f}{unsolved[1]:>20.3f}"
                     f"{_ratio(unsolved[1], unsolved[0]):>13}   (dopsd never runs the loss on it)")
        # solved at round `solved`: both run that many rollouts; dopsd one loss, the naive procedure every round's
        rounds = (solved * ours + loss["dopsd"]["seconds"]["min"], solved * (naive_rollout + naive_loss))
        lines.append(f"{f'prompt, solved round {solved}{mode} (s)':<{W}}{rounds[0]:>20.3f}{rounds[1]:>20.3f}"
                     f"{_ratio(rounds[1], rounds[0]):>13}   ({solved} rollouts; loss: dopsd 1, naive {solved})")
    value = results["loss_value"]
    if value["dopsd"]:
        lines.append(f"loss value: dopsd {value['dopsd']:.6f}, naive {value['naive']:.6f} (naive sums over K_t where "
                     f"dopsd averages: expected ratio {value['tokens_per_step']:g}, measured "
                     f"{value['naive'] / value['dopsd']:.4f})")
    return "\n".join(lines)


def _trained_line(results: dict) -> str:
    """What the loss's backward trains on both sides: every weight, or a LoRA adapter only."""
    trained = results.get("trained")
    if trained is None:  # a result saved before the bench said it: every weight
        return "loss backward trains every weight (both sides)"
    lora, holders = trained["lora"], trained["gradients"]
    only = " and ".join(f"{side} {'adapter only' if held['adapter_only'] else 'NOT adapter only'}"
                        for side, held in holders.items())
    if lora is None:
        return f"loss backward trains every weight (both sides): {trained['parameters'] / 1e6:.2f}M parameters"
    return (f"loss backward trains a LoRA adapter only (both sides): r {lora['rank']}, alpha {lora['alpha']:g}, "
            f"{lora['targets']}; {lora['trainable_parameters'] / 1e6:.2f}M of {lora['total_parameters'] / 1e6:.2f}M "
            f"parameters; gradients held: {only}; teacher passes with the adapter off")


def format_block_table(results: dict) -> str:
    """A block-attention shape's table: the rollout with the exact block cache against the same model uncached."""
    s, m, rollout = results["settings"], results["model"], results["rollout"]
    params = (m["body_parameters"] + m["head_parameters"]) / 1e6
    cached, uncached = rollout["cached"], rollout["uncached"]
    column = 22  # min + median of one side

    def pair(label, ours, theirs, ratio="", digits=3):
        return f"{label:<{W}}{ours:>{column}.{digits}f}{theirs:>{column}.{digits}f}{ratio:>17}"

    lines = [
        f"dopsd bench: shape {s['shape']}, block attention (block size {results['block']['block_size']}) (hidden "
        f"{m['hidden']}, {m['layers']} layers, vocab {m['vocab']}, {params:.1f}M parameters), {s['device']} "
        f"{s['dtype']}, {results.get('threads', '?')} threads",
        f"prompt {s['prompt_length']}, response {s['gen_length']} in blocks of {s['block_length']}, {s['steps']} "
        f"steps, temperature {s['temperature']}, batch {s['batch']}; the same model and sampler with the exact block "
        f"cache and without it; {s['warmup']} warm-up + {s['repeats']} runs each (min / median)",
        "",
        f"{'per trajectory':<{W}}{'cached min':>13}{'median':>9}{'uncached min':>13}{'median':>9}"
        f"{'uncached/cached':>17}",
        f"{'rollout (s)':<{W}}{cached['seconds']['min']:>13.3f}{cached['seconds']['median']:>9.3f}"
        f"{uncached['seconds']['min']:>13.3f}{uncached['seconds']['median']:>9.3f}"
        f"{_ratio(uncached['seconds']['min'], cached['seconds']['min']):>17}",
        pair("rollout tokens/s", s["gen_length"] / cached["seconds"]["min"],
             s["gen_length"] / uncached["seconds"]["min"], digits=1),
        pair("forwards per rollout", cached["forwards"], uncached["forwards"], digits=0),
        pair("tokens per forward", cached["tokens_per_forward"], uncached["tokens_per_forward"],
             _ratio(uncached["tokens_per_forward"], cached["tokens_per_forward"]), digits=2),
        pair("peak memory rollout (MiB)", cached["peak_bytes"] / MIB, uncached["peak_bytes"] / MIB, digits=0),
    ]
    if results.get("peak_flops") and "flops" in cached:  # results saved before FLOPs were counted have none
        mfu = [side["flops"] / side["seconds"]["min"] / results["peak_flops"] for side in (cached, uncached)]
        lines.append(f"{'MFU rollout':<{W}}{mfu[0]:>{column}.1%}{mfu[1]:>{column}.1%}")
    lines += [
        f"cached and uncached decode the same tokens at temperature 0: "
        f"{'yes' if results['identical_at_temperature_0'] else 'NO'} (this run's {s['batch']} "
        f"prompt{'s' if s['batch'] > 1 else ''})",
    ]
    return "\n".join(lines)
