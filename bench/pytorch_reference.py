#!/usr/bin/env python3
"""PyTorch reference of fovea's models, for `bench/compare.sh` (optional: needs `pip install torch`).

Times the same things `fovea bench` times, the same way, on the same machine:
  * training throughput: one image = forward + backward + Adam step, batch 64 (--batch),
  * inference throughput at batch 256 (--infer-batch) and latency at batch 1 (median and p95),
  * after an untimed warm-up, the median of --repeats timed rounds, on batches prepared in memory,
  * peak resident memory of the process (ru_maxrss).
With --loss-steps N it also trains N steps from fresh weights on the first N batches of the
training set in file order (what `fovea bench --loss-steps N` does with `data.val_fraction = 0`)
and records the loss of every step, so both frameworks can be checked to compute the same thing.

The models are fovea's, layer for layer (same parameter counts; the JSON says how many):
  cnn      conv3x3(32, no bias) -> BN -> ReLU -> maxpool2 -> conv3x3(64, no bias) -> BN -> ReLU
           -> maxpool2 -> [64x7x7] -> dropout 0.3 -> fc 128 -> ReLU -> dropout 0.3 -> fc classes
  rnn      rows of the image as a sequence -> bidirectional GRU(128) -> mean over time
           -> dropout 0.2 -> fc classes                                  (config/rnn.toml)
  cnn-rnn  conv blocks 32, 64 (+dropout 0.2) -> rows of the 64x7x7 map as a sequence
           -> bidirectional LSTM(128) -> mean over time -> dropout 0.3 -> fc classes
                                                                          (config/cnn-rnn.toml)
  cnn-lif  the cnn's conv blocks -> [64x7x7 "V4"] -> dropout 0.3 -> T = 8 steps of: V4 as the
           constant current of integrate-and-fire encoders (threshold 1, reset by subtraction)
           -> their spikes -> fc classes -> leaky integrate-and-fire outputs (beta 0.9,
           threshold 1, reset by subtraction; arctan surrogate gradient, a = 2); the logits are
           the output membrane at the last step, before its reset           (config/cnn-lif.toml)
  gan      the conditional DCGAN of config/gan.toml: generator [noise 64, label embedding 32]
           -> fc 128x7x7 -> BN -> ReLU -> convT 4x4/2 (64) -> BN -> ReLU -> convT 4x4/2 (1) -> tanh;
           projection discriminator conv 4x4/2 (64) -> LeakyReLU 0.2 -> conv 4x4/2 (128, no bias)
           -> BN -> LeakyReLU 0.2 -> fc 1 + <label embedding, features>. One image of training =
           a discriminator step (a real and a generated batch, non-saturating loss) and a
           generator step (with the mode-seeking term over the batch's pairs of one class) and
           the moving average of the generator's weights (decay 0.999), Adam (0.5, 0.999) for
           both, as fovea's step; inference = the generator drawing a batch. Its loss curve is
           the discriminator's loss.
  restore  the restorer of config/restore-noise.toml: Gaussian noise (sigma 0.3, clamped) on
           pixels in [0, 1], repaired by the U-Net (3x3 conv pairs with ReLU, 16/32/64 channels,
           2x2 max pooling down, 2x2 stride-2 transposed convolutions up, skips, a 1x1 output
           added to the damaged image) against the patch discriminator (damaged and candidate
           stacked, conv 4x4/2 (32) -> LeakyReLU -> conv 4x4/2 (64) -> LeakyReLU -> conv 3x3 (1)).
           One image of training = the discriminator's step and the U-Net's (L1 + 0.01 x the
           non-saturating adversarial loss), Adam for both; inference = damage and repair. Its
           loss curve is the L1 loss.

Writes one JSON object to --json (and prints it).
"""

import argparse
import gzip
import json
import os
import platform
import resource
import statistics
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims :]), dtype=torch.uint8).reshape(shape)


def find(dir_, stem):
    for name in (stem, stem + ".gz"):
        p = os.path.join(dir_, name)
        if os.path.exists(p):
            return p
    raise SystemExit(f"{stem}[.gz] not found in {dir_}")


def load_train(dir_):
    x = read_idx(find(dir_, "train-images-idx3-ubyte")).float().div_(255.0).unsqueeze(1)
    y = read_idx(find(dir_, "train-labels-idx1-ubyte")).long()
    # fovea's normalizer: the training set's mean and standard deviation per channel
    mean, std = x.mean().item(), x.std(unbiased=False).item()
    return (x - mean) / std, y, mean, std


class Cnn(nn.Module):
    def __init__(self, classes=10, channels=(32, 64), block_dropout=(0.0, 0.0), hidden=128, dropout=0.3):
        super().__init__()
        layers, c_in = [], 1
        for c, p in zip(channels, block_dropout):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            if p > 0:
                layers.append(nn.Dropout(p))
            c_in = c
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.Linear(c_in * 7 * 7, hidden) if hidden else None
        self.out = nn.Linear(hidden or c_in * 49, classes)

    def forward(self, x):
        x = self.features(x).flatten(1)
        if self.hidden is not None:
            x = F.relu(self.hidden(self.dropout(x)))
        return self.out(self.dropout(x))


class Rnn(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.gru = nn.GRU(28, 128, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(0.2)
        self.out = nn.Linear(256, classes)

    def forward(self, x):
        seq, _ = self.gru(x[:, 0])  # rows: [b, 28, 28]
        return self.out(self.dropout(seq.mean(1)))


class CnnRnn(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv = Cnn(channels=(32, 64), block_dropout=(0.0, 0.2)).features
        self.lstm = nn.LSTM(64 * 7, 128, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(0.3)
        self.out = nn.Linear(256, classes)

    def forward(self, x):
        f = self.conv(x)  # [b, 64, 7, 7]
        seq = f.permute(0, 2, 1, 3).flatten(2)  # rows top to bottom: [b, 7, 64*7]
        seq, _ = self.lstm(seq)
        return self.out(self.dropout(seq.mean(1)))


def fire(membrane, threshold=1.0, slope=2.0):
    """Heaviside step of V - threshold forward; the arctan surrogate's derivative backward."""
    x = membrane - threshold
    xd = x.detach()
    g = (slope / 2) / (1 + (torch.pi / 2 * slope * xd) ** 2)
    return (xd >= 0).float() + (x - xd) * g


class CnnLif(nn.Module):
    def __init__(self, classes=10, steps=8, beta=0.9):
        super().__init__()
        self.features = Cnn(channels=(32, 64)).features
        self.dropout = nn.Dropout(0.3)
        self.out = nn.Linear(64 * 7 * 7, classes)
        self.steps, self.beta = steps, beta

    def forward(self, x):
        v4 = self.dropout(self.features(x).flatten(1))
        enc = torch.zeros_like(v4)
        v = torch.zeros(len(x), self.out.out_features)
        for _ in range(self.steps):
            h = enc + v4  # non-leaky encoder
            s = fire(h)
            enc = h - s.detach()
            membrane = self.beta * v + self.out(s)
            v = membrane - fire(membrane).detach()
        return membrane


class UNet(nn.Module):
    def __init__(self, c=16, channels=1):
        super().__init__()
        conv = lambda i, o: nn.Conv2d(i, o, 3, padding=1)  # noqa: E731
        self.e1a, self.e1b, self.e2a, self.e2b = conv(channels, c), conv(c, c), conv(c, 2 * c), conv(2 * c, 2 * c)
        self.ba, self.bb = conv(2 * c, 4 * c), conv(4 * c, 4 * c)
        self.up2, self.d2a, self.d2b = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2), conv(4 * c, 2 * c), conv(2 * c, 2 * c)
        self.up1, self.d1a, self.d1b = nn.ConvTranspose2d(2 * c, c, 2, stride=2), conv(2 * c, c), conv(c, c)
        self.out = nn.Conv2d(c, channels, 1)

    def forward(self, x, image):
        block = lambda x, a, b: F.relu(b(F.relu(a(x))))  # noqa: E731
        s1 = block(x, self.e1a, self.e1b)
        s2 = block(F.max_pool2d(s1, 2), self.e2a, self.e2b)
        x = block(F.max_pool2d(s2, 2), self.ba, self.bb)
        x = block(torch.cat([self.up2(x), s2], 1), self.d2a, self.d2b)
        x = block(torch.cat([self.up1(x), s1], 1), self.d1a, self.d1b)
        return image + self.out(x)


class PatchDiscriminator(nn.Module):
    def __init__(self, d=32, channels=1):
        super().__init__()
        self.conv1 = nn.Conv2d(2 * channels, d, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(d, 2 * d, 4, stride=2, padding=1)
        self.score = nn.Conv2d(2 * d, 1, 3, padding=1)

    def forward(self, damaged, candidate):
        x = torch.cat([damaged, candidate], 1) * 2 - 1
        return self.score(F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(x), 0.2)), 0.2))


class Restore(nn.Module):
    """The pair, trained by `step` on normalized batches (turned back into pixels)."""

    def __init__(self, mean=0.0, std=1.0, lr=1e-3, noise=0.3, adversarial=0.01):
        super().__init__()
        self.g, self.d = UNet(), PatchDiscriminator()
        self.mean, self.std, self.noise, self.adversarial = mean, std, noise, adversarial
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=lr)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=lr)

    def damaged(self, x):
        clean = x * self.std + self.mean
        return clean, (clean + self.noise * torch.randn_like(clean)).clamp(0, 1)

    def step(self, x, _y):
        clean, damaged = self.damaged(x)
        out = self.g(damaged, damaged)
        real, fake = self.d(damaged, clean), self.d(damaged, out.detach())
        d_loss = F.softplus(-real).mean() + F.softplus(fake).mean()
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        l1 = (out - clean).abs().mean()
        self.d.requires_grad_(False)  # as fovea: no gradients for D's weights in G's step
        loss = l1 + self.adversarial * F.softplus(-self.d(damaged, out)).mean()
        self.d.requires_grad_(True)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        return l1.item()  # fovea reads its losses back every step too

    def forward(self, x):
        _, damaged = self.damaged(x)
        return self.g(damaged, damaged)


class Generator(nn.Module):
    def __init__(self, classes=10, latent=64, embed=32, g=64):
        super().__init__()
        self.latent = latent
        self.embed = nn.Embedding(classes, embed)
        self.project = nn.Linear(latent + embed, 2 * g * 7 * 7)
        self.norm0 = nn.BatchNorm2d(2 * g)
        self.up1 = nn.ConvTranspose2d(2 * g, g, 4, stride=2, padding=1)
        self.norm1 = nn.BatchNorm2d(g)
        self.up2 = nn.ConvTranspose2d(g, 1, 4, stride=2, padding=1)

    def forward(self, z, y):
        x = self.project(torch.cat([z, self.embed(y)], 1)).view(len(z), -1, 7, 7)
        x = F.relu(self.norm1(self.up1(F.relu(self.norm0(x)))))
        return torch.tanh(self.up2(x))


class Discriminator(nn.Module):
    def __init__(self, classes=10, d=64):
        super().__init__()
        self.conv1 = nn.Conv2d(1, d, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(d, 2 * d, 4, stride=2, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(2 * d)
        features = 2 * d * 7 * 7
        self.score = nn.Linear(features, 1)
        self.embed = nn.Embedding(classes, features)
        nn.init.normal_(self.embed.weight, 0.0, features**-0.5)

    def forward(self, x, y):
        x = F.leaky_relu(self.conv1(x), 0.2)
        h = F.leaky_relu(self.norm2(self.conv2(x)), 0.2).flatten(1)
        return (self.score(h) + (self.embed(y) * h).sum(1, keepdim=True)).flatten()


def class_pairs(labels):
    """Each image of a class with two or more in the batch against the next of its class (the
    last against the first), as fovea pairs them; None where no class has two."""
    classes = {}
    for i, l in enumerate(labels):
        classes.setdefault(l, []).append(i)
    first, second = [], []
    for members in classes.values():
        if len(members) > 1:
            first += members
            second += members[1:] + members[:1]
    return (first, second) if first else None


class Gan(nn.Module):
    """The pair, trained by `step` (not by a classifier's loss)."""

    def __init__(self, classes=10, mean=0.0, std=1.0, lr=2e-4, mode_seeking=1.0, ema=0.999):
        super().__init__()
        self.g, self.d = Generator(classes), Discriminator(classes)
        self.g_ema = [p.detach().clone() for p in self.g.parameters()]
        self.mean, self.std, self.mode_seeking, self.ema = mean, std, mode_seeking, ema
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=lr, betas=(0.5, 0.999))

    def normalized(self, t):
        return ((t + 1) * 0.5 - self.mean) / self.std

    def step(self, x, y):
        z = torch.randn(len(x), self.g.latent)
        images = self.g(z, y)  # G(z) once: the generator's step differentiates through it
        d_loss = F.softplus(-self.d(x, y)).mean() + F.softplus(self.d(self.normalized(images).detach(), y)).mean()
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        self.d.requires_grad_(False)  # as fovea: no gradients for D's weights in G's step
        loss = F.softplus(-self.d(self.normalized(images), y)).mean()
        self.d.requires_grad_(True)
        pairs = class_pairs(y.tolist()) if self.mode_seeking > 0 else None
        if pairs is not None:
            i, j = (torch.tensor(p) for p in pairs)
            ratio = (images[i] - images[j]).abs().mean() / (z[i] - z[j]).abs().mean()
            loss = loss + self.mode_seeking / (ratio + 1e-5)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        with torch.no_grad():
            torch._foreach_mul_(self.g_ema, self.ema)
            torch._foreach_add_(self.g_ema, [p.detach() for p in self.g.parameters()], alpha=1 - self.ema)
        return d_loss.item()  # fovea reads its losses back every step too

    def forward(self, y):
        return self.g(torch.randn(len(y), self.g.latent), y)


# the models whose `step` trains them (two networks, their own optimizers)
SELF_TRAINED = (Gan, Restore)

MODELS = {"cnn": Cnn, "rnn": Rnn, "cnn-rnn": CnnRnn, "cnn-lif": CnnLif, "gan": Gan, "restore": Restore}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=MODELS, default="cnn")
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--infer-batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--latency-runs", type=int, default=200)
    ap.add_argument("--loss-steps", type=int, default=0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--json")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x, y, mean, std = load_train(a.data_dir)
    kind = MODELS[a.model]
    make = (lambda: kind(mean=mean, std=std, lr=a.lr)) if kind in SELF_TRAINED else kind
    model = make()
    # fovea counts batch norm's running mean and variance with the parameters
    params = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var"))
    )

    def batches(count, size, start=0):
        out = []
        for i in range(count):
            idx = torch.arange(start + i * size, start + (i + 1) * size) % len(x)
            out.append((x[idx].contiguous(), y[idx].contiguous()))
        return out

    def train_steps(m, opt, data):
        if isinstance(m, SELF_TRAINED):
            return [m.step(xb, yb) for xb, yb in data]
        losses = []
        for xb, yb in data:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(m(xb), yb)
            loss.backward()
            opt.step()
            losses.append(loss.item())  # fovea reads the loss back every step too
        return losses

    loss_curve = None
    if a.loss_steps > 0:
        torch.manual_seed(a.seed)
        m = make()
        m.train()
        opt = None if isinstance(m, SELF_TRAINED) else torch.optim.Adam(m.parameters(), lr=a.lr)
        loss_curve = train_steps(m, opt, batches(a.loss_steps, a.batch))

    model.train()
    opt = None if isinstance(model, SELF_TRAINED) else torch.optim.Adam(model.parameters(), lr=a.lr)
    train_steps(model, opt, batches(max(a.warmup, 1), a.batch))
    train_rounds = []
    for _ in range(a.repeats):
        data = batches(a.steps, a.batch)
        t = time.perf_counter()
        train_steps(model, opt, data)
        train_rounds.append(a.steps * a.batch / (time.perf_counter() - t))

    model.eval()
    xb = batches(1, a.infer_batch)[0][1 if isinstance(model, Gan) else 0]  # the GAN draws for labels
    x1 = xb[:1].contiguous()
    infer_rounds, latencies = [], []
    with torch.inference_mode():
        model(xb)
        for _ in range(a.repeats):
            t = time.perf_counter()
            for _ in range(4):
                model(xb).argmax(1)
            infer_rounds.append(4 * a.infer_batch / (time.perf_counter() - t))
        for _ in range(10):
            model(x1)
        for _ in range(a.latency_runs):
            t = time.perf_counter()
            model(x1).argmax(1)
            latencies.append((time.perf_counter() - t) * 1e3)
    latencies.sort()

    result = {
        "framework": f"pytorch {torch.__version__}",
        "model": a.model,
        "parameters": params,
        "threads": torch.get_num_threads(),
        "batch_size": a.batch,
        "infer_batch_size": a.infer_batch,
        "train_images_per_sec": statistics.median(train_rounds),
        "infer_images_per_sec": statistics.median(infer_rounds),
        "latency_ms_median": statistics.median(latencies),
        "latency_ms_p95": latencies[int(0.95 * (len(latencies) - 1))],
        "train_rounds": train_rounds,
        "infer_rounds": infer_rounds,
        "steps_per_round": a.steps,
        "repeats": a.repeats,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "cpu": platform.processor() or platform.machine(),
        "loss_curve": loss_curve,
    }
    text = json.dumps(result, indent=2)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
