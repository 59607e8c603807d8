"""Data for search and retraining: sources (`--dataset`), the seeded search split, train/test sets."""

from itnas_tf.data.pipeline import AUGMENTATIONS, SearchData, search_data, split_indices
from itnas_tf.data.sources import DataError, load_arrays
from itnas_tf.data.streaming import StreamingData, streaming_data
from itnas_tf.data.streaming_search import StreamingSearchData, streaming_search_data
from itnas_tf.data.train_test import TrainTestData, train_test_data
