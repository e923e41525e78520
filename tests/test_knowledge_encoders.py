"""Text encoders (offline MiniLM, HF mean pooling, chunking) and the embedding stores."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from kemm.errors import ConfigError, InputDataError
from kemm.knowledge.encoders import HFMeanPoolEncoder, _minilm_path, _windows, create_text_encoder
from kemm.knowledge.pbk import load_pbk
from kemm.knowledge.store import (
    embed_pbk,
    read_pbk_embedding,
    read_statement_embeddings,
    write_pbk_embedding,
    write_statement_embeddings,
)

TEXTS = [
    "Clear cell renal cell carcinoma, WHO/ISUP grade 3.",
    "Lymph nodes: 0 of 12 positive.",
    "Clear cell renal cell carcinoma, nuclear grade III.",
]


@pytest.fixture(scope="module")
def minilm():
    return create_text_encoder()


def test_default_encoder_offline(minilm):
    assert minilm.name == "all-MiniLM-L6-v2" and minilm.dim == 384
    emb = minilm.encode(TEXTS)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # paraphrases are closer than unrelated statements
    assert emb[0] @ emb[2] > emb[0] @ emb[1]
    assert minilm.encode([]).shape == (0, 384)


def test_long_texts_are_chunked_and_pooled(minilm):
    long = " ".join(f"Section {i}: clear cell carcinoma with necrosis." for i in range(120))
    assert len(minilm.model.tokenizer(long)["input_ids"]) > 3 * minilm.max_tokens
    emb = minilm.encode([long, TEXTS[0]])
    assert emb.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert _windows(list(range(10)), 4, 1) == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert _windows([1, 2], 4, 1) == [[1, 2]]


def test_hf_mean_pool_encoder_matches_sentence_transformers(minilm):
    # The MiniLM folder is also a plain HF model: AutoModel + mean pooling reproduces it.
    hf = create_text_encoder(_minilm_path().rstrip("/") + "/")  # a local path, not the alias
    assert hf.name != "all-MiniLM-L6-v2"
    plain = HFMeanPoolEncoder(_minilm_path())
    a, b = minilm.encode(TEXTS), plain.encode(TEXTS)
    np.testing.assert_allclose((a * b).sum(axis=1), 1.0, atol=1e-4)
    assert plain.dim == 384


def test_unknown_encoder_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot load text encoder"):
        create_text_encoder(str(tmp_path / "no-such-model"))


def test_statement_store_round_trip(tmp_path, minilm):
    data = {
        "TCGA-AA-0001": (TEXTS[:2], minilm.encode(TEXTS[:2])),
        "TCGA-AA-0002": ([], np.zeros((0, 384), np.float32)),
    }
    path = write_statement_embeddings(tmp_path / "s.h5", data, minilm.name)
    back = read_statement_embeddings(path)
    assert list(back) == list(data)
    assert back["TCGA-AA-0001"][0] == TEXTS[:2]
    np.testing.assert_array_equal(back["TCGA-AA-0001"][1], data["TCGA-AA-0001"][1])
    assert back["TCGA-AA-0002"][1].shape == (0, 384)
    with h5py.File(path) as h5:
        assert h5.attrs["encoder"] == "all-MiniLM-L6-v2" and h5.attrs["dim"] == 384
        assert h5["TCGA-AA-0001/embeddings"].dtype == np.float32
    with pytest.raises(InputDataError, match="do not match"):
        write_statement_embeddings(tmp_path / "x.h5", {"A": (TEXTS, np.zeros((2, 4)))}, "e")


def test_pbk_embedding(tmp_path, minilm):
    pbk = load_pbk("KIRC")
    emb = embed_pbk(pbk, minilm)
    assert emb.general.shape == (len(pbk.general), 384) and emb.prototypes.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(emb.prototypes, axis=1), 1.0, atol=1e-5)
    low_mean = minilm.encode(pbk.low).mean(axis=0)
    np.testing.assert_allclose(emb.prototypes[0], low_mean / np.linalg.norm(low_mean), atol=1e-5)
    back = read_pbk_embedding(write_pbk_embedding(tmp_path / "pbk.h5", emb))
    assert back.cancer == "KIRC" and back.encoder == "all-MiniLM-L6-v2"
    np.testing.assert_array_equal(back.prototypes, emb.prototypes)
    assert back.statements["high"] == pbk.high
    assert back.provenance["prompt_version"] == "pbk_v1"
