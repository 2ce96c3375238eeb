"""Opening a trained run, written once: its recipe, vocabularies, tokenizers, model and checkpoint, each read
and checked here for every use of a run (translating, chatting, evaluating, drawing attention, resuming).

Every check a run's files get is made on the way: the recipe is read as the run's (a missing plugin or an
older layout is the run's problem, named as such), the checkpoint is loaded safely with its structure checked,
the vocabularies and tokenizer files must be those the checkpoint was saved with (`RunDir.check_fingerprints`),
and the weights must fit the model the recipe builds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from transduce._data.vocab import Vocabulary
from transduce._model import assembly as pipeline
from transduce._model.model import Seq2Seq
from transduce._plugins.contracts import Tokenizer
from transduce._plugins.registry import Registry
from transduce._recipe.recipe import MOVED, load_recipe
from transduce._runs import checkpoint as checkpoint_file
from transduce._runs.provenance import require_plugins
from transduce._runs.rundir import RunDir
from transduce.errors import RecipeError, RunError


def pick_device(setting: str) -> torch.device:
    """'auto' is CUDA when available, else the CPU."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise RecipeError("CUDA was asked for but torch sees no GPU; use 'auto' or 'cpu'", key="train.device")
    return torch.device(setting)


# --- the run's recipe ------------------------------------------------------------------------------------------


def read_run_recipe(run: RunDir, registry: Registry, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The run's own recipe.yaml, resolved with `overrides` (`--set`).

    Once the run has its checkpoints folder its data paths are not checked: the data may be gone, and decoding
    needs none. A recipe this version cannot read is explained as the run's problem: a run made before the
    recipe layout changed, or one whose components come from a plugin not installed here (a RunError naming
    the distribution to install).
    """
    try:
        return load_recipe(run.recipe, registry, overrides, check_paths=not run.last_checkpoint.parent.is_dir())
    except RecipeError as error:
        _explain(run, error, registry)
        raise


def _explain(run: RunDir, error: RecipeError, registry: Registry) -> None:
    """Raise the RunError that says why the run's recipe does not read, when the run is the cause."""
    moved = tuple(error.key.split("."))
    if error.source == str(run.recipe) and moved in MOVED:
        raise RunError(
            f"{run.path} was made by an older transduce version, from before the decoder network became a "
            f"component: its recipe.yaml has `{error.key}` ({MOVED[moved]}). This version cannot open it; "
            "train it again from its recipe in the new layout (docs/recipes.md shows it), or evaluate and "
            "translate with the transduce version that trained it"
        )
    require_plugins(run, registry)


# --- its checkpoint --------------------------------------------------------------------------------------------


@dataclass
class LoadedCheckpoint:
    """A checkpoint file loaded safely: `saved` is its whole payload, `weights` its checked 'model' entry."""

    path: Path
    saved: dict[str, Any]
    weights: dict[str, torch.Tensor]


def load_checkpoint(run: RunDir, which: str | Path = "best") -> LoadedCheckpoint:
    """`which`: "best" (falling back to last.pt), "last", or the path of a checkpoint file.

    Refused with a RunError: no such checkpoint, a file that is not a checkpoint, weights that are not a
    mapping of names to tensors, and vocabulary or tokenizer files changed since the checkpoint was saved.
    """
    path = run.checkpoint(str(which)) if which in ("best", "last") else Path(which)
    saved = checkpoint_file.load(path)
    weights = checkpoint_file.weights(saved, path)
    run.check_fingerprints(saved, path)
    return LoadedCheckpoint(path, saved, weights)


def load_weights(model: Seq2Seq, weights: dict[str, torch.Tensor], path: Path, run: RunDir) -> None:
    """Put a checkpoint's weights into `model`, built with the run's vocabulary sizes.

    Embedding rows that differ from a vocabulary's size blame the vocabulary file (a run saved before
    checkpoints recorded its files' hashes gets no `check_fingerprints` error first); any other
    difference is the checkpoint's.
    """
    expected = model.state_dict()
    sides = (
        ("source_embedding.", run.source_vocab, model.source_embedding.num_embeddings),
        ("decoder.", run.target_vocab, model.target_vocab_size),  # the decoder network's vocabulary-sized rows
    )
    for prefix, vocab, now in sides:
        for name, tensor in expected.items():
            trained = weights.get(name)
            if not (name.startswith(prefix) and tensor.dim() and tensor.size(0) == now):
                continue
            if isinstance(trained, torch.Tensor) and trained.dim() == tensor.dim() and trained.size(0) != now:
                raise RunError(
                    f"{vocab} lists {now:,} tokens but {path.name} was trained with {trained.size(0):,}: the "
                    "vocabulary file changed since training (or comes from another run); put back the one the run "
                    "was trained with"
                )
    checkpoint_file.fit(model, weights, path)


# --- the whole run ---------------------------------------------------------------------------------------------


@dataclass
class OpenedRun:
    """A run ready to use: its resolved recipe, the checkpoint's weights in the model (on `device`, in eval
    mode), and the vocabularies and tokenizers the model was trained with."""

    run: RunDir
    recipe: dict[str, Any]
    checkpoint: LoadedCheckpoint
    model: Seq2Seq
    source_vocab: Vocabulary
    target_vocab: Vocabulary
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer
    device: torch.device


def open_run(
    path: Path | RunDir,
    registry: Registry,
    overrides: Iterable[str] = (),
    *,
    checkpoint: str | Path = "best",
    device: str = "auto",
    recipe: dict[str, Any] | None = None,
) -> OpenedRun:
    """Open the run at `path` with `checkpoint` (see load_checkpoint) on `device` ("auto", "cpu", "cuda", ...).

    Its recipe is read with `overrides` (read_run_recipe), unless the caller already resolved it and passes
    `recipe`. Every problem is a RunError or RecipeError that names the file and what to do.
    """
    run = path if isinstance(path, RunDir) else RunDir.open(path)
    if recipe is None:
        recipe = read_run_recipe(run, registry, overrides)
    loaded = load_checkpoint(run, checkpoint)
    source_vocab = Vocabulary.load(run.source_vocab)
    target_vocab = Vocabulary.load(run.target_vocab)
    model = pipeline.model(registry, recipe, len(source_vocab), len(target_vocab))
    load_weights(model, loaded.weights, loaded.path, run)
    target = pick_device(device)
    model.to(target).eval()
    tokenizers = {side: pipeline.tokenizer(registry, recipe, side) for side in ("source", "target")}
    for side, tokenizer in tokenizers.items():
        tokenizer.load(run.tokenizer_dir(side))
    return OpenedRun(
        run, recipe, loaded, model, source_vocab, target_vocab, tokenizers["source"], tokenizers["target"], target
    )
