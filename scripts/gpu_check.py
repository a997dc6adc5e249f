"""GPU check: correctness on CUDA, a Lightning run with trainer=gpu, and a throughput table.

    python scripts/gpu_check.py [--out DIR]

1. The from-scratch reference transposed conv against cuDNN's on CUDA (random configs).
2. Every encoder x FCN-8s: forward/backward at odd sizes on CUDA under bf16 autocast, exact output
   sizes; FCN-8s/ResNet-18 CUDA fp32 logits against CPU logits.
3. train(cfg) with trainer=gpu on synthetic data, then evaluate(cfg) of its best checkpoint on
   the GPU: the val mIoU must agree; and a one-device trainer=ddp fast_dev_run.
4. Training-step throughput of FCN-8s/ResNet-18 (img/s, peak memory) at 180x240 and 360x480.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tconvseg.nn import FCN, torchvision_encoder
from tconvseg.nn.reference import conv_transpose2d_reference


def check_reference(n: int = 100) -> float:
    rng = random.Random(0)
    worst = 0.0
    for _ in range(n):
        groups = rng.choice([1, 2])
        cin, cout = groups * rng.randint(1, 3), groups * rng.randint(1, 3)
        k, s, d = rng.randint(1, 5), rng.randint(1, 4), rng.randint(1, 2)
        p, op = rng.randint(0, 2), rng.randint(0, max(s, d) - 1)
        x = torch.randn(2, cin, rng.randint(1, 9), rng.randint(1, 9), device="cuda", dtype=torch.float64)
        w = torch.randn(cin, cout // groups, k, k, device="cuda", dtype=torch.float64)
        out_h = (x.shape[-2] - 1) * s - 2 * p + d * (k - 1) + op + 1
        out_w = (x.shape[-1] - 1) * s - 2 * p + d * (k - 1) + op + 1
        if min(out_h, out_w) < 1:
            continue  # torch returns an empty tensor here; the reference refuses such configs
        ref = F.conv_transpose2d(x, w, None, s, p, op, groups, d)
        worst = max(worst, float((conv_transpose2d_reference(x, w, None, s, p, op, groups, d) - ref).abs().max()))
    return worst


def check_models() -> list[dict]:
    rows = []
    for name in ["resnet18", "resnet34", "resnet50", "vgg16_bn", "mobilenet_v3_large"]:
        model = FCN(torchvision_encoder(name), 11, topology="8s", decoder_channels=64, refine=1).cuda()
        for size in [(97, 131), (360, 480), (33, 47)]:
            x = torch.randn(2, 3, *size, device="cuda")
            with torch.autocast("cuda", dtype=torch.bfloat16):
                y = model(x)
            y.float().square().mean().backward()
            rows.append({"encoder": name, "size": size, "out": tuple(y.shape[-2:]), "ok": tuple(y.shape[-2:]) == size})
    torch.manual_seed(0)
    model = FCN(torchvision_encoder("resnet18"), 11).eval()
    x = torch.randn(2, 3, 97, 131)
    with torch.no_grad():
        cpu = model(x)
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        gpu = model.cuda()(x.cuda()).cpu()
    rows.append({"cpu_vs_cuda_fp32_max_abs_diff": float((cpu - gpu).abs().max()), "scale": float(cpu.abs().max())})
    return rows


def check_training(tmp: Path) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from tconvseg.entry import CONFIG_DIR
    from tconvseg.tasks.evaluate import evaluate
    from tconvseg.tasks.train import train

    def cfg(name: str, overrides: list[str]):
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            c = compose(config_name=name, overrides=overrides, return_hydra_config=True)
        with open_dict(c):
            c.paths.log_dir = str(tmp / "logs")
            c.paths.output_dir = str(tmp / "logs" / c.task_name / "runs" / name)
            del c.hydra
        return c

    quiet = ["callbacks.rich_progress_bar=null", "+trainer.enable_progress_bar=false", "data.num_workers=0"]
    metrics, objects = train(cfg("train", ["experiment=synthetic_quick", "trainer=gpu", "trainer.max_epochs=4", *quiet]))
    eval_metrics, _ = evaluate(cfg("eval", ["data=synthetic", "trainer=gpu", "data.num_workers=0", f"ckpt_path={objects['best_checkpoint']}"]))
    ddp, _ = train(cfg("train", ["data=synthetic", "model=tiny", "trainer=ddp", "trainer.devices=1", "debug=fdr", *quiet]))
    return {
        "train_best_val_mIoU": metrics["best/checkpoint_score"],
        "eval_val_mIoU": eval_metrics["val/mIoU"],
        "ddp_fast_dev_run_val_mIoU": ddp["val/mIoU"],
    }


def throughput() -> list[dict]:
    rows = []
    for size, batch in [((180, 240), 8), ((360, 480), 8), ((360, 480), 32)]:
        model = FCN(torchvision_encoder("resnet18"), 11, topology="8s", decoder_channels=64, refine=1).cuda()
        opt = torch.optim.AdamW(model.parameters())
        x = torch.randn(batch, 3, *size, device="cuda")
        y = torch.randint(0, 11, (batch, *size), device="cuda")
        torch.cuda.reset_peak_memory_stats()
        for i in range(25):
            if i == 5:
                torch.cuda.synchronize()
                t = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        dt = (time.perf_counter() - t) / 20
        rows.append({"size": size, "batch": batch, "img_per_s": batch / dt, "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    report: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    sections = [
        ("reference_max_abs_err_fp64", check_reference),
        ("models", check_models),
        ("training", lambda: check_training(Path(tempfile.mkdtemp()))),
        ("throughput", throughput),
    ]
    for key, fn in sections:
        try:  # one failing section must not hide the others' results
            report[key] = fn()
        except Exception as err:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            report[key] = f"FAILED: {type(err).__name__}: {err}"
        print(key, json.dumps(report[key], indent=1), flush=True)
    Path(args.out, "gpu_check.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
