"""Model cards: rendered from the one template, `model-index` parses with `ModelCard.load`, updates keep the rest."""

from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from sclseg import SCLTrainingArguments
from sclseg.recipe import DataArguments
from sclseg.model_card import TEMPLATE_PATH, update_model_card_results, write_model_card

REPO = Path(__file__).resolve().parents[1]
TRAINER_METRICS = {"eval_mean_iou": 0.5123, "eval_pixel_accuracy": 0.9, "eval_iou_road": 0.9,
                   "eval_iou_traffic_light": float("nan")}


@pytest.fixture
def args(tmp_path):
    return SCLTrainingArguments(output_dir=str(tmp_path / "out"), max_steps=4, consistency_weight=7.0,
                                report_to="none")


def test_the_template_in_model_cards_is_the_packaged_one():
    assert (REPO / "model_cards" / "TEMPLATE.md").resolve() == TEMPLATE_PATH.resolve()


def test_training_card_holds_results_recipe_usage_and_citation(tmp_path, args):
    path = write_model_card(tmp_path / "m", TRAINER_METRICS, args=args, data_root="data/cs", num_labeled=372,
                            synthetic=False, num_unlabeled=2603, steps=4, repo_id="user/scl-teacher")
    card = ModelCard.load(path)
    result = card.data.eval_results[0]
    assert (result.task_type, result.metric_type, result.metric_value) == ("image-segmentation", "mean_iou", 0.5123)
    assert (result.dataset_type, result.dataset_split) == ("cityscapes", "validation")
    assert result.metric_args == {"inference_mode": "whole image"} and "whole image" in result.metric_name
    text = card.text
    assert "| road | 90.00 |" in text and "| traffic light | n/a |" in text
    assert "`consistency_weight`: 7.0" in text and "`optim`: 'sgd'" in text
    assert "labeled images: 372; unlabeled images: 2603" in text and "optimisation steps: 4" in text
    assert 'from_pretrained("user/scl-teacher")' in text and 'pipeline("image-segmentation"' in text
    assert "@article{kim2020structured" in text and "## Intended use and limits" in text


def test_the_card_names_other_data_when_told(tmp_path, args):
    """Data in the Cityscapes layout that is not Cityscapes: its own name and Hub id, not Cityscapes'."""
    path = write_model_card(tmp_path / "m", TRAINER_METRICS, args=args, num_labeled=10, synthetic=False,
                            dataset_name="Street scenes of Ulm", dataset_id="user/ulm-streets")
    card = ModelCard.load(path)
    result = card.data.eval_results[0]
    assert (result.dataset_name, result.dataset_type) == ("Street scenes of Ulm", "user/ulm-streets")
    assert card.data.datasets == ["user/ulm-streets"] and "Street scenes of Ulm" in card.text
    unnamed = ModelCard.load(write_model_card(tmp_path / "n", TRAINER_METRICS, args=args, num_labeled=10,
                                              dataset_name="Street scenes of Ulm"))
    assert unnamed.data.datasets is None  # a name without a Hub id claims no Hub dataset, Cityscapes least


def test_update_adds_and_replaces_one_evaluation(tmp_path, args):
    folder = tmp_path / "m"
    write_model_card(folder, TRAINER_METRICS, args=args, data_root="d", num_labeled=1, synthetic=True)
    record = {"mean_iou": 0.6, "pixel_accuracy": None, "per_class_iou": {"road": 0.7, "sky": None}}
    update_model_card_results(folder, record, dataset_name="Cityscapes", split="val", inference_mode="sliding")
    path = update_model_card_results(folder, {**record, "mean_iou": 0.65}, dataset_name="Cityscapes", split="val",
                                     inference_mode="sliding")
    card = ModelCard.load(path)
    values = [(r.dataset_type, r.metric_type, r.metric_value) for r in card.data.eval_results]
    assert values == [("cityscapes", "mean_iou", 0.65), ("synthetic-cityscapes", "mean_iou", 0.5123),
                      ("synthetic-cityscapes", "accuracy", 0.9)]
    assert card.text.count("<!-- sclseg:iou ") == 2 and "| sky | n/a |" in card.text
    assert "`consistency_weight`" in card.text  # the recipe written at training time is kept


def test_update_creates_a_card_where_there_is_none(tmp_path):
    (tmp_path / "converted").mkdir()
    path = update_model_card_results(tmp_path / "converted", {"eval_mean_iou": 0.8}, dataset_name="Cityscapes",
                                     split="val", inference_mode="whole image")
    card = ModelCard.load(path)
    assert card.data.eval_results[0].metric_value == 0.8 and "Not recorded" in card.text


def test_cards_never_hold_tokens(tmp_path, args, monkeypatch):
    token = "hf_cardTokenABCDEFGHIJ1234"
    monkeypatch.setenv("HF_TOKEN", token)
    data_args = DataArguments(unlabeled_source=f"https://user:{token}@example.org/x")
    path = write_model_card(tmp_path / "m", TRAINER_METRICS, args=args, data_root=f"/data/{token}",
                            num_labeled=1, synthetic=True, data_args=data_args)
    update_model_card_results(tmp_path / "m", {"mean_iou": 0.5}, dataset_name=token, split="val",
                              inference_mode="whole image")
    assert token not in path.read_text()
