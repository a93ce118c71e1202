"""Rebuilds dopsd's bundled image models (``src/dopsd/bundled/image/``) from scratch, with fixed seeds:

1. ``classifier/``: the judge (digit and style of an 8x8 image), trained on real training images of every style;
2. ``base/``: the in-context generator trained by flow matching on the base styles (many-step);
3. ``model/``: ``base`` made few-step (4 Euler steps) by trajectory distillation: what the image commands train.

and writes ``card.json`` with the measured numbers. Took 11 minutes on 2 CPU cores shared with other jobs (classifier
16 s, base 6.4 min, distillation 4.4 min, then the card's evaluations).

    OMP_NUM_THREADS=2 python scripts/build_image_models.py [--output src/dopsd/bundled/image]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dopsd.image.build import distill_few_step, train_base
from dopsd.image.classifier import train_classifier
from dopsd.image.data import BASE_STYLES, NEW_STYLES, STYLES, digit_set, target_images
from dopsd.image.metrics import Judge, evaluate_generator
from dopsd.image.model import create_image_model

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "src" / "dopsd" / "bundled" / "image"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT))
    parser.add_argument("--base-updates", type=int, default=3000)
    parser.add_argument("--distill-updates", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    card: dict = {"seed": args.seed, "base_styles": list(BASE_STYLES), "new_styles": list(NEW_STYLES)}

    began = time.perf_counter()
    everything = digit_set("train", STYLES)
    classifier = train_classifier(everything.images, everything.digits, everything.styles, seed=args.seed)
    classifier.save_pretrained(output / "classifier")
    judge = Judge(classifier)
    card["classifier_heldout_accuracy"] = judge.accuracy(digit_set("heldout", STYLES))
    card["classifier_seconds"] = time.perf_counter() - began
    print("classifier", card["classifier_heldout_accuracy"], flush=True)

    began = time.perf_counter()
    base = create_image_model(seed=args.seed)
    losses = train_base(base, updates=args.base_updates, seed=args.seed)
    base.eval().save_pretrained(output / "base")
    card["base"] = {"updates": args.base_updates, "final_loss": sum(losses[-100:]) / 100,
                    "seconds": time.perf_counter() - began}

    began = time.perf_counter()
    few, losses = distill_few_step(base, updates=args.distill_updates, seed=args.seed)
    few.save_pretrained(output / "model")
    card["model"] = {"steps": 4, "updates": args.distill_updates, "final_loss": sum(losses[-100:]) / 100,
                     "seconds": time.perf_counter() - began}

    for name, model in (("base", base), ("model", few)):
        for concept in NEW_STYLES:
            context = target_images(concept, 10, seed=0).images
            for steps in (4, 32):
                result = evaluate_generator(model, judge, concept, steps, concept_context=context)
                card[name][f"{concept}_{steps}_steps"] = result
                print(name, concept, result, flush=True)
    (output / "card.json").write_text(json.dumps(card, indent=2) + "\n")


if __name__ == "__main__":
    main()
