"""The loop on Fabric: gradient accumulation, clipping and bf16 autocast, in a few real steps."""

from __future__ import annotations

import torch

from clarena.run.components import build_components
from clarena.run.config import compose_config
from clarena.run.loop import Loop, make_fabric
from clarena.run.loop_settings import LoopSettings
from clarena.run.spec import RunSpec


def _train(batch_size: int, steps: int, **options: object) -> tuple[dict, Loop]:
    """Finetuning with SGD on task 1 of split_digits for `steps` optimizer steps; return the
    backbone's weights and the loop."""
    overrides = ["seed=0", "cl_algorithm=finetuning", "optimizer=sgd", "optimizer.lr=0.5"]
    cfg = compose_config([*overrides, f"cl_dataset.batch_size={batch_size}"])
    torch.manual_seed(0)
    components = build_components(RunSpec.of(cfg))
    datamodule, algorithm = components.datamodule, components.algorithm
    datamodule.setup_task(1)
    algorithm.on_task_start(1, datamodule)
    settings = LoopSettings(
        accelerator="cpu",
        max_epochs=-1,
        max_steps=steps,
        enable_progress_bar=False,
        checkpoint_every_minutes=None,
        **options,  # type: ignore[arg-type]
    )
    loop = Loop(make_fabric(settings), 1, settings)
    loop.fit(algorithm, datamodule=datamodule)
    weights = {k: v.detach().clone() for k, v in algorithm.backbone.state_dict().items()}
    return weights, loop


def test_two_accumulated_batches_of_16_make_the_step_of_one_batch_of_32() -> None:
    accumulated, loop = _train(16, 3, accumulate_grad_batches=2)
    assert loop.global_step == 3
    whole, _ = _train(32, 3)
    for name, value in whole.items():
        torch.testing.assert_close(accumulated[name], value, rtol=0, atol=1e-6)


def test_gradients_are_clipped_to_the_norm() -> None:
    free, _ = _train(32, 1)
    clipped, _ = _train(32, 1, gradient_clip_val=1e-4)
    start, _ = _train(32, 1, gradient_clip_val=1e-12)  # clipped to almost nothing: the start
    moved_free = torch.cat([(free[k] - start[k]).flatten() for k in start]).norm()
    moved_clipped = torch.cat([(clipped[k] - start[k]).flatten() for k in start]).norm()
    assert moved_free > 1e-2  # an unclipped step of lr 0.5 moves the weights
    assert moved_clipped <= 0.5 * 1e-4 * (1 + 1e-4)  # lr x the clipped norm, at most


def test_bf16_mixed_runs_the_step_under_autocast() -> None:
    seen: list[torch.dtype] = []
    settings = {"precision": "bf16-mixed"}
    overrides = ["seed=0", "cl_algorithm=finetuning"]
    cfg = compose_config(overrides)
    components = build_components(RunSpec.of(cfg))
    datamodule, algorithm = components.datamodule, components.algorithm
    datamodule.setup_task(1)
    algorithm.on_task_start(1, datamodule)
    hook = algorithm.backbone.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    options = LoopSettings(
        accelerator="cpu", max_epochs=-1, max_steps=2, enable_progress_bar=False, **settings
    )
    Loop(make_fabric(options), 1, options).fit(algorithm, datamodule=datamodule)
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert {p.dtype for p in algorithm.parameters()} == {torch.float32}  # the weights stay


class Spy:
    """A user's callback: records the loop's hooks it is called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def on_loop_fit_start(self, loop: Loop, module: object) -> None:
        self.calls.append(("fit_start", loop.global_step))

    def on_loop_step_end(
        self, loop: Loop, module: object, loss: torch.Tensor, batch: object, batch_idx: int
    ) -> None:
        assert loss.ndim == 0 and batch_idx == loop.global_step - 1
        self.calls.append(("step_end", loop.global_step))

    def on_loop_epoch_end(self, loop: Loop, module: object) -> None:
        self.calls.append(("epoch_end", loop.global_step))

    def on_loop_fit_end(self, loop: Loop, module: object) -> None:
        self.calls.append(("fit_end", loop.global_step))

    def on_loop_test_end(self, loop: Loop, module: object, predictions: dict) -> None:
        self.calls.append(("test_end", sorted(predictions)[0]))


def test_a_users_callback_is_called_through_fabric_at_the_loops_hooks() -> None:
    from clarena.run.callbacks import RecordPredictions

    cfg = compose_config(["seed=0", "cl_algorithm=finetuning"])
    components = build_components(RunSpec.of(cfg))
    datamodule, algorithm = components.datamodule, components.algorithm
    datamodule.setup_task(1)
    algorithm.on_task_start(1, datamodule)
    settings = LoopSettings(
        accelerator="cpu", max_epochs=-1, max_steps=3, enable_progress_bar=False
    )
    spy = Spy()
    loop = Loop(make_fabric(settings, [spy]), 1, settings, callbacks=[spy])
    loop.fit(algorithm, datamodule=datamodule)
    loop.test(algorithm, datamodule=datamodule, recorders=[RecordPredictions()])
    assert spy.calls == [
        ("fit_start", 0),
        ("step_end", 1),
        ("step_end", 2),
        ("step_end", 3),
        ("epoch_end", 3),
        ("fit_end", 3),
        ("test_end", 1),
    ]
