"""matchday_edge on a device: imports nothing but onnxruntime, NumPy and the standard library; verifies
Ed25519 like `cryptography` does; refuses a tampered bundle; answers like the scikit-learn model; keeps
its telemetry in a bounded SQLite buffer; syncs it, deleting only what the server acknowledged."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from support.edge_support import FEATURES, Exported, export_all, frame

from matchday_edge import (
    BufferError,
    BufferFull,
    BundleRefused,
    EdgeModel,
    InvalidRows,
    SyncRefused,
    TelemetryBuffer,
    request_id,
    verify,
)
from matchday_edge.buffer import NewPrediction
from matchday_edge.sync import prediction_json

# -- Ed25519 against cryptography (OpenSSL) as the oracle ---------------------------------------

# RFC 8032, section 7.1: TEST 1, 2, 3 (secret key, public key, message, signature), in hex
RFC_VECTORS = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]
_L = 2**252 + 27742317777372353535851937790883648493


def _oracle(public: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@pytest.mark.parametrize("vector", RFC_VECTORS, ids=["test1", "test2", "test3"])
def test_rfc8032_vectors(vector: tuple[str, str, str, str]) -> None:
    secret, public, message, signature = (bytes.fromhex(v) for v in vector)
    key = Ed25519PrivateKey.from_private_bytes(secret)
    assert key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == public
    assert key.sign(message) == signature  # the vector as the oracle reads it
    assert verify(public, message, signature) and _oracle(public, message, signature)
    assert not verify(public, message + b"x", signature)


def test_verification_agrees_with_cryptography_on_good_and_tampered_signatures() -> None:
    rng = np.random.default_rng(7)
    for i in range(12):
        key = Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        message = rng.bytes(int(rng.integers(0, 300)))
        signature = key.sign(message)
        other = Ed25519PrivateKey.generate().sign(message)
        flipped_message = bytearray(message or b"\0")
        flipped_message[int(rng.integers(len(flipped_message)))] ^= 1 << int(rng.integers(8))
        cases = {
            "good": (public, message, signature),
            "message": (public, bytes(flipped_message), signature),
            "r": (public, message, bytes([signature[0] ^ 1]) + signature[1:]),
            "s": (public, message, signature[:40] + bytes([signature[40] ^ 4]) + signature[41:]),
            "other key's signature": (public, message, other),
            "s + L": (
                public,
                message,
                signature[:32] + (int.from_bytes(signature[32:], "little") + _L).to_bytes(32, "little"),
            ),
            "short": (public, message, signature[:63]),
        }
        for name, (pub, msg, sig) in cases.items():
            assert verify(pub, msg, sig) == _oracle(pub, msg, sig) == (name == "good"), (i, name)


# -- bundles ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    done = export_all(tmp_path_factory.mktemp("edge-runtime"))
    yield done
    done.ws.close()


def test_the_runtime_imports_only_onnxruntime_numpy_and_the_standard_library(
    exported: Exported, tmp_path: Path
) -> None:
    """Loaded, scoring, buffering and syncing (to nowhere) in a fresh interpreter: nothing heavier came in."""
    code = f"""
import json, sys
from matchday_edge import EdgeModel
model = EdgeModel.load({str(exported.bundles["mixed"])!r}, public_key={exported.public_key!r}, device="d1",
                       buffer={str(tmp_path / "t.db")!r})
model.predict([{{"a": 1.0, "b": 2.0, "c": 0.5, "n": 3, "shop": "north"}}])
model.drift()
model.sync("http://127.0.0.1:9", timeout=1)
print(json.dumps(sorted(sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    roots = {name.split(".")[0] for name in json.loads(done.stdout.strip().splitlines()[-1])}
    forbidden = {"matchday", "pandas", "pyarrow", "sklearn", "scipy", "cryptography", "onnx", "skl2onnx", "sqlalchemy"}
    assert "onnxruntime" in roots and "numpy" in roots
    assert not roots & forbidden
    third_party = {r for r in roots if not _standard(r)} - {"onnxruntime", "numpy", "matchday_edge"}
    assert not third_party, third_party


def test_the_server_shares_the_protocol_without_importing_onnxruntime(tmp_path: Path) -> None:
    """The server imports the protocol's one copy (`matchday_edge.protocol`) and the edge route at start,
    and neither onnxruntime nor skl2onnx (only an export needs them); every public name still loads."""
    code = f"""
import json, sys
import matchday_edge.protocol
light = sorted(sys.modules)
from matchday.config import Settings
from matchday.server import create_server
from matchday.workspace import Workspace
create_server(Workspace(Settings(home={str(tmp_path / "home")!r}, database_url="sqlite:///{tmp_path / "m.db"}")))
print(json.dumps([light, sorted(sys.modules)]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    light, server = (set(m) for m in json.loads(done.stdout.strip().splitlines()[-1]))
    assert not {"onnxruntime", "numpy"} & light
    assert "matchday.serving.routes.edge" in server and "matchday_edge.protocol" in server
    assert not {"onnxruntime", "onnx", "skl2onnx", "matchday_edge.scoring", "matchday.edge.export"} & server

    import matchday.edge
    import matchday_edge

    assert all(getattr(matchday_edge, name) is not None for name in matchday_edge.__all__)
    assert all(getattr(matchday.edge, name) is not None for name in matchday.edge.__all__)
    assert matchday.edge.request_id is matchday_edge.request_id and matchday.edge.EDGE_NAMESPACE is (
        matchday_edge.EDGE_NAMESPACE
    )


def _standard(root: str) -> bool:
    return root in sys.stdlib_module_names or root.startswith("_") or root in sys.builtin_module_names


@pytest.mark.parametrize("name", ["lr", "rf", "mixed", "spend"])
def test_predictions_equal_the_scikit_learn_models(exported: Exported, name: str, tmp_path: Path) -> None:
    """On rows the model never saw (the reference was the parity gate's), given as dicts and as an array."""
    data = frame(rows=200, seed=11)
    columns = [*FEATURES, "shop"] if name == "mixed" else FEATURES
    sklearn_model = exported.models[name]
    with EdgeModel.load(exported.bundles[name], public_key=exported.public_key, device="d1", buffer=None) as model:
        assert model.input_names == columns
        labels = model.predict(data[columns].to_dict("records"))
        from_array = model.predict(data[columns].to_numpy(dtype=object if name == "mixed" else np.float64))
        expected = sklearn_model.predict(data[columns])
        if name == "spend":
            np.testing.assert_allclose(labels, expected, rtol=1e-9)
            return
        assert model.classes == [0, 1]
        assert labels.tolist() == expected.tolist() == from_array.tolist()
        np.testing.assert_allclose(
            model.predict_proba(data[columns].to_dict("records")), sklearn_model.predict_proba(data[columns]), atol=1e-6
        )


def _copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(bundle, target)
    return target


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_tampered_bundle_is_refused(exported: Exported, tmp_path: Path) -> None:
    source = exported.bundles["lr"]
    EdgeModel.load(_copy(source, tmp_path / "ok"), public_key=exported.public_key, device="d", buffer=None)

    model_changed = _copy(source, tmp_path / "model")
    _flip(model_changed / "model.onnx", len((model_changed / "model.onnx").read_bytes()) // 2)
    with pytest.raises(BundleRefused, match=r"does not match its signed manifest(.|\n)*model.onnx: sha256"):
        EdgeModel.load(model_changed, public_key=exported.public_key, device="d", buffer=None)

    manifest_changed = _copy(source, tmp_path / "manifest")
    text = (manifest_changed / "manifest.json").read_text().replace('"version": 1', '"version": 2')
    (manifest_changed / "manifest.json").write_text(text)
    with pytest.raises(BundleRefused, match="not signed by the pinned key"):
        EdgeModel.load(manifest_changed, public_key=exported.public_key, device="d", buffer=None)

    one_byte = _copy(source, tmp_path / "byte")
    _flip(one_byte / "manifest.json", 10)
    with pytest.raises(BundleRefused, match="not signed by the pinned key"):
        EdgeModel.load(one_byte, public_key=exported.public_key, device="d", buffer=None)

    # re-signed by another key (a manifest naming a swapped model, say): not the pinned server's
    resigned = _copy(source, tmp_path / "resigned")
    impostor = Ed25519PrivateKey.generate()
    (resigned / "manifest.sig").write_bytes(impostor.sign((resigned / "manifest.json").read_bytes()))
    with pytest.raises(BundleRefused, match="not signed by the pinned key"):
        EdgeModel.load(resigned, public_key=exported.public_key, device="d", buffer=None)
    impostor_public = impostor.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    EdgeModel.load(resigned, public_key=impostor_public.hex(), device="d", buffer=None)  # the pin is what matters

    unsigned = _copy(source, tmp_path / "unsigned")
    (unsigned / "manifest.sig").unlink()
    with pytest.raises(BundleRefused, match="no manifest.sig"):
        EdgeModel.load(unsigned, public_key=exported.public_key, device="d", buffer=None)
    with pytest.raises(BundleRefused, match="64 hex digits"):
        EdgeModel.load(source, public_key="not-a-key", device="d", buffer=None)


def test_rows_that_do_not_fit_are_refused_clearly(exported: Exported) -> None:
    model = EdgeModel.load(exported.bundles["lr"], public_key=exported.public_key, device="d", buffer=None)
    with pytest.raises(InvalidRows, match="row 1 is missing inputs(.|\n)*c: missing"):
        model.predict([{"a": 1, "b": 2, "c": 3, "n": 1}, {"a": 1, "b": 2, "n": 1}])
    with pytest.raises(InvalidRows, match="2-D array of 4 columns"):
        model.predict(np.zeros((2, 3)))
    with pytest.raises(InvalidRows, match="do not fit"):
        model.predict([{"a": "lots", "b": 2, "c": 3, "n": 1}])
    with pytest.raises(InvalidRows, match="not a dict"):
        model.predict({"a": 1, "b": 2, "c": 3, "n": 1})  # type: ignore[arg-type]
    assert model.predict([]).tolist() == []


# -- the buffer -------------------------------------------------------------------------------


def _rows(n: int, at: float = 1.8e9) -> list[NewPrediction]:
    return [NewPrediction(at, "m", 1, np.array([float(i)]).tobytes(), "f8", "1", None, 1e-4) for i in range(n)]


def test_the_buffer_is_wal_sqlite_with_an_epoch_made_once(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    buffer = TelemetryBuffer(path, device="d1")
    assert buffer._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    epoch = buffer.epoch
    assert len(epoch) == 32 and int(epoch, 16) >= 0
    assert buffer.append_predictions(_rows(3)) == [1, 2, 3]
    buffer.acknowledge([1, 2, 3], [])
    buffer.close()
    again = TelemetryBuffer(path, device="d1")
    assert again.epoch == epoch
    assert again.append_predictions(_rows(1)) == [4]  # AUTOINCREMENT: a synced id is never given again
    again.close()
    with pytest.raises(BufferError, match="buffer of device 'd1', not 'd2'"):
        TelemetryBuffer(path, device="d2")
    assert TelemetryBuffer(tmp_path / "other.db", device="d1").epoch != epoch


def test_drop_oldest_drops_predictions_before_labels(tmp_path: Path) -> None:
    buffer = TelemetryBuffer(tmp_path / "t.db", device="d", max_rows=10, on_full="drop_oldest")
    buffer.append_predictions(_rows(6))
    labels = [buffer.append_label(seq, "1", 1.8e9) for seq in (1, 2, 3)]
    buffer.append_predictions(_rows(4))  # 13 rows for 10: the three oldest predictions go, no label
    predictions, kept_labels = buffer.pending(100)
    assert [p.seq for p in predictions] == [4, 5, 6, 7, 8, 9, 10]
    assert [lb.id for lb in kept_labels] == labels
    stats = buffer.stats()
    assert (stats.predictions, stats.labels, stats.dropped_predictions, stats.dropped_labels) == (7, 3, 3, 0)
    # only labels left to drop once no prediction is: the oldest label goes
    buffer.acknowledge(range(1, 11), [])
    buffer.append_predictions(_rows(8))  # 3 labels + 8 for 10, and no prediction buffered to drop
    assert [lb.id for lb in buffer.pending(100)[1]] == [2, 3] and buffer.stats().dropped_labels == 1


def test_refuse_new_raises_and_keeps_every_row(tmp_path: Path) -> None:
    buffer = TelemetryBuffer(tmp_path / "t.db", device="d", max_rows=5, on_full="refuse_new")
    buffer.append_predictions(_rows(5))
    with pytest.raises(BufferFull, match="full .*refuse_new: sync it"):
        buffer.append_predictions(_rows(1))
    with pytest.raises(BufferFull):
        buffer.append_label(1, "0", 1.8e9)
    assert buffer.stats().predictions == 5 and buffer.stats().dropped_predictions == 0
    buffer.acknowledge([1], [])
    assert buffer.append_predictions(_rows(1)) == [6]


def test_the_byte_and_age_bounds(tmp_path: Path) -> None:
    one = _rows(1)[0].size
    buffer = TelemetryBuffer(tmp_path / "t.db", device="d", max_bytes=3 * one, max_age_seconds=60)
    buffer.append_predictions(_rows(3, at=1000.0))
    buffer.append_predictions(_rows(1, at=1100.0))
    assert [p.seq for p in buffer.pending(10)[0]] == [2, 3, 4] and buffer.stats().bytes == 3 * one
    with pytest.raises(BufferError, match="cannot fit"):
        buffer.append_predictions(_rows(4))
    assert buffer.expire(now=1100.0 + 30) == 2  # rows of t=1000 are 130 s old, past 60
    assert [p.seq for p in buffer.pending(10)[0]] == [4] and buffer.stats().expired == 2
    with pytest.raises(BufferError, match="no prediction 99"):
        buffer.append_label(99, "1", 1.8e9)


def test_refused_rows_are_set_aside_with_their_labels_and_count_against_the_bounds(tmp_path: Path) -> None:
    path, now = tmp_path / "t.db", 1.8e9
    buffer = TelemetryBuffer(path, device="d", max_rows=10)
    buffer.remember_columns("m", 1, [("x", "float")])
    buffer.append_predictions(_rows(5, at=now))
    buffer.append_label(2, "1", now + 1)
    buffer.append_label(3, "0", now + 1)
    before = buffer.stats().bytes
    assert buffer.set_aside({2: "predictions[1].inputs: x must be a number"}, now=now + 2) == (1, 1)
    predictions, labels = buffer.pending(100)
    assert [p.seq for p in predictions] == [1, 3, 4, 5] and [lb.seq for lb in labels] == [3]  # its label went too
    buffer.append_label(2, "0", now + 3)  # a label given later joins its set-aside prediction
    assert buffer.pending(100)[1] == labels
    (row,) = buffer.refused()
    assert (row.seq, row.model, row.version, row.inputs, row.prediction, row.labels) == (
        2,
        "m",
        1,
        {"x": 1.0},
        1,
        [1, 0],
    )
    assert row.reason == "predictions[1].inputs: x must be a number" and row.refused_at.timestamp() == now + 2
    stats = buffer.stats()
    assert (stats.predictions, stats.labels, stats.refused, stats.refused_labels) == (4, 1, 1, 2)
    assert stats.bytes == before + len(row.reason) + len("0") + 48  # the reason and the late label count too
    buffer.close()
    buffer = TelemetryBuffer(path, device="d", max_rows=10)  # kept across a restart, counted on open
    assert buffer.stats().bytes == stats.bytes and [r.seq for r in buffer.refused()] == [2]

    # 8 rows held (4 predictions, 1 label, 1 refused with 2 labels): 3 more need the refused row's 3 first
    buffer.append_predictions(_rows(3, at=now + 4))
    stats = buffer.stats()
    assert (stats.predictions, stats.refused, stats.refused_labels, stats.dropped_refused) == (7, 0, 0, 1)
    assert stats.dropped_predictions == 0

    buffer.set_aside({6: "a", 7: "b"})
    assert buffer.requeue_refused([6]) == 1 and [r.seq for r in buffer.refused()] == [7]
    assert 6 in [p.seq for p in buffer.pending(100)[0]] and buffer.stats().bytes == sum(
        r.size for r in _rows(7)
    ) + 1 + 48 + len("b")
    assert buffer.delete_refused() == 1 and buffer.refused() == [] and buffer.stats().refused == 0
    buffer.close()


def test_dropping_set_aside_rows_keeps_the_counts_true(tmp_path: Path) -> None:
    path, now = tmp_path / "t.db", 1.8e9
    buffer = TelemetryBuffer(path, device="d", max_rows=6, max_age_seconds=100)
    buffer.append_predictions(_rows(1, at=now))
    buffer.append_predictions(_rows(1, at=now + 200))
    buffer.append_label(1, "1", now + 200)
    buffer.set_aside({1: "a", 2: "b"}, now=now + 200)
    assert buffer.expire(now=now + 250) == 1  # refused prediction 1 ages out; its later label stays
    buffer.append_predictions(_rows(4, at=now + 300))  # 6 rows: full
    buffer.append_predictions(_rows(1, at=now + 300))  # dropping refused 2 takes 1's label along: 2 rows go
    stats = buffer.stats()
    assert (stats.refused, stats.refused_labels, stats.predictions, stats.dropped_refused) == (0, 0, 5, 1)
    counted = (buffer._rows, buffer._bytes)
    buffer._recount()
    assert counted == (buffer._rows, buffer._bytes) == (5, sum(r.size for r in _rows(5)))
    buffer.append_predictions(_rows(1, at=now + 300))  # room for it: nothing is dropped
    assert buffer.stats().predictions == 6 and buffer.stats().dropped_predictions == 0
    buffer.close()


def test_predictions_and_labels_are_buffered_with_their_handles(exported: Exported, tmp_path: Path) -> None:
    model = EdgeModel.load(
        exported.bundles["lr"], public_key=exported.public_key, device="d1", buffer=tmp_path / "t.db"
    )
    data = frame(rows=5, seed=3)[FEATURES]
    scored = model.score(data.to_dict("records"))
    assert [p.seq for p in scored] == [1, 2, 3, 4, 5]
    assert scored[0].request_id == request_id("d1", model.buffer.epoch, 1)  # type: ignore[union-attr]
    assert model.label(scored[1], 1) == 1 and model.label(4, 0) == 2
    predictions, labels = model.buffer.pending(10)  # type: ignore[union-attr]
    assert [(lb.seq, json.loads(lb.label)) for lb in labels] == [(2, 1), (4, 0)]
    sent = prediction_json(predictions[0], model.buffer)  # type: ignore[arg-type]
    assert sent["inputs"] == {k: (int(v) if k == "n" else float(v)) for k, v in data.iloc[0].items()}
    assert isinstance(sent["inputs"]["n"], int)  # an integer column goes home as an integer
    assert sent["prediction"] == scored[0].label and sent["probabilities"] == scored[0].probabilities
    assert sent["latency_seconds"] > 0 and (sent["model"], sent["version"], sent["seq"]) == ("lr", 1, 1)
    assert sent["at"].endswith("+00:00")


def test_string_inputs_are_buffered_as_json(exported: Exported, tmp_path: Path) -> None:
    model = EdgeModel.load(
        exported.bundles["mixed"], public_key=exported.public_key, device="d", buffer=tmp_path / "t.db"
    )
    model.predict([{"a": 1.5, "b": None, "c": 0.0, "n": 2, "shop": "east"}])
    (row,), _ = model.buffer.pending(10)  # type: ignore[union-attr]
    assert row.encoding == "json"
    sent = prediction_json(row, model.buffer)  # type: ignore[arg-type]
    assert sent["inputs"] == {"a": 1.5, "b": None, "c": 0.0, "n": 2, "shop": "east"}


def test_drift_flags_a_shifted_feature_only(exported: Exported) -> None:
    model = EdgeModel.load(exported.bundles["lr"], public_key=exported.public_key, device="d", buffer=None, recent=500)
    model.predict(frame(rows=500, seed=21)[FEATURES].to_dict("records"))
    assert model.drift().drifted == []
    shifted = frame(rows=500, seed=22)
    shifted["a"] += 2.0
    model.predict(shifted[FEATURES].to_dict("records"))
    report = model.drift()
    assert report.rows == 500 and report.drifted == ["a"]


# -- sync against a stdlib fake of the server's route (the real one: test_edge_sync_e2e.py) ---------


class _FakeServer:
    """Answers the telemetry route as the protocol says: acknowledges what it was sent (or what ``ack`` picks)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.status = 200
        self.ack: Any = None  # (seqs, ids) -> (seqs, ids) acknowledged
        self.held: set[int] = set()  # seqs acknowledged so far: a label on any other is unmatched, as the server says
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.bodies.append(body)
                fake.headers.append(dict(self.headers))
                fake.paths.append(self.path)
                seqs = [p["seq"] for p in body["predictions"]]
                ids = [lb["id"] for lb in body["labels"]]
                if fake.ack is not None:
                    seqs, ids = fake.ack(seqs, ids)
                fake.held.update(seqs)
                unmatched = [
                    {"id": lb["id"], "seq": lb["seq"], "reason": "no logged prediction"}
                    for lb in body["labels"]
                    if lb["id"] in ids and lb["seq"] not in fake.held
                ]
                answer: dict[str, Any] = {
                    "device": self.path.split("/")[4],
                    "written": len(seqs),
                    "already_logged": 0,
                    "labels_applied": len(ids) - len(unmatched),
                    "labels_unmatched": unmatched,
                    "acknowledged": {"predictions": seqs, "labels": ids},
                }
                if fake.status != 200:
                    answer = {"error": "no such device: register it with matchday edge devices add", "detail": ["d"]}
                data = json.dumps(answer).encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[_FakeServer]:
    server = _FakeServer()
    yield server
    server.close()


def _device(exported: Exported, tmp_path: Path, rows: int = 7) -> EdgeModel:
    model = EdgeModel.load(
        exported.bundles["lr"], public_key=exported.public_key, device="till-7", buffer=tmp_path / "t.db"
    )
    model.predict(frame(rows=rows, seed=5)[FEATURES].to_dict("records"))
    return model


def test_sync_posts_batches_and_deletes_what_was_acknowledged(
    exported: Exported, tmp_path: Path, fake: _FakeServer
) -> None:
    model = _device(exported, tmp_path)
    model.label(2, 1)
    result = model.sync(fake.url, token="secret", batch_size=3)
    assert result.complete and result.reachable and result.requests == 3
    assert [[p["seq"] for p in b["predictions"]] for b in fake.bodies] == [[1, 2, 3], [4, 5, 6], [7]]
    first = fake.bodies[0]
    assert first["deployment"] == "checkout" and first["epoch"] == model.buffer.epoch  # type: ignore[union-attr]
    manifest_sha = hashlib.sha256((exported.bundles["lr"] / "manifest.json").read_bytes()).hexdigest()
    assert first["bundle"] == {"model": "lr", "version": 1, "sha256": manifest_sha}
    assert first["labels"] == [{"id": 1, "seq": 2, "label": 1, "at": first["labels"][0]["at"]}]
    row = first["predictions"][0]
    assert set(row) == {"seq", "at", "inputs", "prediction", "probabilities", "latency_seconds", "model", "version"}
    assert fake.headers[0]["Authorization"] == "Bearer secret"
    assert fake.paths == ["/v1/edge/devices/till-7/telemetry"] * 3
    assert model.buffer.stats().predictions == 0 and model.buffer.stats().labels == 0  # type: ignore[union-attr]
    assert model.sync(fake.url).requests == 0  # nothing left to send


def test_a_label_is_never_sent_before_its_prediction(exported: Exported, tmp_path: Path, fake: _FakeServer) -> None:
    model = _device(exported, tmp_path, rows=10)
    model.label(8, 1)  # its prediction goes in the second request: the label must not go in the first
    result = model.sync(fake.url, batch_size=5)
    assert result.complete and result.requests == 2
    assert [[lb["seq"] for lb in b["labels"]] for b in fake.bodies] == [[], [8]]
    assert (result.labels_applied, result.labels_unmatched, result.acknowledged_labels) == (1, [], 1)
    assert model.buffer.stats().labels == 0  # type: ignore[union-attr]


def test_labels_go_with_their_predictions_or_after_them_and_all_are_sent(
    exported: Exported, tmp_path: Path, fake: _FakeServer
) -> None:
    model = _device(exported, tmp_path, rows=4)
    model.sync(fake.url)  # 1-4 are the server's now: labels on them may go at once
    model.predict(frame(rows=8, seed=6)[FEATURES].to_dict("records"))  # 5-12
    for seq in (12, 11, 2, 6, 6, 10, 4, 9, 5):  # given out of order, two on 6
        model.label(seq, 0)
    fake.bodies.clear()
    fake.ack = lambda seqs, ids: ([s for s in seqs if s != 7], ids)  # 7 is not taken this time
    model.label(7, 1)
    result = model.sync(fake.url, batch_size=3)
    assert result.complete and result.labels_unmatched == [] and result.labels_applied == 9
    # each label goes with its prediction (or after the server took it), in (seq, id) order, at most 3 a request
    assert [[p["seq"] for p in b["predictions"]] for b in fake.bodies] == [[5, 6, 7], [8, 9, 10], [11, 12]]
    assert [[lb["seq"] for lb in b["labels"]] for b in fake.bodies] == [[2, 4, 5], [6, 6, 9], [10, 11, 12]]
    # 7's label waits with 7 (the server would settle it as unmatched); both go next time
    pending = model.buffer.pending(10)  # type: ignore[union-attr]
    assert [p.seq for p in pending[0]] == [7] and [lb.seq for lb in pending[1]] == [7]
    fake.ack = None
    again = model.sync(fake.url, batch_size=3)
    assert again.complete and (again.labels_applied, again.labels_unmatched) == (1, [])
    assert model.buffer.stats().labels == 0 and model.buffer.stats().predictions == 0  # type: ignore[union-attr]


def test_rows_the_server_did_not_acknowledge_stay(exported: Exported, tmp_path: Path, fake: _FakeServer) -> None:
    model = _device(exported, tmp_path)
    fake.ack = lambda seqs, ids: ([s for s in seqs if s % 2], ids)
    result = model.sync(fake.url, batch_size=5)
    assert result.complete and result.acknowledged_predictions == 4
    assert [p.seq for p in model.buffer.pending(10)[0]] == [2, 4, 6]  # type: ignore[union-attr]
    fake.ack = None
    assert model.sync(fake.url).acknowledged_predictions == 3 and model.buffer.stats().predictions == 0  # type: ignore[union-attr]


def test_a_lost_acknowledgement_leaves_the_rows_to_send_again(
    exported: Exported, tmp_path: Path, fake: _FakeServer
) -> None:
    from matchday_edge import urllib_transport

    model = _device(exported, tmp_path)

    def drops_the_reply(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
        urllib_transport(url, body, headers, timeout)  # the server got it, and committed it
        raise ConnectionResetError("connection reset by peer")

    lost = model.sync(fake.url, transport=drops_the_reply)
    assert not lost.complete and "unreachable" in (lost.reason or "") and "7 predictions" in (lost.reason or "")
    assert model.buffer.stats().predictions == 7  # type: ignore[union-attr]
    again = model.sync(fake.url)
    assert again.complete and [p["seq"] for p in fake.bodies[1]["predictions"]] == list(range(1, 8))
    assert model.buffer.stats().predictions == 0  # type: ignore[union-attr]


def test_an_unreachable_or_failing_server_keeps_every_row(
    exported: Exported, tmp_path: Path, fake: _FakeServer
) -> None:
    model = _device(exported, tmp_path)
    down = model.sync("http://127.0.0.1:9", timeout=2)
    assert not down.complete and not down.reachable and down.requests == 0
    assert "unreachable" in (down.reason or "") and model.buffer.stats().predictions == 7  # type: ignore[union-attr]
    fake.status = 503
    busy = model.sync(fake.url)
    assert not busy.complete and "503" in (busy.reason or "") and model.buffer.stats().predictions == 7  # type: ignore[union-attr]


@pytest.mark.parametrize("status", [401, 403, 404, 409, 422])
def test_a_refusal_raises_with_the_servers_message(
    exported: Exported, tmp_path: Path, fake: _FakeServer, status: int
) -> None:
    model = _device(exported, tmp_path, rows=2)
    fake.status = status
    with pytest.raises(SyncRefused, match=f"refused the telemetry \\({status}\\): no such device") as caught:
        model.sync(fake.url)
    assert caught.value.status == status and model.buffer.stats().predictions == 2  # type: ignore[union-attr]


def test_the_key_file_is_private(exported: Exported) -> None:
    key = exported.ws.settings.home.absolute() / "keys" / "edge-signing.pem"
    assert os.stat(key).st_mode & 0o777 == 0o600


# -- the loopback V2 server -------------------------------------------------------------------


def _call(url: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_loopback_v2_server_answers_like_the_model_and_buffers(exported: Exported, tmp_path: Path) -> None:
    model = EdgeModel.load(exported.bundles["lr"], public_key=exported.public_key, device="d", buffer=tmp_path / "t.db")
    data = frame(rows=6, seed=4)[FEATURES]
    server = model.serve_v2(port=0)
    try:
        base = f"{server.url}/v2/models/checkout"
        assert _call(f"{server.url}/v2/health/ready") == (200, {"ready": True})
        status, meta = _call(base)
        assert status == 200 and [i["name"] for i in meta["inputs"]] == FEATURES and meta["versions"] == ["1"]
        columns = {
            "inputs": [
                {"name": n, "shape": [6, 1], "datatype": "INT64" if n == "n" else "FP64", "data": data[n].tolist()}
                for n in FEATURES
            ],
            "id": "r1",
        }
        status, answer = _call(f"{base}/infer", columns)
        assert status == 200 and answer["id"] == "r1"
        predict, proba = answer["outputs"]
        assert predict["datatype"] == "INT64" and predict["data"] == exported.models["lr"].predict(data).tolist()
        np.testing.assert_allclose(
            np.array(proba["data"]).reshape(proba["shape"]), exported.models["lr"].predict_proba(data), atol=1e-9
        )
        one_tensor = {
            "inputs": [{"name": "x", "shape": [6, 4], "datatype": "FP64", "data": data.to_numpy().ravel().tolist()}]
        }
        assert _call(f"{base}/versions/1/infer", one_tensor)[1]["outputs"][0]["data"] == predict["data"]
        assert model.buffer.stats().predictions == 12  # type: ignore[union-attr]
        assert answer["parameters"]["seqs"] == [1, 2, 3, 4, 5, 6]
        missing = {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
        assert _call(f"{base}/infer", missing) == (
            400,
            {"error": "inputs missing: b, c, n (the model takes a, b, c, n)"},
        )
        status, refused = _call(f"{server.url}/v2/models/other/infer", columns)
        assert status == 404 and "/v2/models/checkout/infer" in refused["error"]
        assert model.buffer.stats().predictions == 12  # type: ignore[union-attr]
    finally:
        server.close()
