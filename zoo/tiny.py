"""Deterministic tiny random-weight models, built offline from configs: the machinery.

Tests and offline runs need a model for every task, but no real weights are
packaged for some of them (extractive QA, text-to-image). Like the transformers
and diffusers test suites, we build tiny seeded models from configs instead.
Every kind writes a normal folder that `from_pretrained` loads, so the loader
under test takes exactly the code path it takes for real weights.

A kind brings its own builder (`ModelKind(tiny=...)`, zoo/kinds.py; the built-in ones
are in plugins/_tiny_builders.py). This module builds into a folder atomically and
marks it finished (`build`), and offers what builders share: `seeded()` before
constructing a model, the common-word list `WORDS`, byte-level BPE merges
(`byte_level_words`, `learn_merges`) and a WordPiece tokenizer (`wordpiece_tokenizer`).

Heavy libraries (torch, transformers, diffusers, tokenizers) are imported inside
the functions: `import zoo.tiny` must stay cheap because the app imports it at start.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zoo.errors import InvalidInput
from zoo.kinds import ModelKind, UnknownKind, get_kind, registered_kinds

#: Written last into a finished build; a folder without it is never trusted.
MARKER = ".zoo-tiny-complete"
#: Bump when a builder changes output, so stale cached builds are not mistaken for current ones.
FORMAT_VERSION = 1
SEED = 0

# Common English words: the QA WordPiece vocab includes them and the BPE merges are
# learnt from them, so ordinary text tokenizes into words rather than single characters.
WORDS: tuple[str, ...] = tuple("""
the of and to a in is it you that he was for on are with as I his they be at one
have this from or had by not word but what some we can out other were all there
when up use your how said an each she which do their time if will way about many
then them write would like so these her long make thing see him two has look more
day could go come did number sound no most people my over know water than call
first who may down side been now find any new work part take get place made live
where after back little only round man year came show every good me give our under
name very through just form sentence great think say help low line differ turn
cause much mean before move right boy old too same tell does set three want air
well also play small end put home read hand port large spell add even land here
must big high such follow act why ask men change went light kind off need house
picture try us again animal point mother world near build self earth father head
stand own page should country found answer school grow study still learn plant
cover food sun four between state keep eye never last let thought city tree cross
farm hard start might story saw far sea draw left late run while press close night
real life few north open seem together next white children begin got walk example
ease paper group always music those both mark often letter until mile river car
feet care second book carry took science eat room friend began idea fish mountain
stop once base hear horse cut sure watch color face wood main enough plain girl
usual young ready above ever red list though feel talk bird soon body dog family
direct pose leave song measure door product black short numeral class wind
question happen complete ship area half rock order fire south problem piece told
knew pass since top whole king space heard best hour better true during hundred
five remember step early hold west ground interest reach fast verb sing listen six
table travel less morning ten simple several vowel toward war lay against pattern
slow center love person money serve appear road map rain rule govern pull cold
notice voice unit power town fine certain fly fall lead cry dark machine note wait
plan figure star box noun field rest correct able pound done beauty drive stood
contain front teach week final gave green oh quick develop ocean warm free minute
strong special mind behind clear tail produce fact street inch multiply nothing
course stay wheel full force blue object decide surface deep moon island foot
system busy test record boat common gold possible plane stead dry wonder laugh
thousand ago ran check game shape equate hot miss brought heat snow tire bring yes
distant fill east paint language among paris france capital model zoo hello
""".split())


class UnknownTinyKind(InvalidInput, KeyError):
    """A kind with no tiny builder (or no kind of that name)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return InvalidInput.__str__(self)


def byte_level_words(words: Iterable[str]) -> list[str]:
    """Words in GPT-2 byte-level form with a leading space ("Ġthe"), as the BPE model sees them."""
    from tokenizers import pre_tokenizers

    pre = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    return [pre.pre_tokenize_str(" " + word)[0][0] for word in words]


def learn_merges(words: list[list[str]], n_merges: int) -> list[tuple[str, str]]:
    """Greedy BPE merges over `words` (each a symbol list), ties broken by symbol order."""
    # Hand-rolled rather than tokenizers' BpeTrainer: builds must be byte-identical, and
    # this makes the tie-breaking explicit instead of relying on the trainer's internals.
    words = [list(w) for w in words]
    merges: list[tuple[str, str]] = []
    for _ in range(n_merges):
        counts = Counter(pair for symbols in words for pair in zip(symbols, symbols[1:]))
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        for symbols in words:
            i = 0
            while i < len(symbols) - 1:
                if (symbols[i], symbols[i + 1]) == best:
                    symbols[i : i + 2] = [best[0] + best[1]]
                i += 1
    return merges


def seeded() -> None:
    """Reset torch's RNG; call it before constructing each model, so its random weights do not depend on build order."""
    import torch

    torch.manual_seed(SEED)


def wordpiece_tokenizer(extra_specials: tuple[str, ...] = (), model_max_length: int = 512, **kwargs: Any) -> Any:
    """A lowercasing BERT WordPiece tokenizer (BertTokenizerFast): the common words, then single characters.

    Never [UNK] for ASCII text; `extra_specials` are added after the five BERT specials.
    """
    import string

    from transformers import BertTokenizerFast

    # Every symbol also has a "##" continuation, so an unknown word falls back to characters, not [UNK].
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *extra_specials]
    chars = sorted(set(string.printable) - set(string.whitespace) - set(string.ascii_uppercase))
    words = sorted({w.lower() for w in WORDS if w.isalpha()})
    vocab: dict[str, int] = {}
    for token in [*specials, *chars, *("##" + c for c in chars), *words]:
        vocab.setdefault(token, len(vocab))
    return BertTokenizerFast(vocab=vocab, do_lower_case=True, model_max_length=model_max_length, **kwargs)


def _read_marker(out_dir: Path) -> dict:
    """The marker of a finished build in out_dir, or {} when there is none."""
    try:
        info = json.loads((Path(out_dir) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def is_built(out_dir: Path, kind: str | ModelKind) -> bool:
    """True if out_dir holds a finished, current-format build of `kind`."""
    info = _read_marker(out_dir)
    return info.get("kind") == str(kind) and info.get("format") == FORMAT_VERSION


def tiny_kinds() -> list[str]:
    """Names of the registered kinds that have a tiny builder (`tiny:<name>` works for each)."""
    return [k.name for k in registered_kinds() if k.tiny is not None]


def build(kind: str | ModelKind, out_dir: Path) -> Path:
    """Build the tiny model of `kind` (its `tiny` builder) into out_dir unless a finished build is there; return out_dir."""
    try:
        builder = get_kind(kind).tiny
    except UnknownKind:
        builder = None
    if builder is None:
        raise UnknownTinyKind(
            "kind",
            str(kind),
            "must be one of " + ", ".join(repr(k) for k in tiny_kinds()),
            fix="pick one of the listed kinds, or register the kind with a builder: "
                "zoo.kinds.register_kind(ModelKind(name, ..., tiny=build_function)).",
        )
    kind = str(kind)
    out_dir = Path(out_dir)
    if is_built(out_dir, kind):
        return out_dir
    found = _read_marker(out_dir).get("kind")
    stale = found == kind  # ours, from an older builder: safe to replace
    if out_dir.exists() and any(out_dir.iterdir()) and not stale:
        # Never delete a folder we did not write, nor another kind's build: builds
        # only appear by rename, finished, so anything else here is someone else's.
        what = f"a tiny {found!r} build" if found else "files that are not a finished tiny build"
        raise FileExistsError(f"{out_dir} holds {what}; delete it or build {kind!r} into another folder.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Build next to the target so the final rename stays on one filesystem (atomic);
    # a crash leaves only a hidden temp folder, never a half-built out_dir.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        builder(tmp)
        marker = {"kind": kind, "format": FORMAT_VERSION}
        (tmp / MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        try:
            if stale:
                shutil.rmtree(out_dir)
            elif out_dir.is_dir():
                out_dir.rmdir()  # empty, checked above; keeps the rename below portable
            os.rename(tmp, out_dir)
        except OSError:
            # Another process finished the same build first; builds are byte-identical,
            # so its copy is as good as ours.
            if not is_built(out_dir, kind):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
