"""Client side of tests/test_hub_training.py: trains the tiny SCL setup of tests/test_trainer.py in a fresh
interpreter (HF_ENDPOINT etc. from `run_hub_client`) and saves the final student and teacher for comparison.

    python tests/hub_train_worker.py '[{"tmp": DIR, "stop_at": 2, "args": {...}}, {"tmp": DIR2, "resume": "user/run"}]'

The runs go one after the other in this interpreter (one start-up of torch and transformers). Each run is `_run` of
tests/test_trainer.py (4 steps, checkpoint every `save_steps`), optionally stopped early ("a crash"), resumed, exported
with `save_model`; `result.safetensors` in DIR holds `student.*` and `teacher.*`.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from sclseg import SCLImageProcessor, SCLTrainer  # noqa: E402
from tests.test_trainer import Labeled, Unlabeled, _StopAt, make_args, tiny_model  # noqa: E402


def main(spec: dict) -> None:
    torch.set_num_threads(1)  # as in the test process: same kernels, same floating-point sums
    tmp = Path(spec["tmp"])
    settings = {"max_steps": 4, "save_strategy": "steps", "save_steps": spec.get("save_steps", 2),
                "per_device_train_batch_size": 2, **spec.get("args", {})}
    args = make_args(tmp, **settings)
    trainer = SCLTrainer(model=tiny_model(), args=args, train_dataset=Labeled(), unlabeled_dataset=Unlabeled(),
                         processing_class=SCLImageProcessor())
    if spec.get("stop_at"):
        trainer.add_callback(_StopAt(spec["stop_at"]))
    trainer.train(resume_from_checkpoint=spec.get("resume"))
    if spec.get("save_model"):
        trainer.save_model()
    tensors = {f"student.{k}": v for k, v in trainer.model.state_dict().items()}
    tensors.update({f"teacher.{k}": v for k, v in trainer.teacher.model.state_dict().items()})
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / "result.safetensors"))
    print(json.dumps({"step": trainer.state.global_step, "teacher_step": trainer.teacher.step}))


if __name__ == "__main__":
    for run in json.loads(sys.argv[1]):
        main(run)
