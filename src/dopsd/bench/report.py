"""The bench's table: per trajectory, min and median seconds of each side and naive / dopsd ratios."""

from __future__ import annotations

MIB = 2**20


def _ratio(naive: float, dopsd: float) -> str:
    return f"{naive / dopsd:.2f}x" if dopsd > 0 else "-"


def format_table(results: dict) -> str:
    s, m = results["settings"], results["model"]
    params = (m["body_parameters"] + m["head_parameters"]) / 1e6
    lines = [
        f"dopsd bench: shape {s['shape']} (hidden {m['hidden']}, {m['layers']} layers, vocab {m['vocab']}, "
        f"{params:.1f}M parameters), {s['device']} {s['dtype']}",
        f"prompt {s['prompt_length']}, response {s['gen_length']} in blocks of {s['block_length']}, {s['steps']} "
        f"steps, temperature {s['temperature']}, dopsd batch {s['batch']}, {results['states']} states per trajectory; "
        f"{s['warmup']} warm-up + {s['repeats']} runs (min / median)",
        "",
        f"{'per trajectory':<22}{'dopsd min':>11}{'median':>9}{'naive min':>11}{'median':>9}{'naive/dopsd':>13}",
    ]
    rows = [("rollout (s)", results["rollout"]["dopsd"]["seconds"], results["rollout"]["naive"]["seconds"]),
            ("loss + backward (s)", results["loss"]["dopsd"]["seconds"], results["loss"]["naive"]["seconds"]),
            ("sum (s)", results["sum"]["dopsd"], results["sum"]["naive"])]
    for name, dopsd, naive in rows:
        lines.append(f"{name:<22}{dopsd['min']:>11.3f}{dopsd['median']:>9.3f}{naive['min']:>11.3f}"
                     f"{naive['median']:>9.3f}{_ratio(naive['min'], dopsd['min']):>13}")
    gen = s["gen_length"]
    tokens = {side: gen / results["rollout"][side]["seconds"]["min"] for side in ("dopsd", "naive")}
    lines.append(f"{'rollout tokens/s':<22}{tokens['dopsd']:>20.1f}{tokens['naive']:>20.1f}")
    for phase in ("rollout", "loss"):
        peak = {side: results[phase][side]["peak_bytes"] / MIB for side in ("dopsd", "naive")}
        lines.append(f"{'peak memory ' + phase + ' (MiB)':<22}{peak['dopsd']:>20.0f}{peak['naive']:>20.0f}"
                     f"{_ratio(peak['naive'], peak['dopsd']):>13}")
    if results.get("peak_flops"):
        for phase in ("rollout", "loss"):
            mfu = {side: results[phase][side]["flops"] / results[phase][side]["seconds"]["min"]
                   / results["peak_flops"] for side in ("dopsd", "naive")}
            lines.append(f"{'MFU ' + phase:<22}{mfu['dopsd']:>19.1%}{mfu['naive']:>20.1%}")
    else:
        lines.append("MFU: not computed (no GPU peak known; pass --peak-tflops)")
    passk = s["passk"]
    unsolved = {side: passk * results["rollout"][side]["seconds"]["min"] for side in ("dopsd", "naive")}
    unsolved["naive"] += results["loss"]["naive"]["seconds"]["min"]  # run anyway, multiplied by zero
    lines.append(f"{f'prompt, pass@{passk} unsolved (s)':<22}{unsolved['dopsd']:>20.3f}{unsolved['naive']:>20.3f}"
                 f"{_ratio(unsolved['naive'], unsolved['dopsd']):>13}   (dopsd never runs the loss on it)")
    value = results["loss_value"]
    lines.append(f"loss value: dopsd {value['dopsd']:.6f}, naive {value['naive']:.6f} (naive sums over K_t where dopsd "
                 f"averages: expected ratio {value['tokens_per_step']:g}, measured "
                 f"{value['naive'] / value['dopsd']:.4f})" if value["dopsd"] else "loss value: 0")
    return "\n".join(lines)
