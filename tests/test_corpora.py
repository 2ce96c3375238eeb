"""Tests of the corpus data sources `tsv`, `csv` and `parallel` (and the reading machinery they share)."""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from transduce_builtins.corpora import CommaSeparated, ParallelFiles, TabSeparated

from transduce._plugins.registry import discover
from transduce.api import SPLITS, DataError, Example

PAIRS = [("Go.", "Va !"), ("Hi.", "Salut !"), ("Run!", "Cours !")]


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def tsv_text(pairs: list[tuple[str, str]]) -> str:
    return "".join(f"{s}\t{t}\n" for s, t in pairs)


def splits(source: object) -> dict[str, list[Example]]:
    return {name: list(source.split(name)) for name in SPLITS}  # type: ignore[attr-defined]


def grouped_corpus(tmp_path: Path, sources: int = 300) -> tuple[Path, list[tuple[str, str]]]:
    """Source sentence i has 1 + i % 4 translations; translations of one source are not adjacent."""
    rows = [(f"sentence {i} .", f"translation {i}-{k}") for k in range(4) for i in range(sources) if k <= i % 4]
    return write(tmp_path / "corpus.tsv", tsv_text(rows)), rows


# --- tsv ---------------------------------------------------------------------------------


def test_tsv_reads_bom_crlf_extra_columns_blank_lines_and_a_last_line_without_newline(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbfGo.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272\r\n"
    data += b"Hi.\t Salut ! \n\nRun!\tCours !"
    source = TabSeparated(path=str(write(tmp_path / "fra.txt", data)))
    assert list(source.read_file(tmp_path / "fra.txt")) == [Example(*pair) for pair in PAIRS]
    assert source.notes() == []


def test_tsv_columns_can_be_swapped_and_a_header_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "eng-fra.tsv", "english\tfrench\n" + tsv_text(PAIRS))
    source = TabSeparated(path=str(path), source_column=1, target_column=0, header=True)
    assert list(source.read_file(path)) == [Example(t, s) for s, t in PAIRS]


NOT_TEXT = "the file is not UTF-8 text (a binary file, or another encoding?): give a UTF-8 text file; or, "
BAD_TSV_ROWS = [
    (
        b"only one field\n",
        "expected at least 2 tab-separated columns, got 1",
        "the rows have no tab: columns of a tsv file are separated by tabs (for commas use data: csv); or, ",
    ),
    (b"Go.\t   \n", "empty target", ""),
    (b" \tVa !\n", "empty source", ""),
    (b"caf\xe9\tcaf\xc3\xa9\n", "not valid UTF-8 (invalid continuation byte at byte 3)", NOT_TEXT),
    (b"a\x00b\tc\n", "contains a NUL byte", NOT_TEXT),
]


@pytest.mark.parametrize(("row", "reason", "fix"), BAD_TSV_ROWS)
def test_tsv_bad_row_is_skipped_and_noted_with_file_and_line(tmp_path: Path, row: bytes, reason: str, fix: str) -> None:
    path = write(tmp_path / "bad.tsv", tsv_text(PAIRS[:2]).encode() + row + b"Run!\tCours !\n")
    source = TabSeparated(path=str(path))
    assert list(source.read_file(path)) == [Example(*pair) for pair in PAIRS]
    assert source.notes() == [f"{path}: skipped 1 bad row (data.bad_rows=skip)", f"  {path}:3: {reason}"]


@pytest.mark.parametrize(("row", "reason", "fix"), BAD_TSV_ROWS)
def test_tsv_bad_row_under_policy_error_stops_with_file_line_and_suggestion(
    tmp_path: Path, row: bytes, reason: str, fix: str
) -> None:
    path = write(tmp_path / "bad.tsv", tsv_text(PAIRS[:2]).encode() + row)
    source = TabSeparated(path=str(path), bad_rows="error")
    with pytest.raises(DataError) as caught:
        list(source.read_file(path))
    expected = f"{path}:3: {reason}; {fix}to skip such rows and go on, run with --set data.bad_rows=skip"
    assert str(caught.value) == expected


def test_many_bad_rows_show_the_first_five_and_count_once_over_repeated_reads(tmp_path: Path) -> None:
    path, rows = grouped_corpus(tmp_path, sources=40)
    with path.open("a", encoding="utf-8") as out:
        out.write("no tab here\n" * 8)
    source = TabSeparated(path=str(path), valid_size=5, test_size=5)
    for _ in range(3):
        splits(source)
    bad = [line for line in source.notes() if "bad row" in line or "tab-separated" in line or "more" in line]
    first = len(rows) + 1
    assert bad == [
        f"{path}: skipped 8 bad rows (data.bad_rows=skip)",
        *(f"  {path}:{first + i}: expected at least 2 tab-separated columns, got 1" for i in range(5)),
        "  ... and 3 more",
    ]


def test_a_file_without_usable_pairs_is_a_data_error(tmp_path: Path) -> None:
    header_only = write(tmp_path / "header.tsv", "english\tfrench\n")
    with pytest.raises(DataError, match=r"header\.tsv: no usable pairs for split 'train': the file has no data rows"):
        list(TabSeparated(path=str(header_only), header=True).split("train"))
    all_bad = write(tmp_path / "bad.tsv", "a\n\tb\n")
    with pytest.raises(DataError, match=r"bad\.tsv: no usable pairs for this file: 2 bad rows were skipped"):
        list(TabSeparated(path=str(all_bad)).read_file(all_bad))


# --- csv ---------------------------------------------------------------------------------


def test_csv_reads_quoted_fields_crlf_extra_columns_and_a_last_line_without_newline(tmp_path: Path) -> None:
    data = 'Q,A,label\r\n12시 땡!,하루가 또 가네요.,0\r\n"SNS 보면, 나만 빼고","다들 ""행복""해 보여요.",2   \r\n'
    data += "3박4일 놀러가고 싶다,여행은 언제나 좋죠.,0"
    path = write(tmp_path / "ChatbotData.csv", "\ufeff" + data)
    source = CommaSeparated(path=str(path), source_column="Q", target_column="A")
    assert list(source.read_file(path)) == [
        Example("12시 땡!", "하루가 또 가네요."),
        Example("SNS 보면, 나만 빼고", '다들 "행복"해 보여요.'),
        Example("3박4일 놀러가고 싶다", "여행은 언제나 좋죠."),
    ]
    swapped = CommaSeparated(path=str(path), source_column="A", target_column="Q")
    assert next(iter(swapped.read_file(path))) == Example("하루가 또 가네요.", "12시 땡!")


def test_csv_bad_rows_are_noted_with_their_first_line_even_after_a_multiline_field(tmp_path: Path) -> None:
    data = b'Q,A\n"two\nlines",a\nonly-q\nq,\n\xff\xfe,x\nq,a\n'
    path = write(tmp_path / "rows.csv", data)
    source = CommaSeparated(path=str(path), source_column="Q", target_column="A")
    assert list(source.read_file(path)) == [Example("two\nlines", "a"), Example("q", "a")]
    assert source.notes() == [
        f"{path}: skipped 3 bad rows (data.bad_rows=skip)",
        f"  {path}:4: expected at least 2 columns, got 1",
        f"  {path}:5: empty target",
        f"  {path}:6: not valid UTF-8 (invalid start byte at byte 0)",
    ]
    with pytest.raises(DataError, match=r"rows\.csv:4: expected at least 2 columns.*data\.bad_rows=skip"):
        list(CommaSeparated(path=str(path), source_column="Q", target_column="A", bad_rows="error").read_file(path))


def test_csv_missing_column_lists_the_header(tmp_path: Path) -> None:
    path = write(tmp_path / "qa.csv", "Q,A,label\nq,a,0\n")
    source = CommaSeparated(path=str(path), source_column="Q", target_column="answer")
    with pytest.raises(DataError, match=r"qa\.csv:1: no column 'answer' in the header \(columns: 'Q', 'A', 'label'\)"):
        list(source.split("train"))


def test_csv_with_only_a_header_or_nothing_is_a_data_error(tmp_path: Path) -> None:
    for name, text in (("header.csv", "Q,A,label\r\n"), ("empty.csv", "")):
        path = write(tmp_path / name, text)
        with pytest.raises(DataError, match=rf"{name}: no usable pairs"):
            list(CommaSeparated(path=str(path), source_column="Q", target_column="A").read_file(path))


def test_csv_other_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path / "semi.csv", 'src;tgt\n"a;b";c\n')
    source = CommaSeparated(path=str(path), source_column="src", target_column="tgt", delimiter=";")
    assert list(source.read_file(path)) == [Example("a;b", "c")]


# --- splitting -----------------------------------------------------------------------------


def test_split_keeps_each_source_sentence_in_one_split_with_about_the_asked_sizes(tmp_path: Path) -> None:
    path, rows = grouped_corpus(tmp_path)
    source = TabSeparated(path=str(path), valid_size=40, test_size=40, seed=3)
    got = splits(source)
    owners: dict[str, set[str]] = {}
    for name, examples in got.items():
        for example in examples:
            owners.setdefault(example.source, set()).add(name)
    assert all(len(names) == 1 for names in owners.values())
    assert 40 <= len(got["valid"]) < 44 and 40 <= len(got["test"]) < 44
    assert Counter(e for examples in got.values() for e in examples) == Counter(Example(*r) for r in rows)
    train_order = [Example(*r) for r in rows if owners[r[0]] == {"train"}]
    assert got["train"] == train_order  # file order within a split


def test_split_is_deterministic_across_calls_and_instances_and_changes_with_the_seed(tmp_path: Path) -> None:
    path, _ = grouped_corpus(tmp_path)
    source = TabSeparated(path=str(path), valid_size=40, test_size=40)
    first = splits(source)
    assert splits(source) == first
    assert list(source.split("train")) == first["train"]
    assert splits(TabSeparated(path=str(path), valid_size=40, test_size=40)) == first
    other = splits(TabSeparated(path=str(path), valid_size=40, test_size=40, seed=99))
    assert other["valid"] != first["valid"] and other["test"] != first["test"]


def test_explicit_split_files_are_used_whole_and_nothing_is_taken_from_train(tmp_path: Path) -> None:
    path, rows = grouped_corpus(tmp_path, sources=50)
    valid = write(tmp_path / "valid.tsv", tsv_text([("v1", "w1"), ("v2", "w2")]))
    test = write(tmp_path / "test.tsv", tsv_text([("t1", "u1")]))
    both = splits(TabSeparated(path=str(path), valid_path=str(valid), test_path=str(test)))
    assert both == {
        "train": [Example(*r) for r in rows],
        "valid": [Example("v1", "w1"), Example("v2", "w2")],
        "test": [Example("t1", "u1")],
    }
    only_valid = splits(TabSeparated(path=str(path), valid_path=str(valid), test_size=10))
    assert only_valid["valid"] == both["valid"]
    assert 10 <= len(only_valid["test"]) < 14
    assert sorted(only_valid["train"] + only_valid["test"]) == sorted(both["train"])


def test_held_out_sizes_too_large_for_the_file_are_a_data_error(tmp_path: Path) -> None:
    path, rows = grouped_corpus(tmp_path, sources=10)
    with pytest.raises(
        DataError, match=rf"{len(rows)} usable pairs are too few to take valid_size=20 and test_size=20"
    ):
        list(TabSeparated(path=str(path), valid_size=20, test_size=20).split("valid"))


def test_deduplicate_drops_repeated_pairs_and_says_how_many(tmp_path: Path) -> None:
    rows = [(f"s{i}", f"t{i}") for i in range(60)]
    path = write(tmp_path / "dup.tsv", tsv_text(rows + rows[:7] + [("s0", "other")]))
    on = TabSeparated(path=str(path), valid_size=5, test_size=5)
    kept = splits(on)
    every = [e for examples in kept.values() for e in examples]
    assert len(every) == len(set(every)) == 61
    removed = [line for line in on.notes() if "repeated" in line]
    assert sum(int(line.split("removed ")[1].split()[0]) for line in removed) == 7
    assert all(line.startswith(f"{path} (split '") for line in removed)
    off = splits(TabSeparated(path=str(path), valid_size=5, test_size=5, deduplicate=False))
    assert sum(len(examples) for examples in off.values()) == 68


def test_unknown_split_name_is_a_data_error(tmp_path: Path) -> None:
    path, _ = grouped_corpus(tmp_path, sources=10)
    with pytest.raises(DataError, match="'dev'.*train, valid, test"):
        TabSeparated(path=str(path)).split("dev")


def test_splits_are_generators_that_stream_the_file(tmp_path: Path) -> None:
    """The first pair is available while the writer still holds back the rest of the file."""
    path, _ = grouped_corpus(tmp_path, sources=10)
    source = TabSeparated(path=str(path), valid_size=2, test_size=2)
    assert all(inspect.isgenerator(source.split(name)) for name in SPLITS)
    fifo = tmp_path / "stream.tsv"
    os.mkfifo(fifo)
    first_read = threading.Event()
    waited_in_vain: list[bool] = []

    def writer() -> None:
        with fifo.open("w", encoding="utf-8") as out:
            out.write("Go.\tVa !\n")
            out.flush()
            waited_in_vain.append(not first_read.wait(timeout=5))
            out.write("Hi.\tSalut !\n")

    thread = threading.Thread(target=writer)
    thread.start()
    streamed = TabSeparated(path=str(fifo), valid_path=str(path), test_path=str(path))
    examples = streamed.split("train")
    assert next(examples) == Example("Go.", "Va !")
    first_read.set()
    assert list(examples) == [Example("Hi.", "Salut !")]
    thread.join()
    assert waited_in_vain == [False]


def test_invalid_settings_are_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="data.path"):
        TabSeparated()
    with pytest.raises(ValueError, match="must differ"):
        TabSeparated(path="x", source_column=1, target_column=1)
    with pytest.raises(ValueError, match="64 hexadecimal"):
        TabSeparated(path="x", sha256="abc")
    with pytest.raises(ValueError, match="delimiter"):
        CommaSeparated(path="x", source_column="Q", target_column="A", delimiter=";;")
    with pytest.raises(ValueError, match="must differ"):
        ParallelFiles(path="d", source_language="en", target_language="en")


# --- parallel --------------------------------------------------------------------------------


def parallel_dir(tmp_path: Path, sizes: dict[str, int]) -> Path:
    directory = tmp_path / "multi30k"
    directory.mkdir()
    for stem, n in sizes.items():
        write(directory / f"{stem}.de", "".join(f"Satz {stem} {i}\n" for i in range(n)))
        write(directory / f"{stem}.en", "".join(f"sentence {stem} {i}\n" for i in range(n)))
    return directory


def test_parallel_reads_each_split_from_its_pair_of_files(tmp_path: Path) -> None:
    directory = parallel_dir(tmp_path, {"train": 30, "val": 3, "test_2016_flickr": 2})
    source = ParallelFiles(path=str(directory), source_language="de", target_language="en", test="test_2016_flickr")
    got = splits(source)
    assert {name: len(examples) for name, examples in got.items()} == {"train": 30, "valid": 3, "test": 2}
    assert got["valid"][2] == Example("Satz val 2", "sentence val 2")
    assert list(source.read_file(directory / "test_2016_flickr.en")) == got["test"]
    reverse = ParallelFiles(path=str(directory), source_language="en", target_language="de", test="test_2016_flickr")
    assert next(reverse.split("train")) == Example("sentence train 0", "Satz train 0")


def test_parallel_takes_missing_splits_from_train_and_names_stems_for_a_missing_file(tmp_path: Path) -> None:
    directory = parallel_dir(tmp_path, {"train": 40, "val": 3})
    source = ParallelFiles(path=str(directory), source_language="de", target_language="en", test=None, test_size=5)
    got = splits(source)
    assert len(got["test"]) == 5 and len(got["train"]) == 35 and len(got["valid"]) == 3
    missing = ParallelFiles(path=str(directory), source_language="de", target_language="en")
    with pytest.raises(DataError, match=r"test\.de: no such data file \(stems with both files in .*: train, val\)"):
        list(missing.split("test"))


def test_parallel_files_of_different_lengths_name_both_files_and_counts(tmp_path: Path) -> None:
    directory = parallel_dir(tmp_path, {"train": 5})
    write(directory / "train.en", "one\ntwo\nthree\n")
    source = ParallelFiles(path=str(directory), source_language="de", target_language="en", valid=None, test=None)
    with pytest.raises(DataError, match=r"train\.de has 5 lines but .*train\.en has 3; line-aligned"):
        list(source.read_file(directory / "train"))


def test_parallel_bad_lines_are_reported_in_the_file_they_are_in(tmp_path: Path) -> None:
    directory = parallel_dir(tmp_path, {"train": 0})
    write(directory / "train.de", b"eins\n\nzwei\ndrei\n")
    write(directory / "train.en", b"one\ntwo\n\xc3(\nthree")
    source = ParallelFiles(path=str(directory), source_language="de", target_language="en")
    assert list(source.read_file(directory / "train")) == [Example("eins", "one"), Example("drei", "three")]
    assert source.notes()[1:] == [
        f"  {directory / 'train.de'}:2: empty source",
        f"  {directory / 'train.en'}:3: not valid UTF-8 (invalid continuation byte at byte 0)",
    ]


# --- remote files ------------------------------------------------------------------------------


def test_url_is_downloaded_into_the_cache_verified_and_reused(tmp_path: Path) -> None:
    origin = write(tmp_path / "fra.txt", tsv_text(PAIRS))
    sha = hashlib.sha256(origin.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    settings = {"url": origin.as_uri(), "sha256": sha, "cache_dir": str(cache), "valid_path": str(origin)}
    source = TabSeparated(**settings, test_path=str(origin))
    assert list(source.split("train")) == [Example(*pair) for pair in PAIRS]
    assert (cache / "fra.txt").read_bytes() == origin.read_bytes()
    assert f"downloaded {origin.as_uri()} to {cache / 'fra.txt'}" in source.notes()
    assert sorted(p.name for p in cache.iterdir()) == ["fra.txt"]
    origin.rename(tmp_path / "moved.txt")
    again = TabSeparated(
        **{**settings, "valid_path": str(tmp_path / "moved.txt")}, test_path=str(tmp_path / "moved.txt")
    )
    assert list(again.split("train")) == [Example(*pair) for pair in PAIRS]
    assert again.notes() == []


def test_a_download_with_the_wrong_checksum_is_refused_and_not_kept(tmp_path: Path) -> None:
    origin = write(tmp_path / "fra.txt", tsv_text(PAIRS))
    cache = tmp_path / "cache"
    source = TabSeparated(url=origin.as_uri(), sha256="0" * 64, cache_dir=str(cache))
    with pytest.raises(DataError, match=r"the download of file://.*fra\.txt has sha256 [0-9a-f]{64}, expected 0{64}"):
        source.split("train")
    assert list(cache.iterdir()) == []


def test_a_cached_file_with_the_wrong_checksum_must_be_replaced(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    write(cache.mkdir() or cache / "fra.txt", "corrupted\n")
    source = TabSeparated(url="http://127.0.0.1:9/data/fra.txt", sha256="a" * 64, cache_dir=str(cache))
    with pytest.raises(DataError, match=rf"the cached file {cache / 'fra.txt'} has sha256 .*delete or replace it"):
        source.split("train")


def test_offline_download_says_what_to_fetch_and_where_to_put_it(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    source = TabSeparated(url="http://127.0.0.1:9/data/fra.txt", sha256="b" * 64, cache_dir=str(cache))
    with pytest.raises(DataError) as caught:
        source.split("train")
    message = str(caught.value)
    assert message.startswith("could not download http://127.0.0.1:9/data/fra.txt (")
    assert f"save it as {cache / 'fra.txt'} (its sha256 must be {'b' * 64}), or set data.path" in message
    assert list(cache.iterdir()) == []


def test_a_member_of_a_zip_archive_is_read_in_place(tmp_path: Path) -> None:
    archive = tmp_path / "fra-eng.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr("_about.txt", "about")
        out.writestr("fra.txt", tsv_text(PAIRS))
    source = TabSeparated(path=str(archive), member="fra.txt", valid_size=1, test_size=1)
    assert sorted(e for examples in splits(source).values() for e in examples) == sorted(Example(*p) for p in PAIRS)
    wrong = TabSeparated(path=str(archive), member="eng.txt")
    with pytest.raises(DataError, match=r"no member 'eng\.txt' \(members: _about\.txt, fra\.txt\)"):
        list(wrong.split("train"))


# --- registration --------------------------------------------------------------------------------


def test_the_corpora_are_registered_as_datasets_with_documented_params() -> None:
    registry = discover()
    for name, cls in (("tsv", TabSeparated), ("csv", CommaSeparated), ("parallel", ParallelFiles)):
        info = registry.get("dataset", name)
        assert info is not None and info.cls is cls
        assert cls.description() and all(p.help for p in cls.params)
    assert [p.name for p in CommaSeparated.params if p.required] == ["source_column", "target_column"]
