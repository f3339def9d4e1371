"""Datasets: offline sets, and the file loaders on small files written in the real formats."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import math
import os
import pickle
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from actlab.experiments.data import (
    DataError,
    DataFileMissing,
    RemoteFile,
    check_dataset,
    digits,
    fetch,
    load_cifar10,
    load_dataset,
    load_mnist,
    mnist1d,
    pydoc_text,
    read_batch,
    read_idx,
    spirals,
    xor,
)

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


# ---------------------------------------------------------------- writers (the real formats)
def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """IDX: 0, 0, type code, ndim, big-endian uint32 dims, big-endian values."""
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4"}[type_code]
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.asarray(array, dtype=dtype).tobytes()


def write_mnist(directory: Path, n_train: int = 6, n_test: int = 4, gz: bool = True,
                seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for key, name in IDX_NAMES.items():
        raw = idx_bytes(arrays[key])
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (directory / name).write_bytes(raw)
    return arrays


def write_cifar(directory: Path, per_batch: int = 2, n_test: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, np.ndarray] = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        with open(directory / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, f,
                        protocol=2)
        out[name] = data
        out[name + "_labels"] = np.array(labels)
    return out


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- offline datasets
def test_xor_is_the_articles_four_points():
    ds = xor()
    assert ds.x_train.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert ds.y_train.tolist() == [0, 1, 1, 0]
    assert torch.equal(ds.x_test, ds.x_train) and ds.num_classes == 2


def test_spirals_are_seeded_and_shaped():
    a, b, c = spirals(50, seed=3), spirals(50, seed=3), spirals(50, seed=4)
    assert a.x_train.shape == (100, 2) and a.x_test.shape == (100, 2)
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)
    assert a.y_train.bincount().tolist() == [50, 50]
    # noise-free points of arm k lie at radius r = 5 t and angle 2 pi turns t + k pi
    clean = spirals(20, noise=0.0, seed=0)
    r = clean.x_train.norm(dim=1)
    t = r / 5
    angle = torch.atan2(clean.x_train[:, 1], clean.x_train[:, 0])
    expect = 2 * math.pi * 1.5 * t + clean.y_train * math.pi
    assert torch.allclose(torch.cos(angle - expect), torch.ones_like(t), atol=1e-4)
    with pytest.raises(ValueError, match="noise"):
        spirals(10, noise=-1)


def test_digits_is_a_fixed_stratified_standardised_split():
    ds = digits()
    assert len(ds.y_train) + len(ds.y_test) == 1797
    assert ds.input_shape == (1, 8, 8) and ds.num_classes == 10
    # stratified: every class's share of the test set matches its share overall (+-1 image)
    counts = np.bincount(np.concatenate([ds.y_train.numpy(), ds.y_test.numpy()]), minlength=10)
    test_counts = np.bincount(ds.y_test.numpy(), minlength=10)
    assert np.all(np.abs(test_counts - counts * len(ds.y_test) / 1797) <= 1)
    assert abs(float(ds.x_train.mean())) < 1e-5 and abs(float(ds.x_train.std()) - 1) < 1e-3
    again, other = digits(), digits(split_seed=1)
    assert torch.equal(again.x_test, ds.x_test) and not torch.equal(other.y_test, ds.y_test)


def test_digits_match_sklearn_pixels():
    from sklearn.datasets import load_digits

    ds = digits()
    raw = load_digits().data
    mean, std = ds.info["normalisation"]["mean"][0], ds.info["normalisation"]["std"][0]
    pixels = ds.x_train.reshape(len(ds.y_train), 64).double() * std + mean
    # every reconstructed training image is one of sklearn's images
    first = pixels[0].numpy()
    assert np.min(np.abs(raw - first).max(axis=1)) < 1e-4


def test_mnist1d_is_mnist1ds_default_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTLAB_CACHE", str(tmp_path))
    state = np.random.get_state()[1][:5].copy()
    ds = mnist1d()
    assert np.array_equal(np.random.get_state()[1][:5], state)  # global RNG untouched
    assert ds.x_train.shape == (4000, 40) and ds.x_test.shape == (1000, 40)
    assert sorted(set(ds.y_train.tolist())) == list(range(10))
    # the same arrays as mnist1d's own generator with its default arguments
    from mnist1d.data import get_dataset_args, make_dataset

    ref = make_dataset(get_dataset_args())
    assert np.allclose(ds.x_test.numpy(), ref["x_test"], atol=1e-6)
    assert np.array_equal(ds.y_train.numpy(), ref["y"])


def test_mnist1d_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTLAB_CACHE", str(tmp_path))
    ds = mnist1d(num_samples=200)
    files = list(tmp_path.glob("mnist1d-*.npz"))
    assert len(files) == 1 and ds.x_train.shape == (160, 40)
    with np.load(files[0]) as f:
        assert np.array_equal(f["x"].astype(np.float32), ds.x_train.numpy())
    cached = mnist1d(num_samples=200)
    assert torch.equal(cached.x_train, ds.x_train) and torch.equal(cached.y_test, ds.y_test)
    files[0].write_bytes(b"not an npz")  # a damaged cache is regenerated
    assert torch.equal(mnist1d(num_samples=200).x_train, ds.x_train)
    assert len(list(tmp_path.glob("mnist1d-*.npz"))) == 1
    with pytest.raises(ValueError, match="unknown MNIST-1D argument"):
        mnist1d(num_sample=3)


def test_pydoc_text_round_trips():
    import pydoc_data.topics

    text = pydoc_text()
    assert text.vocab_size == len(set("".join(pydoc_data.topics.topics.values())))
    assert len(text.train) > 9 * len(text.val) * 0.99
    some = "def f(x):\n    return x"
    assert text.decode(text.encode(some)) == some
    with pytest.raises(ValueError, match="not in the vocabulary"):
        text.encode("\u2603")


def test_load_dataset_errors(monkeypatch):
    monkeypatch.delenv("ACTLAB_DATA_DIR", raising=False)
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'; accepted:"):
        load_dataset("imagenet")
    with pytest.raises(DataFileMissing, match="data_dir"):
        load_dataset("mnist")


# ---------------------------------------------------------------- IDX (MNIST, Fashion-MNIST)
@pytest.mark.parametrize("gz", [True, False])
def test_mnist_loads_written_idx_files(tmp_path, gz):
    arrays = write_mnist(tmp_path / "mnist", gz=gz)
    ds = load_mnist(tmp_path)
    assert ds.x_train.shape == (6, 1, 28, 28) and ds.x_test.shape == (4, 1, 28, 28)
    assert ds.y_train.tolist() == arrays["train_labels"].tolist()
    scaled = arrays["train_images"].astype(np.float64) / 255
    expect = (scaled - scaled.mean()) / scaled.std()
    assert np.allclose(ds.x_train[:, 0].numpy(), expect, atol=1e-5)
    test_scaled = arrays["test_images"] / 255.0
    assert np.allclose(ds.x_test[:, 0].numpy(), (test_scaled - scaled.mean()) / scaled.std(),
                       atol=1e-5)


def test_idx_lookup_in_torchvision_layout_and_data_dir(tmp_path):
    write_mnist(tmp_path / "FashionMNIST" / "raw", seed=5)
    assert load_mnist(tmp_path, "fashion_mnist").name == "fashion_mnist"
    write_mnist(tmp_path / "flat", seed=6)
    ds = load_dataset("mnist", data_dir=tmp_path / "flat")
    assert ds.x_train.shape[0] == 6


def test_read_idx_other_types(tmp_path):
    values = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(values, 0x0C))
    got = read_idx(tmp_path / "a")
    assert got.dtype == np.int32 and np.array_equal(got, values)


def test_idx_corrupt_and_missing_files(tmp_path):
    d = tmp_path / "mnist"
    write_mnist(d, gz=False)
    images = d / "train-images-idx3-ubyte"
    good = images.read_bytes()

    images.write_bytes(b"\x12\x34" + good[2:])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte is not an IDX file.*1234"):
        load_mnist(tmp_path)
    images.write_bytes(good[:-7])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_mnist(tmp_path)
    images.write_bytes(idx_bytes(np.zeros((6, 8, 8), dtype=np.uint8)))
    with pytest.raises(DataError, match=r"expected uint8 images of shape \(N, 28, 28\)"):
        load_mnist(tmp_path)
    images.write_bytes(idx_bytes(np.zeros((5, 28, 28), dtype=np.uint8)))
    with pytest.raises(DataError, match="expected 5 uint8 labels, one per image"):
        load_mnist(tmp_path)
    images.write_bytes(good)
    (d / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataFileMissing, match=r"t10k-labels-idx1-ubyte\[\.gz\] is missing from"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="was not found in"):
        load_mnist(tmp_path / "elsewhere")


def test_idx_bad_gzip(tmp_path):
    d = tmp_path / "mnist"
    write_mnist(d, gz=True)
    (d / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz is not a readable gzip"):
        load_mnist(tmp_path)


def test_bad_labels(tmp_path):
    d = tmp_path / "mnist"
    write_mnist(d, gz=False)
    (d / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(6, 12, dtype=np.uint8)))
    with pytest.raises(DataError, match="label 12; expected 0-9"):
        load_mnist(tmp_path)


# ---------------------------------------------------------------- CIFAR-10
def test_cifar_loads_written_batches(tmp_path):
    written = write_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_cifar10(tmp_path)
    assert ds.x_train.shape == (10, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    train = np.concatenate([written[f"data_batch_{i}"] for i in range(1, 6)])
    imgs = train.reshape(-1, 3, 32, 32) / 255.0  # rows are R (1024), G (1024), B (1024)
    mean = imgs.mean(axis=(0, 2, 3), keepdims=True)
    std = imgs.std(axis=(0, 2, 3), keepdims=True)
    assert np.allclose(ds.x_train.numpy(), (imgs - mean) / std, atol=1e-5)
    assert ds.y_test.tolist() == written["test_batch_labels"].tolist()
    images, _ = read_batch(tmp_path / "cifar-10-batches-py" / "data_batch_3")
    assert np.array_equal(images.reshape(2, -1), written["data_batch_3"])


def test_cifar_corrupt_missing_and_unsafe(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    write_cifar(d)
    (d / "test_batch").unlink()
    with pytest.raises(DataFileMissing, match="test_batch is missing from"):
        load_cifar10(tmp_path)
    (d / "test_batch").write_bytes(b"definitely not a pickle")
    with pytest.raises(DataError, match="test_batch is not a CIFAR-10 pickle batch"):
        load_cifar10(tmp_path)
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DataError, match=r"expected uint8 \(N, 3072\)"):
        load_cifar10(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(DataError, match="refusing to load"):
        load_cifar10(tmp_path)
    assert not marker.exists()
    with pytest.raises(DataFileMissing, match=r"extract cifar-10-python\.tar\.gz"):
        load_cifar10(tmp_path / "nothing")


# ---------------------------------------------------------------- downloads (no external network)
def test_fetch_file_url_checksum_ok_and_bad(tmp_path):
    src = tmp_path / "src" / "blob.bin"
    src.parent.mkdir()
    src.write_bytes(b"actlab" * 100)
    good = RemoteFile("blob.bin", (src.as_uri(),), md5=md5(src))
    got = fetch(good, tmp_path / "dst")
    assert got.read_bytes() == src.read_bytes()
    bad = RemoteFile("other.bin", (src.as_uri(),), sha256="0" * 64)
    with pytest.raises(DataError, match=r"other.bin .*checksum mismatch \(sha256 is"):
        fetch(bad, tmp_path / "dst")
    assert not (tmp_path / "dst" / "other.bin").exists()
    assert not list((tmp_path / "dst").glob("*.part"))
    gone = RemoteFile("x.bin", ((tmp_path / "missing.bin").as_uri(),), md5="0" * 32)
    with pytest.raises(DataError, match=r"download it by hand from .* and put it in"):
        fetch(gone, tmp_path / "dst")
    with pytest.raises(ValueError, match="needs an md5 or sha256"):
        RemoteFile("y", ("file:///y",))


def test_download_over_local_http(tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    (served / "f.bin").write_bytes(b"0123456789" * 50)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(served), **k)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        remote = RemoteFile("f.bin", (f"{base}/absent.bin", f"{base}/f.bin"),
                            md5=md5(served / "f.bin"))
        assert fetch(remote, tmp_path / "got").read_bytes() == (served / "f.bin").read_bytes()
    finally:
        server.shutdown()
        server.server_close()


def test_mnist_download_from_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    arrays = write_mnist(mirror, gz=True)
    sources = {
        key: RemoteFile(f"{name}.gz", ((mirror / f"{name}.gz").as_uri(),),
                        md5=md5(mirror / f"{name}.gz"))
        for key, name in IDX_NAMES.items()
    }
    data = tmp_path / "data"
    ds = load_mnist(data, download=True, sources=sources)
    assert ds.y_test.tolist() == arrays["test_labels"].tolist()
    assert (data / "mnist" / "t10k-images-idx3-ubyte.gz").exists()
    wrong = {**sources, "test_labels": RemoteFile(
        "t10k-labels-idx1-ubyte.gz", sources["test_labels"].urls, md5="f" * 32)}
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz .*checksum mismatch"):
        load_mnist(tmp_path / "data2", download=True, sources=wrong)


def test_cifar_download_and_extract(tmp_path):
    staging = tmp_path / "staging"
    write_cifar(staging / "cifar-10-batches-py")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    source = RemoteFile("cifar-10-python.tar.gz", (archive.as_uri(),), md5=md5(archive))
    ds = load_cifar10(tmp_path / "data", download=True, source=source)
    assert ds.x_train.shape == (10, 3, 32, 32)


def test_cifar_truncated_archive(tmp_path):
    staging = tmp_path / "staging"
    write_cifar(staging / "cifar-10-batches-py")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(buf.getvalue()[:200])
    source = RemoteFile("cifar-10-python.tar.gz", (archive.as_uri(),), md5=md5(archive))
    with pytest.raises(DataError, match="could not extract"):
        load_cifar10(tmp_path / "data", download=True, source=source)


# ---------------------------------------------------------------- Fashion-MNIST from Debian
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def fresh_cache():
    """The loader's per-process cache, emptied before and after (system directories move)."""
    from actlab.experiments import data

    data._load.cache_clear()
    yield
    data._load.cache_clear()


@pytest.fixture
def system_fashion(tmp_path, monkeypatch, fresh_cache):
    """A stand-in for Debian's copy: written IDX files in a directory the loader searches."""
    from actlab.experiments.data import idx

    system = tmp_path / "usr-share-datasets-fashion-mnist"
    arrays = write_mnist(system, seed=11)
    monkeypatch.setitem(idx.SYSTEM_DIRS, "fashion_mnist", (system,))
    monkeypatch.delenv("ACTLAB_DATA_DIR", raising=False)
    return arrays


def test_fashion_mnist_found_in_the_system_directory(system_fashion):
    ds = load_dataset("fashion_mnist")
    assert ds.name == "fashion_mnist" and ds.y_train.tolist() == system_fashion[
        "train_labels"].tolist()
    assert "usr-share-datasets-fashion-mnist" in ds.info["source"]
    check_dataset("fashion_mnist")  # no error


def test_data_dir_and_environment_take_precedence(system_fashion, tmp_path, monkeypatch):
    mine = write_mnist(tmp_path / "mine" / "fashion_mnist", seed=12)
    env = write_mnist(tmp_path / "env" / "fashion-mnist", seed=13)
    monkeypatch.setenv("ACTLAB_DATA_DIR", str(tmp_path / "env"))
    assert load_dataset("fashion_mnist").y_train.tolist() == env["train_labels"].tolist()
    named = load_dataset("fashion_mnist", data_dir=tmp_path / "mine")
    assert named.y_train.tolist() == mine["train_labels"].tolist()
    # a data directory without the files falls back to the system copy
    other = load_dataset("fashion_mnist", data_dir=tmp_path / "elsewhere")
    assert other.y_train.tolist() == system_fashion["train_labels"].tolist()
    monkeypatch.delenv("ACTLAB_DATA_DIR")  # the cache follows the environment
    assert load_dataset("fashion_mnist").y_train.tolist() == system_fashion[
        "train_labels"].tolist()


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch, fresh_cache):
    from actlab.experiments.data import idx

    monkeypatch.setitem(idx.SYSTEM_DIRS, "fashion_mnist", (tmp_path / "not-installed",))
    monkeypatch.delenv("ACTLAB_DATA_DIR", raising=False)
    for call in (lambda: load_dataset("fashion_mnist"), lambda: check_dataset("fashion_mnist")):
        with pytest.raises(DataFileMissing) as err:
            call()
        msg = str(err.value)
        assert "dataset-fashion-mnist" in msg and "github.com/zalandoresearch/fashion-mnist" in msg
        assert str(tmp_path / "not-installed") in msg and "--data-dir" in msg
        assert msg.count(". ") == 0  # one sentence
    with pytest.raises(DataFileMissing, match=r"--data-dir\) or \$ACTLAB_DATA_DIR"):
        check_dataset("mnist")  # MNIST stays a local-files dataset
    check_dataset("digits")
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        check_dataset("imagenet")


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not "
                    "installed")
def test_debian_fashion_mnist_is_the_real_dataset(monkeypatch, fresh_cache):
    monkeypatch.delenv("ACTLAB_DATA_DIR", raising=False)
    ds = load_dataset("fashion_mnist")
    assert ds.info["source"] == str(DEBIAN_FASHION)
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    # 10 balanced classes: 6000 training and 1000 test images each (the dataset's README)
    assert torch.bincount(ds.y_train).tolist() == [6000] * 10
    assert torch.bincount(ds.y_test).tolist() == [1000] * 10
    # the pixel statistics everyone normalises Fashion-MNIST with: mean 0.2860, std 0.3530
    (mean,), (std,) = ds.info["normalisation"]["mean"], ds.info["normalisation"]["std"]
    assert mean == pytest.approx(0.2860, abs=1e-4) and std == pytest.approx(0.3530, abs=1e-4)
    assert abs(float(ds.x_train.mean())) < 1e-4


def test_fixed_subsets():
    ds = digits()
    sub = ds.subset(train=100, test=50)
    assert sub.x_train.shape == (100, 1, 8, 8) and len(sub.y_test) == 50
    again = ds.subset(train=100, test=50)
    assert torch.equal(sub.x_train, again.x_train) and torch.equal(sub.y_test, again.y_test)
    # the rows are rows of the full split, in their original order
    full = ds.x_train.flatten(1)
    idx = [int((full == row).all(dim=1).nonzero()[0]) for row in sub.x_train.flatten(1)]
    assert idx == sorted(idx) and len(set(idx)) == 100
    assert not torch.equal(ds.subset(train=100, seed=1).x_train, sub.x_train)
    assert ds.subset(train=10_000) is ds and ds.subset() is ds
    assert sub.info["subset"] == {"train": 100, "test": 50, "seed": 0}
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="subset size must be an integer >= 1"):
            ds.subset(train=bad)
