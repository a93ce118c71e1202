"""D-OPSD for few-step image generators, at laptop scale (``dopsd image-opsd``, ``dopsd image-fm``,
``dopsd experiment image``).

- :mod:`~dopsd.image.data`: scikit-learn's 8x8 digits in base and held-out styles, word prompts, seeded splits;
- :mod:`~dopsd.image.model`: the in-context transformer (diffusers ``ModelMixin``), ``save_pretrained`` form;
- :mod:`~dopsd.image.flow` and :mod:`~dopsd.image.sampler`: the flow-matching objective and the seeded few-step
  Euler sampler, on diffusers' ``FlowMatchEulerDiscreteScheduler``;
- :mod:`~dopsd.image.build`: base training and few-step distillation (``scripts/build_image_models.py``);
- :mod:`~dopsd.image.classifier`, :mod:`~dopsd.image.metrics`, :mod:`~dopsd.image.grid`: the judge, fidelity,
  retained accuracy, Frechet distance and sample grids;
- :mod:`~dopsd.image.trainer`, :mod:`~dopsd.image.opsd`, :mod:`~dopsd.image.fm`: the image parts of the run every
  trainer shares (:mod:`dopsd.trainers.run`), D-OPSD and the flow-matching baseline.

Models, sampling and metrics never import the trainers.
"""
