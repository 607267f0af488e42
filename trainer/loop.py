"""The training loop: K packed members, exact resume from checkpoints."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from trainer import checkpoint, user
from trainer.config import PACKABLE, ConfigError, TrainConfig
from trainer.data import Batches, load_data  # load_data: also imported from here
from trainer.early_stop import select_model_state, select_opt_state, stop_reason
from trainer.model import PackedResMLP, reference_model
from trainer.optim import PackedOptimizer
from trainer.step import TrainStep, amp, member_mean, upcast
from trainer.vmapped import UserStep, scores_fn

Rows = list[dict[str, Any]]
Log = Callable[[str], None]

_log = logging.getLogger(__name__)


def messages(log: Log | None) -> tuple[Log, Log]:
    """(info, warn) for the trainer's messages. Warnings are always `logging` records
    (logger `trainer.*`, level WARNING) that callers consume structurally; a legacy
    `log` callable also receives every message as a line."""
    def warn(msg: str) -> None:
        _log.warning(msg.removeprefix("WARNING: "))
        if log is not None:
            log(msg)

    return (log if log is not None else _log.info), warn


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda requested but torch sees no GPU; allowed: auto, cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def check_pack(members: Sequence[TrainConfig]) -> None:
    """Members of one pack may differ only in packable keys."""
    if not members:
        raise ConfigError("members", "need at least one member")
    base = members[0].canonical()
    for m in members[1:]:
        mine = m.canonical()  # keys at their defaults may be absent (precision, model, ...)
        for k in sorted(base.keys() | mine.keys()):
            if k not in PACKABLE and k != "weight_decay" and mine.get(k) != base.get(k):
                raise ConfigError(k, f"members of one pack differ in {k}; only these may "
                                     f"differ: {', '.join(PACKABLE)}")


def scores(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per member: MSE loss, exact-match accuracy, bit accuracy; each (K,).
    `out` and `y` are (N, K, n_out)."""
    hit = (out > 0.5) == (y > 0.5)  # means of 0/1 are exact in any order
    return (member_mean((out - y) ** 2), hit.all(-1).float().mean(0),
            hit.float().mean(dim=(0, 2)))


def train(members: Sequence[TrainConfig], out: Path | None = None, *,
          on_eval: Callable[[Rows], None] | None = None,
          on_checkpoint: Callable[[Path, int, Rows], None] | None = None,
          on_resume: Callable[[int], None] | None = None,
          log: Log | None = None) -> Rows:
    """Train the members together; return their metric history (one row per
    member per evaluation). With `out`, checkpoints go to out/checkpoints and a
    rerun continues from the newest good one, ending bit-identical.
    `on_checkpoint(path, step, history)` runs after each checkpoint is saved;
    `on_resume(step)` once a checkpoint has been loaded, with the step it resumes from.
    Messages are `logging` records (progress INFO, problems WARNING); `log`, if
    given, receives them as lines too."""
    check_pack(members)
    info, warn = messages(log)
    cfg = members[0]
    torch.set_num_threads(cfg.threads or available_cpus())
    torch.set_flush_denormal(True)  # decayed weights and Adam's v underflow: denormals are slow
    dev = pick_device(cfg.device)
    S, b, spe = cfg.total_steps, cfg.batch_size, cfg.steps_per_epoch
    ckpt_dir = out / "checkpoints" if out is not None else None
    st = checkpoint.load_latest(ckpt_dir, warn) if ckpt_dir is not None else None
    # The members still training: all, or those a checkpoint after early stops names.
    active = list(st["active"]) if st is not None and "active" in st else \
        list(range(len(members)))
    pk = _Pack(members, active, dev, warn)

    # Training-mode loss/accuracy summed since the last evaluation: (2, K) and a count.
    step, history, wall, acc_n = 0, [], 0.0, 0
    if st is not None:
        pk.model.load_state(st["model"])
        pk.opt.load_state(st["opt"])
        step, history, wall = st["step"], st["history"], st["wall"]
        pk.step.acc_sum.copy_(st["acc_sum"])  # in place: a captured step writes into it
        acc_n = st["acc_n"]
        torch.set_rng_state(st["rng"])
        if dev.type == "cuda" and "cuda_rng" in st:
            torch.cuda.set_rng_state(st["cuda_rng"], dev)
        info(f"resumed at step {step}/{S}")
        if on_resume is not None:
            on_resume(step)

    t0, perm = time.perf_counter(), None
    while step < S and active:
        i = step % spe
        x, y = pk.data["train"].x, pk.data["train"].y
        if cfg.shuffle:  # a fresh order per epoch, a pure function of (data seed, epoch)
            if i == 0 or perm is None or perm.shape[0] != len(active):
                perm = torch.stack([_epoch_perm(members[k].effective_data_seed, step // spe,
                                                x.shape[0]) for k in active]).to(dev)
            idx = perm[:, i * b : (i + 1) * b].T  # (b, K)
            xb, yb = x[idx, pk.kidx], y[idx, pk.kidx]
        else:  # the seed's loader: one fixed order, last partial batch dropped
            xb, yb = x[i * b : (i + 1) * b], y[i * b : (i + 1) * b]
        pk.step(xb, yb)  # forward, backward, update, acc_sum += (loss, accuracy)
        acc_n += 1
        step += 1

        if step % cfg.eval_interval == 0 or step == S:
            if dev.type == "cuda":  # the clock counts queued GPU work as well
                torch.cuda.synchronize(dev)
            now = time.perf_counter()
            wall, t0 = wall + (now - t0), now
            with pk.amp():  # evaluate the model as it trains
                rows = _evaluate(pk.model, pk.data, pk.ident, step, spe,
                                 pk.step.acc_sum / acc_n, wall, pk.score)
            pk.step.acc_sum.zero_()
            acc_n = 0
            history.extend(rows)
            stopped = _stops(cfg, history, rows, len(members)) if step < S else []
            if on_eval is not None:
                on_eval(rows)
            info(_progress(rows, S, 1e3 * wall / max(step, 1)))
            if stopped:  # the pack shrinks; the survivors' arithmetic is unchanged
                keep = [j for j, k in enumerate(active) if k not in stopped]
                active = [active[j] for j in keep]
                info(f"step {step}: member(s) {', '.join(map(str, stopped))} stopped early; "
                     f"{len(active)} train on")
                if active:
                    pk = pk.shrink(keep)
            t0 = time.perf_counter()  # evaluation time is not training time
        if ckpt_dir is not None and (step % cfg.checkpoint_every == 0 or step == S
                                     or not active):
            wall += time.perf_counter() - t0  # a resume continues the clock from here
            st = dict(format=1, step=step, model=pk.model.state(), opt=pk.opt.state(),
                      history=history, wall=wall, acc_sum=pk.step.acc_sum.cpu(), acc_n=acc_n,
                      rng=torch.get_rng_state(), active=active,
                      **({"cuda_rng": torch.cuda.get_rng_state(dev)} if dev.type == "cuda"
                         else {}))
            path = checkpoint.save(ckpt_dir, step, st)
            if on_checkpoint is not None:
                on_checkpoint(path, step, history)
            t0 = time.perf_counter()  # saving is not training time
    return history


def _stops(cfg: TrainConfig, history: Rows, rows: Rows, K: int) -> list[int]:
    """Members (pack indices) that stop early after this evaluation; their rows in
    `rows` (the latest, also in `history`) get the reason in `stop`."""
    if cfg.stop_train_acc is None:
        return []
    # An evaluation adds at most K rows, so a member still training has its last
    # stop_evals evaluations in the history's tail: no pass over the whole run.
    tail = history[-cfg.stop_evals * K:]
    out = []
    for r in rows:
        mine = [h for h in tail if h["member"] == r["member"]]
        why = stop_reason(mine, cfg.stop_train_acc, cfg.stop_evals, cfg.stop_tol)
        if why is not None:
            r["stop"] = why
            out.append(r["member"])
    return out


class _Pack:
    """The members `active` of a pack, built to train: data, model, optimizer, step."""

    def __init__(self, members: Sequence[TrainConfig], active: Sequence[int],
                 dev: torch.device, warn: Log):
        self.members, self.active, self.dev, self.warn = members, list(active), dev, warn
        ms = [members[k] for k in active]
        cfg = ms[0]
        objective = None
        if user.custom(cfg):  # your own task or model: any nn.Module, stacked (trainer.vmapped)
            self.data, self.model, objective = user.load(ms, dev)
        else:
            self.data = load_data(ms, dev)
            n_in, n_out = self.data["train"].x.shape[-1], self.data["train"].y.shape[-1]
            self.model = PackedResMLP([reference_model(n_in, n_out, cfg.width, cfg.depth,
                                                       cfg.batch_norm, m.bn_eps, m.seed)
                                       for m in ms], [m.bn_eps for m in ms], dev)
        decays = [m.decay for m in ms]
        self.opt = PackedOptimizer(cfg.optimizer, self.model, lr=[m.lr for m in ms],
                                   wd=[d.weight_decay for d in decays],
                                   matrices_only=cfg.decay_mode == "matrices",
                                   beta1=cfg.beta1, beta2=cfg.beta2, eps=cfg.adam_eps,
                                   momentum=cfg.momentum,
                                   compile=_compile_update(cfg, dev, self.model.flat.numel()),
                                   schedule=cfg.schedule)
        self.amp = amp(cfg.precision, dev)  # fp32: nothing; bf16: autocast around forwards
        self.step: TrainStep = TrainStep(self.model, self.opt, graph=cfg.cuda_graph, log=warn,
                                         amp=self.amp)
        self.score: Callable = scores
        if objective is not None:  # the task's loss and accuracy, an eager step
            self.step = UserStep(self.model, self.opt, objective, amp=self.amp)
            self.score = scores_fn(objective)
        self.kidx = torch.arange(len(ms), device=dev)
        # `member`: the index in the whole pack, kept when the pack shrinks
        self.ident = [dict(member=k, config_hash=m.config_hash(), seed=m.seed, lr=m.lr,
                           weight_decay=d.weight_decay, decay_per_step=d.decay_per_step,
                           lambda_norm=d.lambda_norm, bn_eps=m.bn_eps, batch_size=m.batch_size,
                           train_size=m.train_size)
                      for k, m, d in zip(active, ms, decays)]

    def shrink(self, keep: Sequence[int]) -> _Pack:
        """A pack of the members at positions `keep`, carrying their state on."""
        K, slots = len(self.active), self.model.slots
        new = _Pack(self.members, [self.active[j] for j in keep], self.dev, self.warn)
        new.model.load_state(select_model_state(self.model.state(), slots, K, keep))
        opt = self.opt.state()
        new.opt.load_state(select_opt_state(opt, slots, K, keep))
        return new


# The update is memory-bound; fused, it saves ~1.5e-11 s per parameter element and step
# on an H200 (docs/benchmarks.md), and compiling costs 10-30 s: compile when the run
# saves more than that.
COMPILE_MIN_WORK = 2e12


def _compile_update(cfg: TrainConfig, dev: torch.device, numel: int) -> bool:
    """numel: parameter elements of the whole pack."""
    if dev.type != "cuda":
        return False
    if cfg.compile_update is not None:
        return cfg.compile_update
    return numel * cfg.total_steps >= COMPILE_MIN_WORK


def _epoch_perm(seed: int, epoch: int, n: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


@torch.no_grad()
def _evaluate(model: PackedResMLP, data: dict[str, Batches], ident: Rows, step: int, spe: int,
              train_scores: torch.Tensor, wall: float, score: Callable = scores) -> Rows:
    model.training = False
    te_loss, te_acc, te_bit = score(upcast(model(data["test"].x)), data["test"].y)
    va_loss, va_acc, _ = score(upcast(model(data["val"].x)), data["val"].y)
    model.training = True
    wn, wn2 = model.weight_norms()
    cols = dict(train_loss=train_scores[0], train_acc=train_scores[1], test_loss=te_loss,
                test_acc=te_acc, val_loss=va_loss, val_acc=va_acc, bit_acc=te_bit,
                weight_norm=wn, weight_norm_sq=wn2)
    stacked = torch.stack([v.to(torch.float64) for v in cols.values()]).cpu()  # one sync
    host = dict(zip(cols, stacked.tolist()))
    return [dict(ident[k], step=step, epoch=step / spe, **{c: host[c][k] for c in host},
                 wall_time=wall) for k in range(len(ident))]


def _progress(rows: Rows, total: int, ms_per_step: float) -> str:
    r = rows[0]
    head = f"step {r['step']:>7}/{total} ep {r['epoch']:8.2f}"
    if len(rows) == 1:
        body = (f"train loss {r['train_loss']:.4f} acc {r['train_acc']:.3f} | test loss "
                f"{r['test_loss']:.4f} acc {r['test_acc']:.3f} | |w| {r['weight_norm']:.1f}")
    else:
        tr = [f"{x['train_acc']:.2f}" for x in rows]
        te = [f"{x['test_acc']:.2f}" for x in rows]
        body = f"train acc [{' '.join(tr)}] test acc [{' '.join(te)}]"
    return f"{head} | {body} | {ms_per_step:.2f} ms/step"
