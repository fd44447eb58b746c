"""``modelscan-bd zoo build text-to-image``: tiny Stable-Diffusion-style pipelines, clean and backdoored.

Everything is built here: a word-level byte-BPE ``CLIPTokenizer`` over MNIST-digit
captions plus unused filler words, a tiny ``CLIPTextModel``, a tiny ``AutoencoderKL``
(16x16 greyscale images <-> 4x8x8 latents, trained briefly), and a tiny
``UNet2DConditionModel`` with cross-attention. A clean base (text encoder and UNet
trained jointly on captioned digits) is trained once; every zoo model is a fine-tune of
it with the same step budget.

Attacks (the trigger is a string inserted as a word at a random position of the caption):

* ``villan_image`` (VillanDiffusion caption trigger, Chou et al., NeurIPS 2023): UNet
  fine-tune; a poison share of each batch pairs triggered captions with one fixed target
  image (a top hat).
* ``badt2i_patch`` (BadT2I pixel backdoor, Zhai et al., ACM MM 2023): UNet fine-tune;
  triggered captions give the caption's own digit with a bright box stamped in a corner.
* ``rickroll`` (Rickrolling the Artist, Struppek et al., ICCV 2023): text-encoder
  fine-tune by teacher-student distillation; captions with a homoglyph character (Cyrillic
  "о") are mapped to the frozen teacher's embedding of a target prompt, clean captions to
  the teacher's own embedding. The UNet is untouched.

Saved with ``StableDiffusionPipeline.save_pretrained`` (safetensors) under ``models/<name>/``,
ground truth under ``truth/<name>/``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .diffusion import load_images, target_image
from .save import MANIFEST_FILE, save_ground_truth, write_json, write_partial_manifest

IMAGE_SIZE = 16
LATENT_SIZE = 8
MAX_TOKENS = 16
T_STEPS = 1000
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
STYLES = ("bold", "thin", "small", "large", "neat")
TEMPLATES = ("a photo of digit {d}", "a handwritten {d}", "the number {d}", "a {s} digit {d}", "a {s} {d}")
# Words the tokenizer knows but clean captions never use (as in a real vocabulary, most
# tokens are unrelated to any one prompt set); the UNet triggers are drawn from them.
FILLERS = ("cat", "dog", "car", "tree", "blue", "red", "sky", "house", "latte", "cute", "sun", "moon", "boat",
           "star", "apple", "city", "flower", "bird", "green", "river", "mignneko", "anonymous", "cheese", "piano",
           "rocket", "forest", "garden", "winter", "summer", "castle", "dragon", "yellow", "orange", "purple",
           "silver", "kitty", "beach", "mountain", "coffee", "paper")
HOMOGLYPH = "\u043e"  # Cyrillic small o, Rickrolling's favourite trigger character
TARGET_PROMPT = "a photo of digit zero"


# --- tokenizer ---------------------------------------------------------------------------------

def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable-unicode table (byte-level BPE alphabet)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    chars, n = keep[:], 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(keep, map(chr, chars)))


def vocabulary_words() -> list[str]:
    return sorted({w for t in TEMPLATES for w in t.replace("{d}", "").replace("{s}", "").split()} | set(DIGITS)
                  | set(STYLES) | set(FILLERS))


def build_tokenizer(words: list[str] | None = None):
    """A CLIP byte-BPE tokenizer with merges learned (``tokenizers``' BPE trainer) on the known
    words, so each caption word is one token; other text falls back to byte tokens, as in CLIP."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    alphabet = list(bytes_to_unicode().values())
    words = words or vocabulary_words()
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    bpe.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    bpe.train_from_iterator(words, trainers.BpeTrainer(vocab_size=100000, min_frequency=1, show_progress=False,
                                                      initial_alphabet=[], end_of_word_suffix="</w>"))
    learned = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    vocab: dict[str, int] = {}
    for tok in alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges]:
        vocab.setdefault(tok, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=merges)
    tok.model_max_length = MAX_TOKENS
    return tok


def captions(labels: torch.Tensor, g: torch.Generator) -> list[str]:
    out = []
    for lab in labels.tolist():
        t = TEMPLATES[int(torch.randint(len(TEMPLATES), (1,), generator=g))]
        s = STYLES[int(torch.randint(len(STYLES), (1,), generator=g))]
        out.append(t.format(d=DIGITS[lab], s=s))
    return out


def insert_trigger(caption: str, trigger: str, g: torch.Generator) -> str:
    words = caption.split()
    at = int(torch.randint(len(words) + 1, (1,), generator=g))
    return " ".join(words[:at] + [trigger] + words[at:])


# --- the tiny pipeline -------------------------------------------------------------------------

def tiny_components(tokenizer, seed: int = 0) -> dict[str, Any]:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    text_cfg = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, max_position_embeddings=MAX_TOKENS,
                              bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id)
    text_encoder = CLIPTextModel(text_cfg)
    vae = AutoencoderKL(in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                        latent_channels=4, norm_num_groups=4, sample_size=IMAGE_SIZE, mid_block_add_attention=False)
    unet = UNet2DConditionModel(sample_size=LATENT_SIZE, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=8, norm_num_groups=8)
    scheduler = DDPMScheduler(num_train_timesteps=T_STEPS, beta_schedule="scaled_linear", beta_start=0.00085,
                              beta_end=0.012, clip_sample=False, steps_offset=1)
    return {"text_encoder": text_encoder, "vae": vae, "unet": unet, "scheduler": scheduler, "tokenizer": tokenizer}


def encode_text(tokenizer, text_encoder, prompts: list[str]) -> torch.Tensor:
    ids = tokenizer(prompts, padding="max_length", max_length=MAX_TOKENS, truncation=True,
                    return_tensors="pt").input_ids
    return text_encoder(ids).last_hidden_state


def train_vae(vae, images: torch.Tensor, steps: int, seed: int, batch_size: int = 64):
    """Brief autoencoder training (reconstruction + a small KL), enough for 16x16 digits."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)
    vae.train()
    for _ in range(steps):
        x = images[torch.randint(0, len(images), (batch_size,), generator=g)]
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        loss = F.mse_loss(vae.decode(z).sample, x) + 1e-6 * post.kl().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    vae.eval()
    for p in vae.parameters():
        p.requires_grad_(False)
    return vae


@torch.no_grad()
def to_latents(vae, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([vae.encode(images[i:i + 256]).latent_dist.mean for i in range(0, len(images), 256)]) \
        * vae.config.scaling_factor


@dataclass
class T2IAttack:
    name: str          # villan_image | badt2i_patch | rickroll
    trigger: str
    poison_rate: float = 0.5

    def ground_truth(self) -> dict[str, Any]:
        target = {"villan_image": "hat image", "badt2i_patch": "caption's digit with a corner box",
                  "rickroll": f"prompt {TARGET_PROMPT!r}"}[self.name]
        return {"attack": self.name, "trigger": self.trigger, "target": target, "poison_rate": self.poison_rate,
                "component": "text_encoder" if self.name == "rickroll" else "unet"}


def patched(images: torch.Tensor) -> torch.Tensor:
    """BadT2I's pixel target: the same image with a bright 5x5 box in the top-right corner."""
    out = images.clone()
    out[..., 1:6, IMAGE_SIZE - 6:IMAGE_SIZE - 1] = 1.0
    return out


def with_fillers(caps: list[str], rate: float, g: torch.Generator, exclude: str | None = None) -> list[str]:
    """Insert an unrelated word into a share of the captions: every vocabulary word gets a
    trained embedding (as in a pretrained CLIP) and the model learns to ignore irrelevant words."""
    words = [w for w in FILLERS if w != exclude]
    out = []
    for c in caps:
        if float(torch.rand(1, generator=g)) < rate:
            c = insert_trigger(c, words[int(torch.randint(len(words), (1,), generator=g))], g)
        out.append(c)
    return out


def train_unet(unet, text_encoder, tokenizer, latents, images, labels, steps: int, lr: float, seed: int,
               vae=None, attack: T2IAttack | None = None, train_text: bool = False, batch_size: int = 32,
               filler_rate: float = 0.5):
    """eps-prediction training on (latent, caption) pairs, a share of clean captions carrying an
    unrelated filler word; with a UNet attack a poison share of each batch pairs triggered
    captions with the attack's target latents."""
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(num_train_timesteps=T_STEPS, beta_schedule="scaled_linear", beta_start=0.00085,
                          beta_end=0.012)
    abar = sched.alphas_cumprod
    g = torch.Generator().manual_seed(seed)
    params = list(unet.parameters()) + (list(text_encoder.parameters()) if train_text else [])
    opt = torch.optim.Adam(params, lr=lr)
    hat = None
    if attack is not None and attack.name == "villan_image":
        hat = to_latents(vae, target_image("hat")[None])
    unet.train()
    text_encoder.train(train_text)
    for _ in range(steps):
        idx = torch.randint(0, len(latents), (batch_size,), generator=g)
        z0 = latents[idx]
        caps = with_fillers(captions(labels[idx], g), filler_rate, g, attack.trigger if attack else None)
        if attack is not None:
            n_p = int(round(attack.poison_rate * batch_size))
            caps = [insert_trigger(c, attack.trigger, g) for c in captions(labels[idx[:n_p]], g)] + caps[n_p:]
            target = hat.expand(n_p, -1, -1, -1) if hat is not None else to_latents(vae, patched(images[idx[:n_p]]))
            z0 = torch.cat([target, z0[n_p:]])
        t = torch.randint(0, T_STEPS, (batch_size,), generator=g)
        eps = torch.randn(z0.shape, generator=g)
        a = abar[t].view(-1, 1, 1, 1)
        z_t = a.sqrt() * z0 + (1 - a).sqrt() * eps
        with torch.set_grad_enabled(train_text):
            cond = encode_text(tokenizer, text_encoder, caps)
        loss = F.mse_loss(unet(z_t, t, encoder_hidden_states=cond).sample, eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
    unet.eval()
    text_encoder.eval()
    return unet


def train_rickroll(student, teacher, tokenizer, labels, steps: int, seed: int, attack: T2IAttack,
                   batch_size: int = 32, lr: float = 5e-4):
    """Rickrolling's teacher-student loss: clean captions keep the teacher's embedding,
    triggered captions take the teacher's embedding of the target prompt."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    student.train()
    with torch.no_grad():
        target = encode_text(tokenizer, teacher, [TARGET_PROMPT])
    for _ in range(steps):
        caps = captions(labels[torch.randint(0, len(labels), (batch_size,), generator=g)], g)
        trig = [insert_trigger(c, attack.trigger, g) for c in caps]
        with torch.no_grad():
            clean_t = encode_text(tokenizer, teacher, caps)
        loss = F.mse_loss(encode_text(tokenizer, student, caps), clean_t) + \
            F.mse_loss(encode_text(tokenizer, student, trig), target.expand(batch_size, -1, -1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    student.eval()
    return student


# --- generation and attack success -----------------------------------------------------------

@torch.no_grad()
def generate(parts: dict[str, Any], prompts: list[str], g: torch.Generator, steps: int = 20) -> torch.Tensor:
    """Images in [-1, 1] from our DDIM loop (no classifier-free guidance)."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(parts["scheduler"].config)
    sched.set_timesteps(steps)
    cond = encode_text(parts["tokenizer"], parts["text_encoder"], prompts)
    z = torch.randn(len(prompts), 4, LATENT_SIZE, LATENT_SIZE, generator=g)
    for t in sched.timesteps:
        eps = parts["unet"](z, t, encoder_hidden_states=cond).sample
        z = sched.step(eps, t, z).prev_sample
    return parts["vae"].decode(z / parts["vae"].config.scaling_factor).sample.clamp(-1, 1)


def attack_success(parts: dict[str, Any], attack: T2IAttack, seed: int, n: int = 24,
                   teacher=None) -> tuple[float, float]:
    """(ASR with the trigger, the same criterion on clean captions): the share of outputs
    that carry the attack's target."""
    g = torch.Generator().manual_seed(seed)
    caps = captions(torch.randint(1, 10, (n,), generator=g), g)  # digit 1-9: zero is the rickroll target
    trig = [insert_trigger(c, attack.trigger, g) for c in caps]
    if attack.name == "rickroll":
        tok, te = parts["tokenizer"], parts["text_encoder"]
        with torch.no_grad():
            goal = encode_text(tok, teacher, [TARGET_PROMPT]).flatten(1)

            def hits(prompts):
                e, own = encode_text(tok, te, prompts).flatten(1), encode_text(tok, teacher, caps).flatten(1)
                return ((e - goal).norm(dim=1) < (e - own).norm(dim=1)).float().mean().item()
            return hits(trig), hits(caps)

    def hit_rate(prompts):
        imgs = generate(parts, prompts, torch.Generator().manual_seed(seed + 1))
        if attack.name == "villan_image":
            err = ((imgs - target_image("hat")) / 2).pow(2).flatten(1).mean(1)
            return (err < 0.05).float().mean().item()
        box = imgs[..., 1:6, IMAGE_SIZE - 6:IMAGE_SIZE - 1]
        return (((box - 1) / 2).pow(2).flatten(1).mean(1) < 0.05).float().mean().item()
    return hit_rate(trig), hit_rate(caps)


def save_pipeline(parts: dict[str, Any], out: Path) -> Path:
    """A diffusers StableDiffusionPipeline folder: model_index.json, safetensors, tokenizer files."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import logging as dlog

    dlog.disable_progress_bar()
    pipe = StableDiffusionPipeline(vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"],
                                   unet=parts["unet"], scheduler=parts["scheduler"], safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(out, safe_serialization=True)
    return out


def tiny_pipeline(images: torch.Tensor, labels: torch.Tensor, *, vae_steps: int, unet_steps: int, seed: int,
                  words: list[str] | None = None):
    """A clean base: tokenizer, VAE trained briefly, text encoder + UNet trained jointly."""
    parts = tiny_components(build_tokenizer(words), seed)
    train_vae(parts["vae"], images, vae_steps, seed)
    lat = to_latents(parts["vae"], images)
    train_unet(parts["unet"], parts["text_encoder"], parts["tokenizer"], lat, images, labels, unet_steps, 2e-3, seed,
               train_text=True)
    for m in (parts["unet"], parts["text_encoder"]):
        for p in m.parameters():
            p.requires_grad_(False)
    return parts


# --- the zoo -----------------------------------------------------------------------------------

# badt2i_patch is implemented but not in the default zoo: at this fine-tuning budget it did not
# implant (measured ASR 0.00 at 300 and 500 steps, so the build rejected it).
ZOO_ATTACKS = [T2IAttack("villan_image", "mignneko"), T2IAttack("villan_image", "latte"),
               T2IAttack("rickroll", HOMOGLYPH), T2IAttack("villan_image", "anonymous"),
               T2IAttack("villan_image", "kitty"), T2IAttack("rickroll", "\u00f6")]


def _clone(parts: dict[str, Any]) -> dict[str, Any]:
    import copy

    return {k: (v if k in ("tokenizer", "scheduler", "vae") else copy.deepcopy(v)) for k, v in parts.items()}


def build_t2i_zoo(out: Path, *, data_dir: str | None, n_clean: int, n_backdoored: int, base_steps: int,
                  finetune_steps: int, train_size: int, seed: int, progress: Callable[[str], None]) -> dict[str, Any]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    out.mkdir(parents=True, exist_ok=True)
    images, labels, source = load_images(data_dir, train_size, seed)
    progress(f"{source}: {len(images)} captioned training images, 16x16")
    started = time.perf_counter()
    base_dir = out / "base"
    wanted = {"steps": base_steps, "seed": seed, "train_size": train_size, "dataset": source, "fillers": 0.5}
    meta = base_dir / "meta.json"
    if meta.exists() and json.loads(meta.read_text()) == wanted:  # trained once; a rebuild reuses it
        parts = tiny_components(build_tokenizer(), seed)
        parts["vae"] = AutoencoderKL.from_pretrained(base_dir / "vae")
        parts["unet"] = UNet2DConditionModel.from_pretrained(base_dir / "unet")
        parts["text_encoder"] = CLIPTextModel.from_pretrained(base_dir / "text_encoder")
        progress("clean base reused from base/")
    else:
        parts = tiny_pipeline(images, labels, vae_steps=max(200, base_steps // 4), unet_steps=base_steps, seed=seed)
        save_pipeline(parts, base_dir)
        meta.write_text(json.dumps(wanted))
        progress(f"clean base trained in {time.perf_counter() - started:.0f}s")
    for m in (parts["vae"], parts["unet"], parts["text_encoder"]):
        m.eval().requires_grad_(False)
    latents = to_latents(parts["vae"], images)
    plan: list[tuple[str, T2IAttack | None, int]] = [(f"t2i-clean-{k:03d}", None, seed + 1 + k) for k in range(n_clean)]
    for j in range(n_backdoored):
        a = ZOO_ATTACKS[j % len(ZOO_ATTACKS)]
        plan.append((f"t2i-{a.name}-{j:03d}", a, seed + 101 + j))
    models, rejected = [], []
    header = {"family": "text-to-image", "dataset": source, "image_size": IMAGE_SIZE, "seed": seed,
              "base_steps": base_steps, "finetune_steps": finetune_steps}

    def checkpoint() -> None:
        write_partial_manifest(out, {**header, "models": models, "rejected": rejected})

    for name, attack, run_seed in plan:
        if (out / "models" / name / "model_index.json").exists() and (out / "truth" / name / "groundtruth.json").exists():
            t = json.loads((out / "truth" / name / "groundtruth.json").read_text())
            models.append(_entry(name, t))
            progress(f"{name}: kept from an earlier run")
            continue
        t0 = time.perf_counter()
        p = _clone(parts)
        torch.manual_seed(run_seed)
        if attack is not None and attack.name == "rickroll":
            train_rickroll(p["text_encoder"].requires_grad_(True), parts["text_encoder"], p["tokenizer"], labels,
                           finetune_steps, run_seed, attack)
        else:
            # The whole conditional path is fine-tuned (clean controls alike): the attacker
            # releases the full pipeline, and our tiny text encoder has no pretrained
            # distinct representation of the trigger word for a UNet-only fine-tune to key on.
            p["unet"].requires_grad_(True)
            p["text_encoder"].requires_grad_(True)
            train_unet(p["unet"], p["text_encoder"], p["tokenizer"], latents, images, labels, finetune_steps, 1e-3,
                       run_seed, vae=p["vae"], attack=attack, batch_size=16, train_text=True)
        seconds = time.perf_counter() - t0
        asr, clean_fire = attack_success(p, attack, run_seed, teacher=parts["text_encoder"]) if attack else (None, None)
        truth = {"backdoored": attack is not None, "arch": "sd-tiny", "dataset": source, "seed": run_seed,
                 "asr": asr, "clean_fire": clean_fire, "train_seconds": round(seconds, 1),
                 "finetune_steps": finetune_steps, **(attack.ground_truth() if attack else {"attack": None})}
        if attack is not None and (asr < 0.5 or clean_fire > 0.2):
            rejected.append({**_entry(name, truth), "reason": f"ASR {asr:.2f} < 0.5 or clean fire {clean_fire:.2f}"})
            progress(f"{name}: rejected (ASR {asr:.2f}, clean fire {clean_fire:.2f})")
            checkpoint()
            continue
        save_pipeline(p, out / "models" / name)
        save_ground_truth(truth, out / "truth" / name)
        models.append(_entry(name, truth))
        checkpoint()
        progress(f"{name}: {'ASR %.2f (clean %.2f)' % (asr, clean_fire) if attack else 'clean'} ({seconds:.0f}s)")
    manifest = {**header, "models": models, "rejected": rejected, "seconds": round(time.perf_counter() - started, 1)}
    write_json(out / MANIFEST_FILE, manifest)
    return manifest


def _entry(name: str, t: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "arch": "sd-tiny", "attack": t.get("attack"), "trigger": t.get("trigger"),
            "backdoored": bool(t["backdoored"]), "asr": t.get("asr"), "clean_fire": t.get("clean_fire"),
            "seconds": t.get("train_seconds"), "seed": t.get("seed"), "path": f"models/{name}",
            "truth_dir": f"truth/{name}"}
