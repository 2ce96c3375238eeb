"""Every shipped recipe validates, and trains for a few steps on a tiny generated file of its data format."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from transduce_builtins.datasets import generate_splits, write_date_file

from transduce._cli import main as cli
from transduce._plugins.registry import Registry
from transduce._recipe.recipe import load_recipe

RECIPES = Path(__file__).resolve().parent.parent / "recipes"

# Small enough to train in about a second; the recipe's own data format and tokenizers stay.
SHRINK = (
    "model.embedding_dim=16",
    "model.decoder.hidden_size=32",
    "model.encoder.hidden_size=32",
    "train.epochs=1",
    "train.batch_size=16",
    "train.threads=1",
    "train.device=cpu",
    "evaluate.examples=2",
)

EN = ["the dog runs", "a man eats bread", "two girls play", "the cat sleeps", "a boy reads a book", "we go home"]
FR = ["le chien court !", "un homme mange du pain", "deux filles jouent", "le chat dort", "un garçon lit", "on rentre"]
DE = ["der Hund läuft", "ein Mann isst Brot", "zwei Mädchen spielen", "die Katze schläft", "ein Junge liest"]
KO_Q = ["오늘 날씨 어때?", "영화 보러 갈까", "배고파", "잠이 안 와", "주말에 뭐 하지", "공부하기 싫어"]
KO_A = [
    "맑을 것 같아요.",
    "좋은 생각이에요!",
    "맛있는 거 드세요.",
    "따뜻한 우유 어때요?",
    "푹 쉬세요.",
    "조금만 힘내요.",
]


def pairs(sources: list[str], targets: list[str], count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(f"{rng.choice(sources)} {i}", f"{rng.choice(targets)} {i}") for i in range(count)]


def tatoeba_file(directory: Path) -> Path:
    path = directory / "fra.txt"
    path.write_text("".join(f"{en}\t{fr}\tCC-BY 2.0 (France) Attribution\n" for en, fr in pairs(EN, FR, 120, 1)))
    return path


def chatbot_file(directory: Path) -> Path:
    path = directory / "ChatbotData.csv"
    rows = ["Q,A,label"] + [f'{q},"{a}",0' for q, a in pairs(KO_Q, KO_A, 120, 2)]
    path.write_bytes("\r\n".join(rows).encode("utf-8"))  # CRLF, no final newline, as the real file
    return path


def date_file(directory: Path) -> Path:
    """A small file in the format of the book's date.txt."""
    path = directory / "date.txt"
    write_date_file(path, generate_splits(3, {"train": 120, "valid": 1, "test": 1})["train"])
    return path


def multi30k_dir(directory: Path) -> Path:
    for stem, count in (("train", 100), ("val", 12), ("test_2016_flickr", 12)):
        data = pairs(DE, EN, count, len(stem))
        (directory / f"{stem}.de").write_text("".join(de + "\n" for de, _ in data), encoding="utf-8")
        (directory / f"{stem}.en").write_text("".join(en + "\n" for _, en in data), encoding="utf-8")
    return directory


SMALL_SPLITS = ("data.valid_size=10", "data.test_size=10")
# Recipes by their path under recipes/, without .yaml.
CASES: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "translate-fra-eng": (
        tatoeba_file,
        (*SMALL_SPLITS, "source.tokenizer.vocab_size=60", "target.tokenizer.vocab_size=60"),
    ),
    "translate-fra-eng-char-plain": (tatoeba_file, SMALL_SPLITS),
    "translate-fra-eng-char-attention": (tatoeba_file, SMALL_SPLITS),
    "chat-ko": (chatbot_file, SMALL_SPLITS),
    "translate-multi30k": (multi30k_dir, ()),
    **{
        f"book/date-{model}": (date_file, SMALL_SPLITS)
        for model in ("baseline", "reversed", "peeky", "peeky-reversed", "attention")
    },
}


def test_every_shipped_recipe_has_an_end_to_end_test() -> None:
    shipped = sorted(str(p.relative_to(RECIPES).with_suffix("")) for p in RECIPES.rglob("*.yaml"))
    assert sorted(["dates", *CASES]) == shipped


@pytest.mark.parametrize("name", sorted(CASES))
def test_recipe_validates_as_shipped(name: str, registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from a repository root whose ../shared/data holds the data (as the recipes say), the path
    resolves to that data, absolute."""
    shipped = RECIPES / f"{name}.yaml"
    written = yaml.safe_load(shipped.read_text(encoding="utf-8"))["data"]["path"]
    assert written.startswith("../shared/data/")
    (tmp_path / "repo").mkdir()
    data = tmp_path / written[3:]
    if name == "translate-multi30k":
        data.mkdir(parents=True)
    else:
        data.parent.mkdir(parents=True)
        data.write_text("")
    monkeypatch.chdir(tmp_path / "repo")
    assert load_recipe(shipped, registry)["data"]["path"] == str(data)


@pytest.mark.parametrize("name", sorted(CASES))
def test_recipe_trains_a_few_steps_on_a_tiny_file_of_its_format(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], registry: Registry
) -> None:
    make_data, overrides = CASES[name]
    data = make_data(tmp_path)
    run = tmp_path / "run"
    argv = ["train", str(RECIPES / f"{name}.yaml"), "--run-dir", str(run), "--set", f"data.path={data}"]
    for override in (*SHRINK, *overrides):
        argv += ["--set", override]
    status = cli.main(argv)
    assert status == 0, capsys.readouterr().err
    summary = json.loads((run / "data.json").read_text(encoding="utf-8"))
    assert summary["splits"]["train"]["pairs"] > 50
    assert summary["splits"]["test"]["pairs"] >= 10
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert report["size"] == summary["splits"]["test"]["pairs"]
    metric_names = {metric["name"] for metric in load_recipe(run / "recipe.yaml", registry)["evaluate"]["metrics"]}
    assert set(report["metrics"]) == metric_names
    capsys.readouterr()
    assert cli.main(["translate", str(run), "ein Mann isst Brot 3"]) == 0
    # The run's data source reads a file of its own format for `evaluate --data` (for parallel files: DIR/STEM).
    scored = data / "val" if name == "translate-multi30k" else data
    assert cli.main(["evaluate", str(run), "--data", str(scored), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(metrics) == metric_names
