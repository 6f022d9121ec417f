"""Peak CPU memory of loading the model, per size, with random weights of the released shapes.

Memory depends on shapes, not on weight values, so random checkpoints in RADIO's release layout
(``radseg_core.model.replica_checkpoint``) and random SigLIP2 folders of the real configuration measure
what the real files cost. Each load runs in a fresh subprocess; the figure is the growth of peak RSS
(``ru_maxrss``) over the same process after its imports. Needs a NVlabs/RADIO checkout (``--radio``).

  backbone    load_radio from a local checkpoint (hubconf + adaptors), text tower NOT loaded (lazy)
  text-only   our HFTextTower: the text half of the SigLIP2 folder only, fp32 on CPU
  text-radio  what RADIO's SigLIP2Adaptor does: AutoModel (vision + text) then keep .text_model

Usage: .venv/bin/python -P benchmarks/model_memory.py --radio <RADIO checkout> [--sizes b l h]
       [--text so400m giant-opt] [--out results.json]
Large sizes write multi-GB files into --work (default: a temporary folder) and need RAM to match.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

# ViT shapes of the released C-RADIOv3 backbones (timm vit_{base,large,huge}_patch16_224).
BACKBONES = {
    "b": dict(vit="vit_base_patch16_224", kw=dict(embed_dim=768, depth=12, num_heads=12), teachers="v3-so400m"),
    "l": dict(vit="vit_large_patch16_224", kw=dict(embed_dim=1024, depth=24, num_heads=16), teachers="v3-so400m"),
    "h": dict(vit="vit_large_patch16_224", kw=dict(embed_dim=1280, depth=32, num_heads=16), teachers="v3-g384"),
}
# SigLIP2 configurations (text 27 x 1152, vocab 256k; so400m vision 27 x 1152, giant vision 40 x 1536).
TEXT = {
    "so400m": dict(kind="siglip2", hf="google/siglip2-so400m-patch16-naflex", proj=1152,
                   vision=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                               num_attention_heads=16, patch_size=16, num_patches=256)),
    "giant-opt": dict(kind="siglip", hf="google/siglip2-giant-opt-patch16-384", proj=1536,
                      vision=dict(hidden_size=1536, intermediate_size=6144, num_hidden_layers=40,
                                  num_attention_heads=16, patch_size=16, image_size=384)),
}
TEXT_CFG = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                vocab_size=256000, max_position_embeddings=64, pad_token_id=0, bos_token_id=None, eos_token_id=1)

PRELUDE = """
import resource, sys, torch
from radseg_core.compat import patch_torchvision
patch_torchvision()
import timm, transformers, einops  # imports are not the model
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base = peak_mb()
"""


def run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-P", "-c", PRELUDE + textwrap.dedent(code)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_text_folder(path: Path, which: str) -> None:
    if (path / "config.json").is_file():
        return
    run(f"""
    import json
    from pathlib import Path
    sys.path.insert(0, {str(Path(__file__).parents[1] / 'test' / 'core')!r})
    from radio_fixtures import write_tokenizer
    spec = {TEXT[which]!r}
    text = dict({TEXT_CFG!r}, projection_size=spec["proj"])
    if spec["kind"] == "siglip2":
        cfg = transformers.Siglip2Config(text_config=text, vision_config=spec["vision"])
        model = transformers.Siglip2Model(cfg)
    else:
        cfg = transformers.SiglipConfig(text_config=text, vision_config=spec["vision"])
        model = transformers.SiglipModel(cfg)
    model.save_pretrained({str(path)!r})
    write_tokenizer(Path({str(path)!r}))
    print(json.dumps({{}}))
    """)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--radio", type=Path, required=True, help="NVlabs/RADIO checkout (hubconf.py)")
    p.add_argument("--sizes", nargs="*", default=["b", "l"], choices=sorted(BACKBONES))
    p.add_argument("--text", nargs="*", default=["so400m"], choices=sorted(TEXT))
    p.add_argument("--work", type=Path, default=None, help="where the random files go (default: temp dir)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="radseg-mem-"))
    work.mkdir(parents=True, exist_ok=True)
    text_root = work / "text"
    rows = []
    for which in args.text:
        folder = text_root / TEXT[which]["hf"]
        write_text_folder(folder, which)
        for mode in ("text-only", "text-radio"):
            res = run(f"""
            import json
            from radseg_core.text import HFTextTower
            t = HFTextTower({str(folder)!r})
            if {mode!r} == "text-only":
                t.load()
            else:  # RADIO's SigLIP2Adaptor: the whole model, then its text half
                t.model = transformers.AutoModel.from_pretrained({str(folder)!r}).text_model.eval()
                t.tokenizer = transformers.AutoTokenizer.from_pretrained({str(folder)!r})
            loaded = peak_mb() - base
            n = sum(x.numel() for x in t.model.parameters())
            t.encode(["a photo of the chair"] * 80)  # one label's templates: the weights get touched
            print(json.dumps(dict(params_m=n / 1e6, fp32_mb=4 * n / 2**20, load_mb=loaded,
                                  peak_mb=peak_mb() - base)))
            """)
            rows.append(dict(what=f"{mode} {which}", **res))
    for size in args.sizes:
        cfg = BACKBONES[size]
        ckpt = work / f"c-radio_v3-{size}_random_half.pth.tar"
        teachers = cfg["teachers"]
        if not ckpt.is_file():
            run(f"""
            import json
            from radseg_core.model.replica_checkpoint import write_radio_checkpoint
            write_radio_checkpoint({str(ckpt)!r}, {str(args.radio)!r}, teachers={teachers!r}, vit={cfg['vit']!r},
                                   vit_kwargs={cfg['kw']!r}, mlp_hidden=1536, num_inner=1)
            print(json.dumps({{}}))
            """)
        which = "giant-opt" if teachers == "v3-g384" else "so400m"
        tiny_root = work / "tinytext"  # the backbone rows never load the text tower: a small one of the size
        run(f"""
        import json
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parents[1] / 'test' / 'core')!r})
        from radio_fixtures import write_text_model
        write_text_model(Path({str(tiny_root / TEXT[which]["hf"])!r}), {TEXT[which]["proj"]},
                         kind={TEXT[which]["kind"]!r})
        print(json.dumps({{}}))
        """)
        res = run(f"""
        import json
        from radseg_core.model import RadioSpec, load_radio
        loaded = load_radio(RadioSpec("c-radio_v3-{size}", repo_dir={str(args.radio)!r}, checkpoint={str(ckpt)!r},
                                      text_model_dir={str(tiny_root)!r}))
        n = sum(x.numel() for x in loaded.model.parameters()) + sum(x.numel() for x in loaded.lang_adaptor.parameters())
        peak = peak_mb() - base
        print(json.dumps(dict(params_m=n / 1e6, fp32_mb=4 * n / 2**20, load_mb=peak, peak_mb=peak,
                              text_loaded=loaded.text.loads)))
        """)
        rows.append(dict(what=f"backbone v3-{size} (+{which} head, text lazy)", file_mb=ckpt.stat().st_size / 2**20,
                         **res))
    print(f"{'what':44s} {'params (M)':>10s} {'fp32 (MB)':>9s} {'RSS after load':>14s} {'peak RSS':>9s}")
    for r in rows:
        print(f"{r['what']:44s} {r['params_m']:10.1f} {r['fp32_mb']:9.0f} {r['load_mb']:14.0f} {r['peak_mb']:9.0f}")
    print("RSS figures: MB of peak resident memory growth; safetensors are memory-mapped, so pages count only "
          "once touched (peak = after encoding 80 prompts)")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
