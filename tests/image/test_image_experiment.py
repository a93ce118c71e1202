"""``dopsd experiment image`` end to end on tiny models: runs per method and seed, the table, the grid, read back."""

import pytest
from image_doubles import classifier_folder_fixture, model_folder_fixture  # noqa: F401  (fixtures)

import dopsd.image.bundled
import dopsd.image.trainer


@pytest.fixture
def tiny_bundle(monkeypatch, model_folder, classifier_folder):
    folders = {"model": str(model_folder), "classifier": str(classifier_folder)}
    for module in (dopsd.image.bundled, dopsd.image.trainer):
        monkeypatch.setattr(module, "bundled_image_path", lambda name="model": folders[name])


@pytest.mark.slow
def test_the_image_experiment_writes_its_table_and_grid_and_reads_runs_back(tiny_bundle, tmp_path):
    from dopsd.experiments import run_experiments

    settings = dict(max_updates=1, batch_size=2, eval_samples_per_prompt=1, eval_many_steps=3, report_to=["none"])
    text = run_experiments(["image"], tmp_path, ["sudoku"], [0, 1], **settings)
    assert "learning 'framed'" in text and "seeds [0, 1]" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:]] == ["| base (bundled 4-step model)", "| FM fine-tuning",
                                                         "| D-OPSD (EMA teacher, decay 0.99)",
                                                         "| D-OPSD, frozen teacher (decay 1.0)"]
    assert " ± " in rows[2] and rows[2].endswith(" min |")
    for name in ("image-opsd-default", "image-opsd-frozen-teacher", "image-fm-default"):
        for seed in (0, 1):
            assert (tmp_path / "image" / f"{name}-seed{seed}" / "summary.json").is_file()
    assert (tmp_path / "image-samples.png").is_file() and (tmp_path / "image.md").read_text() == text
    (tmp_path / "image" / "image-fm-default-seed0" / "metrics.jsonl").unlink()  # finished runs are read, not retrained
    assert run_experiments(["image"], tmp_path, ["sudoku"], [0, 1], **settings) == text
