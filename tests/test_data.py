"""Data sources through real tfds pipelines (`tfds.testing.mock_data`), folders, and the search split."""

import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from itnas_tf.data import DataError, load_arrays, search_data, train_test_data
from itnas_tf.data import pipeline, sources, train_test


def test_tfds_source_feeds_the_search_split(tmp_path):
    with tfds.testing.mock_data(num_examples=40):
        data = search_data("cifar10", 8, seed=0, divisor=4, data_dir=str(tmp_path))
    assert data.image_shape == (32, 32, 3) and data.train_size == data.valid_size == 20
    assert data.augment == "crop_flip"
    x, y = next(iter(data.train(0)))
    assert x.shape == (8, 32, 32, 3) and x.dtype == tf.float32


def test_imagenet16_120_keeps_the_first_120_classes(tmp_path):
    with tfds.testing.mock_data(num_examples=300):
        x, y = load_arrays("imagenet16_120", str(tmp_path))
    assert x.shape[1:] == (16, 16, 3) and len(y) > 0 and y.max() < 120


def test_offline_download_fails_fast_and_names_data_dir(tmp_path, monkeypatch):
    # 192.0.2.1 is TEST-NET-1: never routed, so the probe sees what an offline machine sees.
    monkeypatch.setitem(sources.DOWNLOAD_HOSTS, "cifar10", "http://192.0.2.1")
    start = time.time()
    with pytest.raises(DataError, match="--data_dir") as e:
        load_arrays("cifar10", str(tmp_path))
    assert time.time() - start < sources.PROBE_SECONDS + 10
    assert "tfds build cifar10" in str(e.value) and "downloads/manual" in str(e.value)


def test_unknown_tfds_name_is_refused():
    with pytest.raises(DataError, match="Unknown --dataset 'no_such_dataset'"):
        load_arrays("no_such_dataset")


def test_image_folder_source(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / "pets" / label).mkdir(parents=True)
        for i in range(3):
            image = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
            tf.io.write_file(str(tmp_path / "pets" / label / f"{i}.png"), tf.io.encode_png(image))
    x, y = load_arrays(f"folder:{tmp_path / 'pets'}")
    assert x.shape == (6, 12, 12, 3) and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1]
    with pytest.raises(DataError, match="no such folder"):
        load_arrays(f"folder:{tmp_path / 'missing'}")


def test_epochs_are_functions_of_seed_and_epoch():
    data = search_data("digits", 64, seed=1, augment="crop")
    first = [x.numpy() for x, _ in data.train(3)]
    again = [x.numpy() for x, _ in search_data("digits", 64, seed=1, augment="crop").train(3)]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    other = np.concatenate([x.numpy() for x, _ in data.train(4)])
    assert not np.array_equal(np.concatenate(first), other)
    valid = np.concatenate([y.numpy() for _, y in data.valid])
    np.testing.assert_array_equal(valid, data.y[data.valid_idx])  # the selection pass sees valid in order


def test_arrays_in_memory_are_fed_without_the_autotuning_thread(tmp_path, monkeypatch):
    """`fit` and `predict` wait for that thread to stop, 0.17-0.30 s after some epochs of the
    quickstart (docs/performance.md); without it the batches are the same."""
    search = search_data("digits", 64, seed=1, augment="crop")
    with tfds.testing.mock_data(num_examples=24):
        retrain = train_test_data("cifar10", batch_size=8, data_dir=str(tmp_path))

    def pipelines():
        return {"train": search.train(2), "arch": search.arch(2).take(3), "valid": search.valid,
                "retrain": retrain.train(2), "test": retrain.test}

    ours = pipelines()
    assert {name: ds.options().autotune.enabled for name, ds in ours.items()} == dict.fromkeys(ours, False)
    for module in (pipeline, train_test):
        monkeypatch.setattr(module, "prefetched", lambda ds: ds.prefetch(tf.data.AUTOTUNE))
    for name, autotuned in pipelines().items():
        assert autotuned.options().autotune.enabled is not False
        for batch, autotuned_batch in zip(ours[name], autotuned, strict=True):
            for a, b in zip(batch, autotuned_batch, strict=True):
                np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_retraining_reads_the_test_split_or_validation_where_there_is_none(tmp_path):
    with tfds.testing.mock_data(num_examples=24):
        data = train_test_data("cifar10", batch_size=8, cutout_size=16, data_dir=str(tmp_path))
        x_valid, _ = load_arrays("imagenet_resized/16x16", str(tmp_path), split="test")  # train/validation only
    assert data.image_shape == (32, 32, 3) and len(data.x_train) == len(data.x_test) == 24
    x, y = next(iter(data.train(0)))
    assert x.shape == (8, 32, 32, 3) and y.shape == (8, data.num_classes)
    assert (x.numpy() == 0).all(axis=-1).sum() >= 8 * 8 * 8  # cutout: at least a quarter of 16x16 per image
    assert x_valid.shape[1:] == (16, 16, 3)


def test_image_folder_with_train_and_test_subfolders(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for label in ("cat", "dog"):
            (tmp_path / "pets" / split / label).mkdir(parents=True)
            for i in range(n):
                image = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
                tf.io.write_file(str(tmp_path / "pets" / split / label / f"{i}.png"), tf.io.encode_png(image))
    data = train_test_data(f"folder:{tmp_path / 'pets'}", batch_size=4)
    assert len(data.x_train) == 6 and len(data.x_test) == 4 and data.num_classes == 2
    (tmp_path / "flat" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="no test split"):
        load_arrays(f"folder:{tmp_path / 'flat'}", split="test")


@pytest.mark.slow
def test_streamed_search_splits_are_seeded_per_epoch_and_feed_a_search(tmp_path):
    from itnas_tf.data import streaming_search_data
    from itnas_tf.searcher import Searcher, search_config

    splits = {"search_train_split": "train[:50%]", "search_valid_split": "train[50%:]", "input_size": 32}
    with tfds.testing.mock_data(num_examples=16):
        data = streaming_search_data("imagenet2012", splits["search_train_split"], splits["search_valid_split"], 32,
                                     batch_size=4, seed=0, data_dir=str(tmp_path / "tfds"))
        # mock_data gives every split, sliced or not, its num_examples
        assert (data.train_size, data.valid_size, data.num_classes) == (16, 16, 1000)
        first = [x.numpy() for x, _ in data.train(0)]
        assert first[0].shape == (4, 32, 32, 3) and len(first) == 4
        assert all(np.array_equal(a, x.numpy()) for a, (x, _) in zip(first, data.train(0)))
        assert not np.array_equal(first[0], next(iter(data.train(1)))[0].numpy())
        assert [y.numpy().tolist() for _, y in data.valid] == [y.numpy().tolist() for _, y in data.valid]
        config = search_config(space="nb201", dataset="imagenet2012", epochs=1, batch_size=4, init_channels=4, layers=1,
                               target_layers=1, **splits)
        result = Searcher(config, tmp_path / "run", data_dir=str(tmp_path / "tfds")).run()
    assert result["target"]["input_shape"] == [32, 32, 3] and result["flags"]["search_train_split"] == "train[:50%]"
