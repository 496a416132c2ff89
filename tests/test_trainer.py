import json
import math
import os

import pytest
import torch
from torch import nn
from transformers import SegformerConfig, SegformerForSemanticSegmentation
from transformers.modeling_outputs import SemanticSegmenterOutput

from sclseg import DeepLabV3PlusConfig, DeepLabV3PlusForSemanticSegmentation, WideResNetConfig
from sclseg.evaluation import confusion_matrix, scores_from_confusion
from sclseg.recipe import DataArguments
from sclseg.trainer import COMPLETE_MARKER, SCLTrainer, check_checkpoint_complete, last_complete_checkpoint
from sclseg.training_args import SCLTrainingArguments
from tests.conftest import tiny_wide_resnet_kwargs

H, W = 40, 56


class Labeled(torch.utils.data.Dataset):
    """Fixed random images with labels that depend on the image (learnable), 255 in a corner."""

    def __init__(self, n=8, num_classes=19):
        self.n, self.num_classes = n, num_classes

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        pixels = torch.randn(3, H, W, generator=g)
        labels = (pixels[0] > 0).long() * 2 + (pixels[1] > 0).long()
        labels[:4, :4] = 255
        return {"pixel_values": pixels, "labels": labels, "image_id": f"img{i}"}


class Unlabeled(torch.utils.data.IterableDataset):
    def __init__(self):
        self.n = 0

    def __iter__(self):
        while True:
            g = torch.Generator().manual_seed(1000 + self.n)
            self.n += 1
            yield {"pixel_values_a": torch.randn(3, H, W, generator=g),
                   "pixel_values_b": torch.randn(3, H, W, generator=g)}

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


def tiny_model(seed=0, dropout=True):
    kwargs = tiny_wide_resnet_kwargs()
    if not dropout:
        kwargs["stage_dropout"] = [0.0] * 6
    config = DeepLabV3PlusConfig(backbone_config=WideResNetConfig(**kwargs), aspp_channels=8, aspp_rates=[1, 2, 3],
                                 low_level_channels=4, decoder_channels=8)
    torch.manual_seed(seed)
    return DeepLabV3PlusForSemanticSegmentation(config)


def make_args(tmp_path, **kw):
    defaults = dict(output_dir=str(tmp_path / "out"), max_steps=4, per_device_train_batch_size=2, logging_steps=1,
                    report_to=[], max_pairs=64, use_cpu=True, save_strategy="no", seed=0, disable_tqdm=True)
    defaults.update(kw)
    return SCLTrainingArguments(**defaults)


def logged(trainer, key):
    return [entry[key] for entry in trainer.state.log_history if key in entry]


def test_all_terms_logged_and_sum_to_the_loss(tmp_path):
    trainer = SCLTrainer(model=tiny_model(), args=make_args(tmp_path, max_steps=2), train_dataset=Labeled(),
                         unlabeled_dataset=Unlabeled())
    trainer.train()
    first = trainer.state.log_history[0]
    for key in ("loss/supervised", "loss/consistency", "loss/structured", "ema/decay", "cutmix/coverage",
                "consistency/ramp"):
        assert key in first, key
    expected = first["loss/supervised"] + 20 * first["loss/consistency"] + 3 * first["loss/structured"]
    assert first["loss"] == pytest.approx(expected, rel=1e-4)
    assert first["ema/decay"] == pytest.approx(0.999) and 0.2 < first["cutmix/coverage"] < 0.8
    assert first["consistency/ramp"] == 1.0
    ids = trainer.trained_image_ids  # 2 steps × 2 images, each a distinct labeled image of the epoch
    assert len(ids) == 4 and len(set(ids)) == 4 and set(ids) <= {f"img{i}" for i in range(8)}


def test_consistency_ramp_up(tmp_path):
    trainer = SCLTrainer(model=tiny_model(), args=make_args(tmp_path, max_steps=2, consistency_rampup_steps=4),
                         train_dataset=Labeled(), unlabeled_dataset=Unlabeled())
    trainer.train()
    for entry, step in zip([e for e in trainer.state.log_history if "loss" in e], (0, 1)):
        ramp = math.exp(-5 * (1 - step / 4) ** 2)  # exp(-5) at the first step, exp(-5·9/16) at the second
        assert entry["consistency/ramp"] == pytest.approx(ramp, rel=1e-5)
        expected = entry["loss/supervised"] + ramp * (20 * entry["loss/consistency"] + 3 * entry["loss/structured"])
        assert entry["loss"] == pytest.approx(expected, rel=1e-4)
    trainer.state.global_step = 4
    assert trainer.consistency_ramp() == 1.0


def test_teacher_only_moves_by_ema_and_student_learns(tmp_path):
    model = tiny_model()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = SCLTrainer(model=model, args=make_args(tmp_path, max_steps=3, ema_decay=0.5), train_dataset=Labeled(),
                         unlabeled_dataset=Unlabeled())
    teacher = trainer.teacher.model
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    snapshots = []
    trainer.add_callback(_Snapshot(trainer, snapshots))
    trainer.train()
    assert all(p.grad is None for p in teacher.parameters())
    assert not teacher.training
    # Replaying the EMA rule over the student's weights after each step gives the teacher exactly.
    expected = {k: v.float().clone() for k, v in initial.items() if v.is_floating_point()}
    for student in snapshots:
        for k in expected:
            expected[k] = 0.5 * expected[k] + 0.5 * student[k]
    for k, v in expected.items():
        torch.testing.assert_close(teacher.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    changed = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, initial[k])]
    assert len(changed) > 10


class _Snapshot:
    """Callback recording the student's weights after each optimizer step (the EMA update sees the same ones)."""

    def __init__(self, trainer, out):
        self.trainer, self.out = trainer, out

    def __getattr__(self, name):
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_step_end(self, *args, **kwargs):
        self.out.append({k: v.float().clone() for k, v in self.trainer.model.state_dict().items()
                         if v.is_floating_point()})


def test_supervised_only_never_builds_cutmix(tmp_path, monkeypatch):
    import sclseg.trainer as trainer_module

    def fail(*a, **k):
        raise AssertionError("CutMix was built in a supervised-only run")

    monkeypatch.setattr(trainer_module, "sample_cutmix_boxes", fail)
    args = make_args(tmp_path, consistency_weight=0.0, structured_consistency_weight=0.0, max_steps=2)
    trainer = SCLTrainer(model=tiny_model(), args=args, train_dataset=Labeled())
    trainer.train()
    assert "loss/consistency" not in trainer.state.log_history[0]


def test_consistency_without_unlabeled_data_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="needs `unlabeled_dataset`"):
        SCLTrainer(model=tiny_model(), args=make_args(tmp_path), train_dataset=Labeled())


class PixelModel(nn.Module):
    """A BatchNorm-free per-pixel classifier: gradient accumulation is then exactly a bigger batch."""

    def __init__(self, num_classes=4):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, num_classes, 1)

    def forward(self, pixel_values, labels=None):
        return SemanticSegmenterOutput(logits=self.conv(pixel_values))


def test_gradient_accumulation_matches_a_bigger_batch(tmp_path):
    common = dict(consistency_weight=0.0, structured_consistency_weight=0.0, max_steps=2, seed=3,
                  dataloader_drop_last=True)
    big = SCLTrainer(model=PixelModel(), args=make_args(tmp_path / "a", per_device_train_batch_size=4, **common),
                     train_dataset=Labeled(num_classes=4))
    big.train()
    small = SCLTrainer(model=PixelModel(), args=make_args(tmp_path / "b", per_device_train_batch_size=1,
                                                          gradient_accumulation_steps=4, **common),
                       train_dataset=Labeled(num_classes=4))
    small.train()
    assert logged(big, "loss/supervised") == pytest.approx(logged(small, "loss/supervised"), rel=1e-5)
    assert logged(big, "loss") == pytest.approx(logged(small, "loss"), rel=1e-5)
    torch.testing.assert_close(big.model.conv.weight, small.model.conv.weight, rtol=1e-5, atol=1e-6)


def test_any_model_with_logits_segformer(tmp_path):
    config = SegformerConfig(num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1],
                             hidden_sizes=[8, 16], patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 1],
                             mlp_ratios=[2, 2], decoder_hidden_size=16, num_labels=19)
    torch.manual_seed(0)
    model = SegformerForSemanticSegmentation(config)
    trainer = SCLTrainer(model=model, args=make_args(tmp_path, max_steps=2), train_dataset=Labeled(),
                         eval_dataset=Labeled(n=2), unlabeled_dataset=Unlabeled())
    trainer.train()
    assert all(key in trainer.state.log_history[0] for key in ("loss/supervised", "loss/structured"))
    assert 0.0 <= trainer.evaluate()["eval_mean_iou"] <= 1.0


def test_evaluation_matches_a_direct_confusion_matrix(tmp_path):
    trainer = SCLTrainer(model=tiny_model(), args=make_args(tmp_path, per_device_eval_batch_size=3),
                         train_dataset=Labeled(), eval_dataset=Labeled(n=5), unlabeled_dataset=Unlabeled())
    metrics = trainer.evaluate()
    teacher = trainer.teacher.model
    total = torch.zeros(19, 19, dtype=torch.long)
    with torch.no_grad():
        for i in range(5):
            item = Labeled(n=5)[i]
            pred = teacher(item["pixel_values"][None]).logits.argmax(1)
            total += confusion_matrix(pred, item["labels"][None], 19)
    direct = scores_from_confusion(total)
    assert metrics["eval_mean_iou"] == pytest.approx(direct["mean_iou"], abs=1e-12)
    assert metrics["eval_pixel_accuracy"] == pytest.approx(direct["pixel_accuracy"], abs=1e-12)
    assert metrics["eval_iou_road"] == pytest.approx(direct["per_class_iou"][0], abs=1e-12)


class NaNAfter(torch.utils.data.Dataset):
    """Images become NaN from index `start` on (a corrupt batch)."""

    def __init__(self, start):
        self.base, self.start = Labeled(), start

    def __len__(self):
        return 8

    def __getitem__(self, i):
        item = dict(self.base[i])
        if i >= self.start:
            item["pixel_values"] = torch.full_like(item["pixel_values"], float("nan"))
        return item


def test_non_finite_steps_are_skipped_then_stop(tmp_path):
    args2 = make_args(tmp_path / "nan", consistency_weight=0.0, structured_consistency_weight=0.0, max_steps=8,
                      per_device_train_batch_size=1, max_nonfinite_steps=3)
    trainer2 = SCLTrainer(model=PixelModel(), args=args2, train_dataset=NaNAfter(start=0))
    before = trainer2.model.conv.weight.detach().clone()
    with pytest.warns(UserWarning, match="non-finite loss"), pytest.raises(RuntimeError, match="3 steps in a row"):
        trainer2.train()
    # The skipped steps left the weights untouched (no NaN reached them, no momentum or decay step either).
    assert torch.equal(trainer2.model.conv.weight.detach(), before)


def _run(tmp_path, name, max_steps, resume=None, save_steps=2):
    args = make_args(tmp_path / name, max_steps=4, save_strategy="steps", save_steps=save_steps,
                     per_device_train_batch_size=2)
    trainer = SCLTrainer(model=tiny_model(), args=args, train_dataset=Labeled(), unlabeled_dataset=Unlabeled())
    if max_steps < 4:
        trainer.add_callback(_StopAt(max_steps))
    trainer.train(resume_from_checkpoint=resume)
    return trainer


class _StopAt:
    def __init__(self, step):
        self.step = step

    def __getattr__(self, name):
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


def test_resume_equals_uninterrupted(tmp_path):
    full = _run(tmp_path, "full", 4)
    _run(tmp_path, "resumed", 2)  # stops after the checkpoint at step 2 ("a crash")
    resumed = _run(tmp_path, "resumed", 4, resume=True)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)
    for (k, a), b in zip(full.teacher.model.state_dict().items(), resumed.teacher.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)
    assert full.teacher.step == resumed.teacher.step == 4
    assert logged(full, "loss/structured")[-1] == pytest.approx(logged(resumed, "loss/structured")[-1], rel=1e-4)


def test_incomplete_checkpoint_is_never_resumed(tmp_path):
    _run(tmp_path, "crash", 4)
    out = tmp_path / "crash" / "out"
    assert last_complete_checkpoint(str(out)).endswith("checkpoint-4")
    os.remove(out / "checkpoint-4" / COMPLETE_MARKER)  # as if the process died while saving step 4
    assert last_complete_checkpoint(str(out)).endswith("checkpoint-2")
    with pytest.raises(ValueError, match="not a complete SCL checkpoint"):
        check_checkpoint_complete(str(out / "checkpoint-4"))
    marker = json.loads((out / "checkpoint-2" / COMPLETE_MARKER).read_text())
    assert (marker["step"] == 2 and "ema_teacher.safetensors" in marker["files"]
            and "scl_state_rank0.pt" in marker["files"])


def test_save_model_exports_the_teacher(tmp_path):
    trainer = SCLTrainer(model=tiny_model(), args=make_args(tmp_path, max_steps=2, ema_decay=0.9),
                         train_dataset=Labeled(), unlabeled_dataset=Unlabeled())
    trainer.train()
    trainer.save_model(str(tmp_path / "final"))
    saved = DeepLabV3PlusForSemanticSegmentation.from_pretrained(tmp_path / "final")
    for (k, a), b in zip(saved.state_dict().items(), trainer.teacher.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert not torch.equal(saved.decoder.classifier.weight, trainer.model.decoder.classifier.weight)
    assert "hub_token" not in (tmp_path / "final" / "training_args.json").read_text() or "<HUB_TOKEN>" in (
        tmp_path / "final" / "training_args.json").read_text()


def test_training_arguments_validation(tmp_path):
    with pytest.raises(ValueError, match="structured_boxes"):
        make_args(tmp_path, structured_boxes=33)
    with pytest.raises(ValueError, match="unlabeled_pair_mode"):
        DataArguments(unlabeled_pair_mode="other")
    with pytest.warns(UserWarning, match="resumed at an epoch boundary"):
        make_args(tmp_path, dataloader_num_workers=1, dataloader_persistent_workers=True)
    args = make_args(tmp_path)
    assert (args.consistency_weight, args.structured_consistency_weight, args.cutmix_boxes, args.structured_boxes,
            args.ema_decay, args.learning_rate, args.weight_decay) == (20.0, 3.0, 32, 16, 0.999, 0.002, 0.001)


def test_mixed_batch_is_the_cutmix_of_the_views_and_of_the_teacher_predictions(tmp_path):
    """u_m = u_a·(1−M) + u_b·M and p_mt = p_t(u_a)·(1−M) + p_t(u_b)·M with the same boxes, recomputed here from
    the trainer's generator state and per-view teacher forwards (the trainer runs one forward over both)."""
    from sclseg.cutmix import sample_cutmix_boxes

    trainer = SCLTrainer(model=tiny_model(), args=make_args(tmp_path), train_dataset=Labeled(),
                         unlabeled_dataset=Unlabeled())
    generator = torch.Generator()
    generator.set_state(trainer.generator.get_state())
    mixed = trainer.mixed_batch()
    pair = next(iter(Unlabeled()))
    u_a, u_b = pair["pixel_values_a"][None], pair["pixel_values_b"][None]
    boxes = sample_cutmix_boxes(1, H, W, num_boxes=32, generator=generator)
    mask = boxes.mask
    with torch.no_grad():
        p_a, p_b = (trainer.teacher.model(pixel_values=u).logits.softmax(1) for u in (u_a, u_b))
    assert 0.2 < float(mask.mean()) < 0.8  # both views present
    assert torch.equal(mixed["owner"], boxes.owner)
    torch.testing.assert_close(mixed["u_m"], u_a * (1 - mask) + u_b * mask)
    torch.testing.assert_close(mixed["p_mt"], p_a * (1 - mask) + p_b * mask, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(p_a, p_b, atol=1e-3)  # the two views' targets differ, so a swap would show


class PaddedUnlabeled(Unlabeled):
    """Unlabeled pairs whose view a has padding in its right half and view b in its bottom rows."""

    def __iter__(self):
        for pair in super().__iter__():
            valid_a = torch.ones(H, W, dtype=torch.bool)
            valid_a[:, W // 2:] = False
            valid_b = torch.ones(H, W, dtype=torch.bool)
            valid_b[H - 8:] = False
            yield {**pair, "valid_a": valid_a, "valid_b": valid_b}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_unlabeled_losses_skip_padding_and_use_the_chosen_reduction(tmp_path, reduction):
    """valid(u_m) = valid_b inside the boxes, valid_a outside; L_c is the mean over those pixels only, and L_sc
    never pairs a padding pixel (recomputed here from the trainer's generator state)."""
    from sclseg.losses import pixel_consistency_loss, structured_consistency_loss

    trainer = SCLTrainer(model=tiny_model(), args=make_args(tmp_path, consistency_reduction=reduction),
                         train_dataset=Labeled(), unlabeled_dataset=PaddedUnlabeled())
    mixed = trainer.mixed_batch()
    pair = next(iter(PaddedUnlabeled()))
    inside = mixed["u_m"].new_zeros(1, H, W, dtype=torch.bool) | (mixed["owner"] >= 0)
    expected_valid = torch.where(inside, pair["valid_b"][None], pair["valid_a"][None])
    assert torch.equal(mixed["valid"], expected_valid) and 0 < int(expected_valid.sum()) < H * W
    probs = torch.rand(1, 19, H, W, generator=torch.Generator().manual_seed(0)).softmax(1)
    generator = torch.Generator()
    generator.set_state(trainer.generator.get_state())
    total = trainer.unlabeled_loss(probs.log(), mixed)
    per_pixel = (probs - mixed["p_mt"]).square().sum(1)
    l_c = per_pixel[expected_valid].mean() / (19 if reduction == "mean" else 1)
    assert float(pixel_consistency_loss(probs, mixed["p_mt"], reduction=reduction, valid=expected_valid)) == \
        pytest.approx(float(l_c), rel=1e-5)
    l_sc = structured_consistency_loss(probs, mixed["p_mt"], mixed["owner"].masked_fill(~expected_valid, -1),
                                       num_boxes=32, max_pairs=64, generator=generator)
    assert float(total) == pytest.approx(float(20 * l_c + 3 * l_sc), rel=1e-5)
    unmasked = pixel_consistency_loss(probs, mixed["p_mt"], reduction=reduction)
    assert float(unmasked) != pytest.approx(float(l_c), rel=1e-2)  # the padding would have changed L_c


def test_consistency_confidence_scales_by_the_confident_share(tmp_path):
    trainer = SCLTrainer(model=tiny_model(), args=make_args(tmp_path, structured_consistency_weight=0,
                                                             consistency_confidence_threshold=0.97),
                         train_dataset=Labeled(), unlabeled_dataset=Unlabeled())
    mixed = trainer.mixed_batch()
    p_mt = torch.full((1, 19, H, W), 0.02 / 18)
    p_mt[:, 0] = 0.98  # confident ...
    p_mt[:, :, :, : W // 4] = 1 / 19  # ... except in the left quarter
    mixed = {**mixed, "p_mt": p_mt}
    probs = torch.full((1, 19, H, W), 1 / 19)
    total = trainer.unlabeled_loss(probs.log(), mixed)
    expected = 20 * float(pixel_consistency_loss_of(probs, p_mt)) * 0.75
    assert float(total) == pytest.approx(expected, rel=1e-5)


def test_pseudo_label_term_logs_the_share_it_trains_on(tmp_path):
    trainer = SCLTrainer(model=tiny_model(), args=make_args(tmp_path, consistency_weight=0,
                                                             structured_consistency_weight=0, pseudo_label_weight=1,
                                                             pseudo_label_threshold=0.95),
                         train_dataset=Labeled(), unlabeled_dataset=Unlabeled())
    mixed = trainer.mixed_batch()
    p_mt = torch.full((1, 19, H, W), 0.04 / 18)
    p_mt[:, 0] = 0.96  # confident ...
    p_mt[:, :, : H // 2, : W // 2] = 1 / 19  # ... except in the top-left quarter
    everywhere = torch.ones(1, H, W, dtype=torch.bool)
    trainer.unlabeled_loss(torch.zeros(1, 19, H, W), {**mixed, "p_mt": p_mt, "valid": everywhere})
    assert float(trainer._sums["pseudo_label/confident_share"]) == pytest.approx(0.75)


def pixel_consistency_loss_of(probs, p_mt):
    from sclseg.losses import pixel_consistency_loss

    return pixel_consistency_loss(probs, p_mt)


def test_separate_student_forwards_give_the_same_loss_without_batch_norm_coupling(tmp_path):
    """With `joint_student_forward=False` the labeled logits no longer depend on the mixed images (BatchNorm in
    train mode normalises each forward on its own batch)."""
    model = tiny_model(dropout=False)
    args = make_args(tmp_path, joint_student_forward=False, unlabeled_batch_size=2)
    trainer = SCLTrainer(model=model, args=args, train_dataset=Labeled(), unlabeled_dataset=Unlabeled())
    batch = torch.stack([Labeled()[i]["pixel_values"] for i in range(2)])
    model.train()
    mixed = trainer.mixed_batch()
    alone = model(pixel_values=batch).logits
    sup, student = trainer.student_logits(model, batch, (H, W), mixed)
    torch.testing.assert_close(sup, alone)
    joint, _ = SCLTrainer.student_logits(_with(trainer, joint_student_forward=True), model, batch, (H, W), mixed)
    assert not torch.allclose(joint, alone, atol=1e-4) and student.shape == (2, 19, H, W)


def _with(trainer, **changes):
    import copy

    clone = copy.copy(trainer)
    clone.args = copy.copy(trainer.args)
    for key, value in changes.items():
        setattr(clone.args, key, value)
    return clone


def test_supervised_warmup_then_teacher_restarts_from_the_student(tmp_path, monkeypatch):
    """Steps 1–2 supervised only (no unlabeled batch drawn); after step 2 the teacher is the student exactly; from
    step 3 on the unlabeled terms run, with the ramp-up counted from the end of the warm-up."""
    args = make_args(tmp_path, max_steps=4, supervised_warmup_steps=2, consistency_rampup_steps=2, ema_decay=0.9)
    trainer = SCLTrainer(model=tiny_model(), args=args, train_dataset=Labeled(), unlabeled_dataset=Unlabeled())
    teachers = []

    class TeacherAfterStep(_Snapshot):
        def on_step_end(self, *a, **k):
            teachers.append({n: v.clone() for n, v in trainer.teacher.model.state_dict().items()})
            super().on_step_end(*a, **k)

    students = []
    trainer.add_callback(TeacherAfterStep(trainer, students))
    trainer.train()
    steps = [e for e in trainer.state.log_history if "loss" in e]
    assert ["loss/consistency" in e for e in steps] == [False, False, True, True]
    assert steps[2]["consistency/ramp"] == pytest.approx(math.exp(-5.0), rel=1e-4) and \
        steps[3]["consistency/ramp"] == pytest.approx(math.exp(-5 * 0.25), rel=1e-4)
    for name, value in students[1].items():  # after step 2: a copy, not an EMA
        torch.testing.assert_close(teachers[1][name].float(), value)
    assert any(not torch.allclose(teachers[0][n].float(), students[0][n]) for n in students[0])  # step 1: EMA


def test_datasets_that_take_sample_keys_get_the_seeded_epoch_sampler(tmp_path):
    from sclseg.data import EpochShuffleSampler

    class Keyed(Labeled):
        accepts_sample_keys = True

        def __getitem__(self, key):
            return super().__getitem__(key.index)

    def trainer(dataset, **kw):
        return SCLTrainer(model=tiny_model(), args=make_args(tmp_path, **kw), train_dataset=dataset,
                          unlabeled_dataset=Unlabeled())

    keyed = trainer(Keyed(), seed=3)
    sampler = keyed._get_train_sampler()
    assert isinstance(sampler, EpochShuffleSampler) and sampler.seed == 3 and len(sampler) == 8
    assert trainer(Keyed(), seed=3, data_seed=11)._get_train_sampler().seed == 11
    assert not isinstance(trainer(Labeled())._get_train_sampler(), EpochShuffleSampler)
    # Keys reach the dataset through Trainer's own dataloader.
    batch = next(iter(keyed.get_train_dataloader()))
    assert batch["pixel_values"].shape == (2, 3, H, W)


def test_the_trainer_writes_its_own_card_with_the_latest_miou(tmp_path):
    from huggingface_hub import ModelCard

    args = make_args(tmp_path, max_steps=2, consistency_weight=5.0)
    trainer = SCLTrainer(model=tiny_model(), args=args, train_dataset=Labeled(), eval_dataset=Labeled(n=2),
                         unlabeled_dataset=Unlabeled(), model_card_data={"data_root": "my/images"})
    trainer.save_model()  # before any evaluation: a card without results
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert card.data.eval_results is None and "structured-consistency-loss" in card.data.tags
    trainer.train()
    miou = trainer.evaluate()["eval_mean_iou"]
    trainer.save_model()
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert card.data.eval_results[0].metric_type == "mean_iou"
    assert card.data.eval_results[0].metric_value == pytest.approx(miou, abs=5e-5)
    assert "`consistency_weight`: 5.0" in card.text and "my/images" in card.text
    assert "labeled images: 8; unlabeled images: not counted (streamed)" in card.text


def _term_norms(tmp_path, name, **kw):
    args = make_args(tmp_path / name, joint_student_forward=False, term_gradient_norm_steps=1,
                     unlabeled_batch_size=2, **kw)
    trainer = SCLTrainer(model=tiny_model(dropout=False), args=args, train_dataset=Labeled(),
                         unlabeled_dataset=Unlabeled())
    model = trainer.model
    model.train()
    items = [Labeled()[i] for i in range(2)]  # 2 images: BatchNorm's image pooling needs > 1 per forward
    batch = {key: torch.stack([item[key] for item in items]) for key in ("pixel_values", "labels")}
    trainer.compute_loss(model, dict(batch))
    logged_norms = {k: float(v) for k, v in trainer._sums.items() if k.startswith("grad_norm/")}
    model.zero_grad()  # the supervised term alone, by a plain backward: the reference for its norm
    trainer._supervised_loss(model(pixel_values=batch["pixel_values"]).logits, batch["labels"]).backward()
    reference = torch.stack([p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None]).sum().sqrt()
    return logged_norms, float(reference)


def test_term_gradient_norms_are_each_weighted_terms_gradient(tmp_path):
    norms, supervised = _term_norms(tmp_path, "w3", structured_consistency_weight=3.0)
    assert set(norms) == {"grad_norm/supervised", "grad_norm/consistency", "grad_norm/structured"}
    assert norms["grad_norm/supervised"] == pytest.approx(supervised, rel=1e-5) and supervised > 0
    # Same seed, same draws: doubling λ_sc doubles its term's gradient and leaves the others.
    doubled, _ = _term_norms(tmp_path, "w6", structured_consistency_weight=6.0)
    assert doubled["grad_norm/structured"] == pytest.approx(2 * norms["grad_norm/structured"], rel=1e-5)
    assert doubled["grad_norm/consistency"] == pytest.approx(norms["grad_norm/consistency"], rel=1e-6)
    assert norms["grad_norm/structured"] > 0


def test_term_gradient_norms_are_logged_every_n_steps_only(tmp_path):
    args = make_args(tmp_path, max_steps=4, term_gradient_norm_steps=2)
    trainer = SCLTrainer(model=tiny_model(), args=args, train_dataset=Labeled(), unlabeled_dataset=Unlabeled())
    trainer.train()
    has_norms = [("grad_norm/structured" in e) for e in trainer.state.log_history if "loss" in e]
    assert has_norms == [True, False, True, False]  # computed at global steps 0 and 2, logged after them
    with pytest.raises(ValueError, match="term_gradient_norm_steps"):
        make_args(tmp_path, term_gradient_norm_steps=-1)
