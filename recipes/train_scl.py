"""Train DeepLabV3+ with the Structured Consistency Loss.

    accelerate launch recipes/train_scl.py [CONFIG.yaml] [--any_argument value ...]

With no config it runs the embedded default (`configs/embedded.yaml`): it generates the synthetic Cityscapes
if absent, trains a small WideResNet-DeepLabV3+ semi-supervised, evaluates, and saves the teacher, a model
card and prediction pictures. Flags override the config: `--max_steps 4 --output_dir out --seed 0`.
`python recipes/train_scl.py --help` lists every argument.
"""

import sys
from pathlib import Path

from sclseg.recipe import parse_arguments, run

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "embedded.yaml"


def main() -> None:
    model_args, data_args, training_args = parse_arguments(sys.argv[1:], default_config=DEFAULT_CONFIG)
    run(model_args, data_args, training_args)


if __name__ == "__main__":
    main()
