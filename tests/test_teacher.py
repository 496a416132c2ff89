"""EMA teacher: decay 0 / 1 / 0.5 on a tiny model with BatchNorm buffers, warm-up, state round trip."""

import pytest
import torch
from torch import nn

from sclseg.teacher import EMATeacher


def _tiny_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))


def _trained_student(seed: int = 1) -> nn.Module:
    """A different model whose BatchNorm buffers moved (running stats, num_batches_tracked = 2)."""
    student = _tiny_model(seed).train()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(2):
        student(torch.randn(2, 3, 5, 5, generator=generator) * 3 + 1)
    return student


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_teacher_is_frozen_eval_deep_copy():
    student = _tiny_model(0).train()
    ema = EMATeacher(student)
    assert not ema.model.training and all(not p.requires_grad for p in ema.model.parameters())
    assert all(p.requires_grad for p in student.parameters()) and student.training
    with torch.no_grad():
        student[0].weight.add_(1.0)
    assert not torch.equal(ema.model[0].weight, student[0].weight)
    assert ema.decay == 0.999 and ema.step == 0


def test_decay_zero_copies_the_student_exactly():
    ema = EMATeacher(_tiny_model(0), decay=0.0)
    student = _trained_student()
    ema.update(student)
    for name, value in student.state_dict().items():
        assert torch.equal(ema.model.state_dict()[name], value), name
    assert ema.step == 1 and not ema.model.training


def test_decay_one_keeps_floats_and_copies_integer_buffers():
    initial = _tiny_model(0)
    before = _state(initial)
    ema = EMATeacher(initial, decay=1.0)
    student = _trained_student()
    ema.update(student)
    after = ema.model.state_dict()
    for name, value in before.items():
        expected = value if value.is_floating_point() else student.state_dict()[name]
        assert torch.equal(after[name], expected), name
    assert after["1.num_batches_tracked"].item() == 2


def test_decay_half_averages_parameters_and_batchnorm_buffers():
    initial = _tiny_model(0)
    before = _state(initial)
    ema = EMATeacher(initial, decay=0.5)
    student = _trained_student()
    ema.update(student)
    after = ema.model.state_dict()
    for name in ("0.weight", "0.bias", "1.weight", "1.running_mean", "1.running_var", "3.weight"):
        expected = 0.5 * before[name] + 0.5 * student.state_dict()[name]
        torch.testing.assert_close(after[name], expected, rtol=0, atol=1e-6)
    assert not torch.equal(before["1.running_mean"], after["1.running_mean"])  # the buffers really moved
    assert after["1.num_batches_tracked"].item() == 2


def test_warmup_averages_all_student_weights_so_far():
    initial = _tiny_model(0)
    ema = EMATeacher(initial, decay=0.7, warmup=True)
    history = [initial[0].weight.detach().clone()]
    decays = []
    for seed in (1, 2, 3):
        decays.append(ema.decay)
        student = _tiny_model(seed)
        ema.update(student)
        history.append(student[0].weight.detach().clone())
        if seed < 3:  # 1 − 1/(t + 1) for t = 1, 2 is still below 0.7: a plain running average
            torch.testing.assert_close(ema.model[0].weight, torch.stack(history).mean(0), rtol=0, atol=1e-6)
    assert decays == pytest.approx([0.5, 2 / 3, 0.7])  # the third update is capped at d = 0.7


def test_state_dict_round_trip_continues_identically():
    ema = EMATeacher(_tiny_model(0), decay=0.9, warmup=True)
    ema.update(_trained_student(1))
    state = ema.state_dict()
    restored = EMATeacher(_tiny_model(5), decay=0.9, warmup=True)
    restored.load_state_dict(state)
    assert restored.step == 1 and restored.decay == ema.decay
    student = _trained_student(2)
    ema.update(student)
    restored.update(student)
    for name, value in ema.model.state_dict().items():
        assert torch.equal(restored.model.state_dict()[name], value), name


def test_update_rejects_another_architecture():
    ema = EMATeacher(_tiny_model(0))
    with pytest.raises(ValueError, match="student"):
        ema.update(nn.Sequential(nn.Conv2d(3, 4, 3)))
    with pytest.raises(ValueError, match="decay"):
        EMATeacher(_tiny_model(0), decay=1.5)
